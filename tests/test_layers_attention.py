"""The attention family (attention, cross_attention, positional_embedding, sinusoidal_embedding,
transformer_encoder): random valid arguments and shapes, every dimension different (steps, width,
heads, head width, context steps and width, ff), so a wrong split, reshape or transpose of the
projections cannot pass by symmetry; both outputs compute the same function in float64, count the
parameters dlspec counts, and transfer weights both ways bit for bit. Key padding masks
(`masked=true`) get explicit 0/1 masks, including queries left with no key. Plus the meanings both
outputs could share wrongly (the sinusoid table, causality, what a mask hides), Keras
serialization, and the shape errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from dlspec.check import check_text
from dlspec.diagnostics import DlsError
from dlspec.runtime import load_generated
from dlspec.verify import build_pair, compare, run_pair

from .equality import F64_RTOL, assert_float32_agrees, assert_same_function, assert_transfer_round_trips, spec_of

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")


@st.composite
def sizes(draw) -> dict:
    heads, head_dim, steps, context_steps, context_width, ff = draw(st.lists(st.integers(1, 9), min_size=6, max_size=6,
                                                                          unique=True))
    width = heads * head_dim
    assume(len({width, heads, head_dim, steps, context_steps, context_width, ff}) == 7 and head_dim > 1 and steps > 1)
    return {"heads": heads, "width": width, "steps": steps, "context_steps": context_steps,
            "context_width": context_width, "ff": ff}


def flag(v: bool) -> str:
    return "true" if v else "false"


@st.composite
def stage(draw, z: dict) -> str:
    """One layer of the family, [steps, width] → [steps, width]."""
    kind = draw(st.sampled_from(["attention", "cross_attention", "positional", "sinusoidal", "encoder"]))
    if kind in ("attention", "cross_attention"):
        masked = ", masked=true" if draw(st.booleans()) else ""
        return f"{kind}({z['heads']}, causal={flag(draw(st.booleans()))}, bias={flag(draw(st.booleans()))}{masked})"
    if kind == "positional":
        return draw(st.sampled_from(["positional_embedding()", f"positional_embedding(max_len={z['steps'] + 3})"]))
    if kind == "sinusoidal":
        return "sinusoidal_embedding()"
    norm, act = draw(st.sampled_from(["post", "pre"])), draw(st.sampled_from(["relu", "gelu"]))
    masked = ", masked=true" if draw(st.booleans()) else ""
    return (f"transformer_encoder({z['heads']}, {z['ff']}, dropout=0.1, norm={norm}, ff_activation={act}, "
            f"causal={flag(draw(st.booleans()))}{masked})")


def chain(z: dict, stages: list[str]) -> str:
    """A model through `stages`; cross-attention reads a context [context_steps, context_width]
    made from the input (a conv1d over the steps as channels, then a dense over the features).
    Masked attention (and encoder) reads the input `m` [steps], masked cross-attention `cm` [context_steps]
    (random normal values in the equality check: a value >= 0.5 attends, about a third)."""
    lines = [f"  input x: [{z['steps']}, {z['width']}]"]
    if any("masked" in s and s.startswith(("attention", "transformer_encoder")) for s in stages):
        lines.append(f"  input m: [{z['steps']}]")
    if any("masked" in s and s.startswith("cross_attention") for s in stages):
        lines.append(f"  input cm: [{z['context_steps']}]")
    if any(s.startswith("cross_attention") for s in stages):
        lines.append(f"  x -> conv1d({z['context_steps']}, 1) -> dense({z['context_width']}) -> c")
    current = "x"
    for i, s in enumerate(stages):
        sources = [current, "c"] if s.startswith("cross_attention") else [current]
        sources += ["cm" if s.startswith("cross") else "m"] if "masked" in s else []
        source = f"({', '.join(sources)})" if len(sources) > 1 else current
        lines.append(f"  {source} -> {s} -> h{i}")
        current = f"h{i}"
    return spec_of("\n".join(lines))


@st.composite
def specs(draw) -> str:
    z = draw(sizes())
    return chain(z, draw(st.lists(stage(z), min_size=1, max_size=3)))


@settings(max_examples=30)
@given(text=specs())
def test_random_attention_models_compute_the_same_function(text):
    note(text)
    assert_same_function(text)


CASES = {
    "one head": "  input x: [5, 6]\n  x -> attention(1)",
    "causal self-attention without biases": "  input x: [5, 12]\n  x -> attention(3, causal=true, bias=false)",
    # keys and values as wide as the queries: PyTorch fuses the projections again (in_proj_weight)
    "cross-attention, context as wide": "  input x: [5, 12]\n  x -> conv1d(7, 1) -> c\n  (x, c) -> cross_attention(4)",
    "cross-attention, longer causal context": "  input x: [5, 12]\n  x -> conv1d(8, 1) -> dense(6) -> c\n"
                                              "  (x, c) -> cross_attention(2, causal=true)",
    "odd width sinusoid": "  input x: [4, 7]\n  x -> sinusoidal_embedding() -> attention(7)",
    "encoder stack": "  input x: [6, 10]\n  x -> sinusoidal_embedding() -> transformer_encoder(2, 16)"
                     " -> transformer_encoder(5, 9, norm=pre, ff_activation=gelu) -> flatten() -> dense(3)",
}


@pytest.mark.parametrize("body", CASES.values(), ids=CASES.keys())
def test_chosen_models_compute_the_same_function(body):
    assert_same_function(spec_of(body))


@pytest.mark.parametrize("body", [CASES["encoder stack"], CASES["cross-attention, longer causal context"]])
def test_float32_models_agree(body):
    assert_float32_agrees(spec_of(body))


def mha_params(width: int, context: int, bias: bool = True) -> int:
    # query and output projections width × width, key and value projections width × context
    return 2 * width * width + 2 * width * context + (4 * width if bias else 0)


@pytest.mark.parametrize("body,expected", [
    ("attention(3)", mha_params(12, 12)),
    ("attention(4, bias=false)", mha_params(12, 12, bias=False)),
    ("positional_embedding()", 5 * 12),
    ("positional_embedding(max_len=9)", 9 * 12),
    ("sinusoidal_embedding()", 0),
    ("transformer_encoder(3, 20)", mha_params(12, 12) + (12 * 20 + 20) + (20 * 12 + 12) + 2 * 2 * 12),
])
def test_parameter_counts(body, expected):
    graph = check_text(spec_of(f"  input x: [5, 12]\n  x -> {body}")).graph
    assert graph.params("torch") == graph.params("keras") == (expected, expected)


def test_cross_attention_parameter_count():
    graph = check_text(spec_of("  input x: [5, 12]\n  x -> conv1d(7, 1) -> dense(9) -> c\n"
                               "  (x, c) -> cross_attention(3) -> y")).graph
    node = next(n for n in graph.nodes if n.name == "y")
    assert node.params("torch") == node.params("keras") == (mha_params(12, 9),) * 2


def mask_batch(rng, batch: int, keys: int) -> np.ndarray:
    """0/1 masks [batch, keys]: sample 0 attends every key, sample 1 none (its queries are left with
    no key), the others at random with at least one key."""
    m = (rng.random((batch, keys)) < 0.5).astype(np.float64)
    m[0], m[1] = 1.0, 0.0
    for row in m[2:]:
        row[rng.integers(keys)] = 1.0
    return m


def masked_spec(kind: str, steps: int, width: int, keys: int, context_width: int, args: str) -> str:
    if kind in ("attention", "transformer_encoder"):
        return spec_of(f"  input x: [{steps}, {width}]\n  input m: [{steps}]\n  (x, m) -> {kind}({args}, masked=true)")
    return spec_of(f"  input x: [{steps}, {width}]\n  input c: [{keys}, {context_width}]\n  input m: [{keys}]\n"
                   f"  (x, c, m) -> cross_attention({args}, masked=true)")


def run_masked(text: str, inputs: list[np.ndarray]):
    """Both models on `inputs`, checked equal in float64: (torch model, keras model, torch out, keras out)."""
    keras.backend.clear_session()
    checked = check_text(text)
    torch_model, keras_model = build_pair(checked, "float64")
    t_out, k_out = run_pair(checked.graph, torch_model, keras_model, inputs)
    for diff in compare(checked.graph.outputs, t_out, k_out):
        assert diff.max_rel <= F64_RTOL, diff
    return torch_model, keras_model, t_out[0], k_out[0]


def output_bias(torch_model, width: int) -> np.ndarray:
    mha = next(m for m in torch_model.modules() if isinstance(m, torch.nn.MultiheadAttention))
    return np.zeros(width) if mha.out_proj.bias is None else mha.out_proj.bias.detach().numpy()


def empty_queries(mask: np.ndarray, steps: int, causal: bool) -> np.ndarray:
    """[batch, steps]: the queries left with no key to attend."""
    attend = np.repeat(mask[:, None, :] >= 0.5, steps, axis=1)
    if causal:
        attend &= np.tri(steps, mask.shape[1], dtype=bool)
    return ~attend.any(-1)


@settings(max_examples=12)
@given(z=sizes(), kind=st.sampled_from(["attention", "cross_attention"]), causal=st.booleans(), bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_masked_attention_computes_the_same_function(z, kind, causal, bias, seed):
    # Both outputs agree with 0/1 masks, parameters as without a mask; a query with no key to attend
    # outputs the output projection's bias in both (PyTorch alone would give NaN).
    steps, width, keys = z["steps"], z["width"], z["context_steps"] if kind == "cross_attention" else z["steps"]
    text = masked_spec(kind, steps, width, keys, z["context_width"], f"{z['heads']}, causal={flag(causal)}, bias={flag(bias)}")
    note(text)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, steps, width))
    context = [rng.standard_normal((4, keys, z["context_width"]))] if kind == "cross_attention" else []
    mask = mask_batch(rng, 4, keys)
    torch_model, keras_model, t, k = run_masked(text, [x, *context, mask])
    assert np.isfinite(t).all() and np.isfinite(k).all()
    empty = empty_queries(mask, steps, causal)
    assert empty[1].all()
    for out in (t, k):
        np.testing.assert_allclose(out[empty], np.broadcast_to(output_bias(torch_model, width), out[empty].shape), rtol=1e-12)
    context_width = z["context_width"] if kind == "cross_attention" else width
    graph = check_text(text).graph
    assert graph.params("torch") == graph.params("keras") == (mha_params(width, context_width, bias),) * 2
    assert_transfer_round_trips(graph, torch_model, keras_model)


MASKED_CASES = {
    "self, random normal mask": "  input x: [5, 12]\n  input m: [5]\n  (x, m) -> attention(3, masked=true)",
    # a mask computed in the model; the early queries of the causal layer often have no key
    "cross, causal, no bias": "  input x: [5, 12]\n  input m: [7]\n  x -> conv1d(7, 1) -> dense(6) -> c\n"
                              "  (x, c, m) -> cross_attention(2, causal=true, bias=false, masked=true)",
}


@pytest.mark.parametrize("body", MASKED_CASES.values(), ids=MASKED_CASES.keys())
def test_chosen_masked_models(body):
    assert_same_function(spec_of(body))
    assert_float32_agrees(spec_of(body))


def test_a_mask_hides_its_keys():
    # Changing the context at a masked step changes nothing; at an attended step, every query.
    text = masked_spec("cross_attention", 5, 12, 7, 6, "3")
    rng = np.random.default_rng(2)
    x, c = rng.standard_normal((4, 5, 12)), rng.standard_normal((4, 7, 6))
    mask = np.ones((4, 7))
    mask[:, 2] = 0.0
    hidden, seen = c.copy(), c.copy()
    hidden[:, 2] += 1.0
    seen[:, 3] += 1.0
    _, _, t, k = run_masked(text, [x, c, mask])
    for other in (hidden, seen):
        _, _, t2, k2 = run_masked(text, [x, other, mask])
        for a, b in ((t, t2), (k, k2)):
            moved = np.abs(a - b).min(axis=-1)  # per query
            assert (moved.max() < 1e-12) if other is hidden else (moved.min() > 1e-6)


@settings(max_examples=10)
@given(z=sizes(), causal=st.booleans(), norm=st.sampled_from(["post", "pre"]), seed=st.integers(0, 2**16))
def test_masked_encoder_computes_the_same_function(z, causal, norm, seed):
    # The encoder's self-attention is masked as `attention`'s: both outputs agree, stay finite for a
    # sample with no step to attend, count the unmasked parameters and transfer weights bit for bit.
    steps, width = z["steps"], z["width"]
    text = masked_spec("transformer_encoder", steps, width, steps, width,
                       f"{z['heads']}, {z['ff']}, causal={flag(causal)}, norm={norm}")
    note(text)
    rng = np.random.default_rng(seed)
    torch_model, keras_model, t, k = run_masked(text, [rng.standard_normal((4, steps, width)), mask_batch(rng, 4, steps)])
    assert np.isfinite(t).all() and np.isfinite(k).all()
    graph = check_text(text).graph
    plain = check_text(spec_of(f"  input x: [{steps}, {width}]\n  x -> transformer_encoder({z['heads']}, {z['ff']})")).graph
    assert graph.params("torch") == graph.params("keras") == plain.params("torch")
    assert_transfer_round_trips(graph, torch_model, keras_model)


def test_an_encoder_mask_hides_its_steps_from_the_others():
    # Changing the input at a masked step changes that step's output only; at an attended step, every step's.
    text = masked_spec("transformer_encoder", 5, 12, 5, 12, "3, 20")
    rng = np.random.default_rng(4)
    x, mask = rng.standard_normal((4, 5, 12)), np.ones((4, 5))
    mask[:, 2] = 0.0
    hidden, seen = x.copy(), x.copy()
    hidden[:, 2] += 1.0
    seen[:, 3] += 1.0
    _, _, t, k = run_masked(text, [x, mask])
    for other, changed in ((hidden, 2), (seen, 3)):
        _, _, t2, k2 = run_masked(text, [other, mask])
        for a, b in ((t, t2), (k, k2)):
            moved = np.abs(a - b).max(axis=-1)  # per sample and step
            others = np.delete(moved, changed, axis=1)
            assert moved[:, changed].min() > 1e-3
            assert (others.max() < 1e-12) if other is hidden else (others.min() > 1e-6)


def test_no_nan_reaches_the_gradients_of_a_query_without_keys():
    text = masked_spec("attention", 5, 12, 5, 12, "3, causal=true")
    checked = check_text(text)
    torch_model, _ = build_pair(checked, "float64")
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 5, 12))).requires_grad_()
    mask = torch.tensor([[0.0, 0, 1, 1, 0], [0, 0, 0, 0, 0]], dtype=torch.float64)
    torch_model(x, mask).sum().backward()
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in torch_model.parameters())
    assert x.grad.abs().sum() > 0


def _torch_module(body: str):
    checked = check_text(spec_of(body))
    return load_generated(checked, "torch")


def test_the_sinusoid_table_is_the_papers():
    # Both outputs share the table's code, so their equality cannot catch a wrong formula.
    table = _torch_module("  input x: [6, 7]\n  x -> sinusoidal_embedding()").sinusoidal_table(6, 7)
    for p in range(6):
        for i in range(7):
            angle = p / 10000 ** (2 * (i // 2) / 7)
            assert table[p, i] == pytest.approx(math.sin(angle) if i % 2 == 0 else math.cos(angle), rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("body", ["attention(3, causal=true)", "transformer_encoder(3, 20)",
                                  "transformer_encoder(3, 20, causal=true)", "transformer_encoder(4, 9, causal=true, norm=pre)"])
def test_causal_means_no_step_sees_a_later_one(body):
    # ... and without `causal`, a change at the last step reaches every step (the test can fail).
    causal = "causal=true" in body
    checked = check_text(spec_of(f"  input x: [5, 12]\n  x -> {body}"))
    torch_model, keras_model = build_pair(checked, "float64")
    x = np.random.default_rng(0).normal(size=(2, 5, 12))
    y = x.copy()
    y[:, -1] += 1.0
    for out_x, out_y in [(torch_model(torch.from_numpy(x)).detach().numpy(), torch_model(torch.from_numpy(y)).detach().numpy()),
                         (np.asarray(keras_model(x)), np.asarray(keras_model(y)))]:
        earlier = np.abs(out_x[:, :-1] - out_y[:, :-1]).max()
        assert (earlier < 1e-12) if causal else (earlier > 1e-3)
        assert np.abs(out_x[:, -1] - out_y[:, -1]).max() > 1e-3


def test_keras_layers_survive_saving(tmp_path):
    body = "  input x: [5, 12]\n  x -> positional_embedding(max_len=8) -> sinusoidal_embedding()" \
           " -> transformer_encoder(3, 20, norm=pre, ff_activation=gelu)"
    checked = check_text(spec_of(body))
    _, keras_model = build_pair(checked, "float64")
    keras_model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(1).normal(size=(2, 5, 12))
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(keras_model(x)))


@pytest.mark.parametrize("kind", ["cross_attention", "transformer_encoder"])
def test_masked_keras_layers_survive_saving(kind, tmp_path):
    args = "3, causal=true, dropout=0.2" if kind == "cross_attention" else "3, 20, causal=true"
    checked = check_text(masked_spec(kind, 5, 12, 7, 6, args))
    _, keras_model = build_pair(checked, "float64")
    keras_model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    rng = np.random.default_rng(1)
    keys = 7 if kind == "cross_attention" else 5
    inputs = [rng.standard_normal((2, 5, 12)), *[rng.standard_normal((2, 7, 6))] * (keys == 7), mask_batch(rng, 2, keys)]
    np.testing.assert_array_equal(np.asarray(loaded(inputs)), np.asarray(keras_model(inputs)))


def M(body: str, shape: str = "[5, 12]") -> str:
    return f"model M {{\n  input x: {shape}\n{body}\n}}\n"


# (id, spec, words of the message, words of the hint)
ERRORS = [
    ("heads do not divide", M("  x -> attention(5)"), "5 heads do not divide the width 12", "1, 2, 3, 4, 6, 12"),
    ("encoder heads", M("  x -> transformer_encoder(7, 32)"), "transformer_encoder: 7 heads do not divide", "dense("),
    ("cross heads", M("  x -> dense(6) -> c\n  (x, c) -> cross_attention(5)"), "cross_attention: 5 heads", "divides 12"),
    ("flat input", M("  x -> attention(2)", "[12]"), "attention expects its input as [steps, features], got [12]",
     "an embedding gives [steps, features]"),
    ("image input", M("  x -> positional_embedding()", "[3, 8, 8]"), "got [3, 8, 8]", "reshape((1, n))"),
    ("encoder rank", M("  x -> transformer_encoder(2, 8)", "[3, 8, 8]"), "transformer_encoder expects", "embedding"),
    ("sinusoid rank", M("  x -> sinusoidal_embedding()", "[8]"), "sinusoidal_embedding expects", "embedding"),
    ("flat context", M("  x -> flatten() -> c\n  (x, c) -> cross_attention(2)"),
     "cross_attention expects its context (second input) as [steps, features], got [60]", "embedding"),
    ("flat queries", M("  x -> flatten() -> q\n  (q, x) -> cross_attention(2)"),
     "its queries (first input) as [steps, features], got [60]", "embedding"),
    ("three inputs", M("  x -> dense(4) -> c\n  (x, c, c) -> cross_attention(2)"),
     "cross_attention takes two inputs, the queries and the context, got 3", "(x, context) -> cross_attention(heads)"),
    ("one input", M("  x -> cross_attention(2)"), "cross_attention needs two or more inputs", "cross_attention"),
    ("two inputs to self-attention", M("  x -> dense(4) -> c\n  (x, c) -> attention(2)"), "attention takes one input",
     None),
    ("mask too short", M("  input m: [4]\n  (x, m) -> attention(2, masked=true)"),
     "attention: the mask must be [5], one value per key step (1 = attend, 0 = ignore), got [4]", "input mask: [5]"),
    ("cross mask follows the context", M("  input m: [5]\n  x -> conv1d(7, 1) -> c\n  (x, c, m) -> cross_attention(2, masked=true)"),
     "cross_attention: the mask must be [7]", "input mask: [7]"),
    ("mask as a sequence", M("  input m: [5, 1]\n  (x, m) -> attention(2, masked=true)"), "got [5, 1]", "last input"),
    ("masked without a mask", M("  x -> attention(2, masked=true)"),
     "attention with masked=true takes two inputs, the second its mask, but one reaches it",
     "`(x, mask) -> attention(..., masked=true)`"),
    ("masked, three inputs", M("  input m: [5]\n  (x, x, m) -> attention(2, masked=true)"),
     "attention with masked=true takes two inputs, the sequence and its mask, got 3", "(x, mask) -> attention(heads, masked=true)"),
    ("masked cross without a mask", M("  x -> conv1d(7, 1) -> c\n  (x, c) -> cross_attention(2, masked=true)"),
     "cross_attention with masked=true takes three inputs, the queries, the context and its mask, got 2",
     "(x, context, mask) -> cross_attention(heads, masked=true)"),
    ("a mask without masked=true", M("  input m: [5]\n  (x, m) -> attention(2)"), "attention takes one input, but 2",
     "to read a mask as the second input, write `(x, mask) -> attention(..., masked=true)`"),
    ("short max_len", M("  x -> positional_embedding(max_len=3)"),
     "positional_embedding has max_len=3 positions, but its input has 5 steps", "at least 5"),
    ("unknown norm", M("  x -> transformer_encoder(2, 8, norm=middle)"), "`norm` must be", "signature"),
    ("encoder mask too long", M("  input m: [6]\n  (x, m) -> transformer_encoder(2, 8, masked=true)"),
     "transformer_encoder: the mask must be [5]", "input mask: [5]"),
    ("masked encoder without a mask", M("  x -> transformer_encoder(2, 8, masked=true)"),
     "transformer_encoder with masked=true takes two inputs", "`(x, mask) -> transformer_encoder(..., masked=true)`"),
    ("encoder mask without masked=true", M("  input m: [5]\n  (x, m) -> transformer_encoder(2, 8)"),
     "transformer_encoder takes one input, but 2", None),
]


@pytest.mark.parametrize("text,message,hint", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_shape_errors(text, message, hint):
    with pytest.raises(DlsError) as exc:
        check_text(text)
    d = exc.value.diagnostics[0]
    assert message in d.message
    if hint is not None:
        assert hint in (d.hint or "")
