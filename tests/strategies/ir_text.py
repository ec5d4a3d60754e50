"""`ir_texts()`: arbitrary text the grammar accepts, meaningful or not, for the parser/printer round
trip: odd identifiers, ints, floats in every spelling, escaped strings, nested calls, tuples,
lists, line joins and comments."""

from __future__ import annotations

from hypothesis import strategies as st

from .parts import KEYWORDS, comment

NAMES = (st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)
         | st.sampled_from(["modelx", "true_", "inputs", "int", "float", "repeat2", "_", "__x__", "same", "relu"])
         ).filter(lambda n: n not in KEYWORDS)


def _int_text(v: int, form: int) -> str:
    return f"+{v}" if form == 1 and v >= 0 else f"{'-' if v < 0 else ''}00{abs(v)}" if form == 2 else str(v)


def _float_text(v: float, form: int) -> str:
    text = [repr(v), f"{v:e}", f"{v:.3E}", f"{v:.4f}"][form]
    return text.replace("0.", ".", 1) if text.lstrip("-").startswith("0.") and form == 3 else text


_STRING_PARTS = st.characters(exclude_characters='"\\\n\r', exclude_categories=["Cs"]) | st.sampled_from(
    ["\\\\", '\\"', "\\n", "\\t", "\\/", "\\b", "\\f", "\\r", "\\u00e9", "\\u2028", "\\ud83d\\ude00", "#", "'", "😀"])
ATOMS = st.one_of(
    st.builds(_int_text, st.integers(-(2**63), 2**63 - 1), st.integers(0, 2)),
    st.builds(_float_text, st.floats(-1e300, 1e300, allow_nan=False), st.integers(0, 3)),
    st.lists(_STRING_PARTS, max_size=6).map(lambda parts: '"' + "".join(parts) + '"'),
    st.sampled_from(["true", "false"]),
    NAMES,
)
# Between items in brackets; newlines (and comments) inside brackets join lines.
_SEPS = st.sampled_from([", ", ",", " , ", ",\n      ", "\n    , ", ",  # in brackets\n    "])


@st.composite
def _joined(draw, items: list[str], brackets: str, one_needs_comma: bool = False) -> str:
    body = draw(_SEPS).join(items) if len(items) < 2 else "".join(
        item + (draw(_SEPS) if i < len(items) - 1 else "") for i, item in enumerate(items))
    if items and (draw(st.booleans()) or one_needs_comma and len(items) == 1):
        body += ","
    return brackets[0] + body + brackets[1]


@st.composite
def _call(draw, inner) -> str:
    args = draw(st.lists(inner, max_size=3)) + [f"{k}={v}" for k, v in draw(st.lists(st.tuples(NAMES, inner), max_size=2))]
    return draw(NAMES) + draw(_joined(args, "()"))


VALUES = st.recursive(ATOMS, lambda inner: st.one_of(
    st.lists(inner, max_size=3).flatmap(lambda xs: _joined(xs, "()", one_needs_comma=True)),
    st.lists(inner, max_size=3).flatmap(lambda xs: _joined(xs, "[]")),
    _call(inner),
), max_leaves=8)


@st.composite
def _statement(draw) -> str:
    kind = draw(st.sampled_from(["input", "output", "setting", "flow", "flow"]))
    if kind == "input":
        head = f"input {draw(NAMES)}"
        if draw(st.booleans()):
            return head
        dtype = draw(st.sampled_from(["", "int", "float", "int ", "float "]))
        return f"{head}: {dtype}" + draw(_joined(draw(st.lists(VALUES, min_size=1, max_size=3)), "[]"))
    if kind == "output":
        return "output " + ", ".join(draw(st.lists(NAMES, min_size=1, max_size=3)))
    if kind == "setting":
        return f"{draw(NAMES)}: {draw(VALUES)}"
    parts = [draw(st.sampled_from(["", "one", "many"]))]
    if parts[0] == "one":
        parts[0] = draw(NAMES)
    elif parts[0] == "many":
        parts[0] = draw(_joined(draw(st.lists(NAMES, min_size=2, max_size=3)), "()"))
    for _ in range(draw(st.integers(1, 3))):
        step = draw(_call(VALUES))
        parts.append(f"repeat {draw(VALUES)} {step}" if draw(st.integers(0, 3)) == 0 else step)
    if draw(st.booleans()):
        parts.append(draw(NAMES))
    out = parts[1] if not parts[0] else parts[0] + draw(st.sampled_from([" -> ", "->"])) + parts[1]
    for part in parts[2:]:
        out += draw(st.sampled_from([" -> ", "->", " ->\n      ", "\n    -> ", " ->  # after an arrow\n    "])) + part
    return out


@st.composite
def _body(draw, statements) -> str:
    """`{ ... }` with statements, blank lines and comments, sometimes sharing a line with a brace."""
    lines = []
    for s in draw(st.lists(statements, max_size=4)):
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from(["", comment(draw)])))
        lines.append(s + ("  " + comment(draw) if draw(st.integers(0, 4)) == 0 else ""))
    if not lines:
        return draw(st.sampled_from(["{}", "{\n}", "{  # empty\n}"]))
    first = " " + lines.pop(0) + "\n" if draw(st.integers(0, 4)) == 0 and not lines[0].startswith("#") else "\n"
    last = "  " + lines.pop() + " }" if lines and draw(st.integers(0, 4)) == 0 and "#" not in lines[-1] else "}"
    return "{" + first + "".join(f"  {line}\n" for line in lines) + last


@st.composite
def ir_texts(draw) -> str:
    """Text the grammar accepts, from the whole IR: constants, blocks, models and train sections
    with every kind of value; meaningful or not (names are not resolved)."""
    items = []
    for kind in draw(st.lists(st.sampled_from(["const", "block", "model", "train"]), max_size=4)):
        name = draw(NAMES)
        if kind == "const":
            items.append(f"const {name} = {draw(VALUES)}")
        elif kind == "block":
            params = [p if draw(st.booleans()) else f"{p}={draw(VALUES)}" for p in draw(st.lists(NAMES, max_size=3))]
            items.append(f"block {name}" + draw(_joined(params, "()")) + " " + draw(_body(_statement())))
        elif kind == "model":
            items.append(f"model {name} " + draw(_body(_statement())))
        else:
            settings = st.builds(lambda k, v: f"{k}: {v}", NAMES | st.just("model"), VALUES)
            items.append("train " + draw(_body(settings)))
    seps = st.sampled_from(["\n", "\n\n", "\n# between items\n", "\n\n\n"])
    text = "".join(item + draw(seps) for item in items)
    text = draw(st.sampled_from(["", "# a header comment\n", "\n"])) + text
    return text.replace("\n", "\r\n") if draw(st.integers(0, 5)) == 0 else text
