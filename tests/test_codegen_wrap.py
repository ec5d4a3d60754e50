"""The generated files' long lines are broken (backends/codegen.py `wrap`) without changing what
they mean: for random nested calls, lists, subscripts, comprehensions and strings holding brackets
and commas, the wrapped text parses to the same Python as the line it came from."""

from __future__ import annotations

import ast

from hypothesis import given
from hypothesis import strategies as st

from dlspec.backends.codegen import WIDTH, wrap

names = st.sampled_from(["x", "layers.Dense", "keras.Sequential", "ops.stack", "fn", "a_long_variable_name"])
strings = st.sampled_from(["'a, b'", "'(c'", '"]"', "'q,]'", '"x [y] for z"'])
atoms = st.one_of(st.integers(0, 10**12).map(str), strings, st.sampled_from(["x", "fn", "a_long_variable_name"]))


def _expressions(children):
    args = st.lists(children, max_size=5)
    kwargs = st.dictionaries(st.sampled_from(["name", "axis", "format", "for_each"]), children, max_size=3)
    return st.one_of(
        st.builds(lambda f, a, k: f"{f}({', '.join([*a, *(f'{n}={v}' for n, v in k.items())])})", names, args, kwargs),
        st.builds(lambda items: f"[{', '.join(items)}]", st.lists(children, max_size=6)),
        st.builds(lambda v, s: f"{v}[{s}]", st.sampled_from(["x", "fn(a)"]), st.sampled_from(["1:", "0", ":, -1", "1::2"])),
        st.builds(lambda e: f"[{e} for p, j in zip(aa, bb)]", children),
        st.builds(lambda e: f"fn({e} for p, j in zip(aa, bb))", children),
    )


@given(target=st.sampled_from(["h", "x_cl"]), value=st.recursive(atoms, _expressions, max_leaves=40),
       indent=st.sampled_from(["    ", "        "]))
def test_wrapping_keeps_the_meaning(target, value, indent):
    line = f"{indent}{target} = {value}"
    before = ast.parse("if 1:\n" + line).body[0].body[0]
    after = ast.parse("if 1:\n" + wrap(line)).body[0].body[0]
    assert ast.dump(after) == ast.dump(before)


def test_a_long_list_of_layers_gets_a_line_per_layer():
    line = "    s = keras.Sequential([" + ", ".join(f"layers.Dense({i}, name='dense_{i}')" for i in range(6)) + "], name='s')"
    wrapped = wrap(line).split("\n")
    assert wrapped[:2] == ["    s = keras.Sequential(", "        ["]
    assert [w.strip() for w in wrapped[2:8]] == [f"layers.Dense({i}, name='dense_{i}')," for i in range(6)]
    assert all(len(w) <= WIDTH for w in wrapped)
