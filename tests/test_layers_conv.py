"""The convolution family: conv3d, depthwise and separable convolutions, transposed convolutions,
upsampling, zero padding and cropping, 3-D, padded and adaptive pools, global pools of 3-D maps,
and the MobileNet activations. For random valid arguments and input shapes whose dimensions all
differ, both outputs compute the same function in float64 (rtol 1e-6, see tests/equality.py) with
the same parameter counts and exact weight transfer; parameter counts match an independent count;
shape errors say what is wrong and what the layer can do instead."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from dlspec.check import check_text
from dlspec.diagnostics import DlsError
from dlspec.verify import build_pair, run_pair

from .equality import assert_float32_agrees, assert_same_function, spec_of

FEW = settings(max_examples=6)


def distinct(n: int, lo: int = 2, hi: int = 9):
    """n different sizes, so that a wrong transpose cannot pass by symmetry."""
    return st.lists(st.integers(lo, hi), min_size=n, max_size=n, unique=True)


def tup(values) -> str:
    values = list(values)
    return str(values[0]) if len(values) == 1 else "(" + ", ".join(map(str, values)) + ")"


def shape_text(shape) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def check(body: str, shape) -> None:
    text = spec_of(f"  input x: {shape_text(shape)}\n{body}")
    note(text)
    assert_same_function(text)


def out_shape(text: str):
    graph = check_text(text).graph
    return graph.shape_of(graph.outputs[0])


# --- convolutions ---------------------------------------------------------------------------------

@st.composite
def conv_args(draw, dims: int, depthwise: bool = False):
    """Arguments that fit an input of `dims` spatial axes, each at least 5 long."""
    kernel = draw(st.lists(st.integers(1, 3), min_size=dims, max_size=dims))
    dilate = draw(st.booleans())
    step = st.lists(st.integers(1, 2) if not dilate else st.just(1), min_size=dims, max_size=dims)
    stride = draw(step)
    dilation = draw(st.lists(st.integers(1, 2), min_size=dims, max_size=dims)) if dilate else [1] * dims
    padding = draw(st.sampled_from(["valid", "same", "1"]))
    if depthwise:  # TensorFlow's depthwise convolution takes one stride for both axes
        stride = [stride[0]] * dims
    args = [f"kernel={tup(kernel)}", f"stride={tup(stride)}", f"dilation={tup(dilation)}", f"padding={padding}"]
    if draw(st.booleans()):
        args.append("bias=false")
    if draw(st.booleans()):
        args.append(f"activation={draw(st.sampled_from(['relu6', 'hard_swish', 'relu']))}")
    return args


@FEW
@given(spatial=distinct(3, 5, 8), groups=st.sampled_from([1, 2]), data=st.data())
def test_conv3d(spatial, groups, data):
    shape = [groups * data.draw(st.sampled_from([1, 2])), *spatial]  # at most 4 channels: never a spatial size
    filters = groups * data.draw(st.integers(1, 3))
    args = data.draw(conv_args(3))
    check(f"  conv3d({filters}, {', '.join(args)}, groups={groups})", shape)


@FEW
@given(dims=st.sampled_from([1, 2]), multiplier=st.integers(1, 3), data=st.data())
def test_depthwise_conv(dims, multiplier, data):
    shape = data.draw(distinct(dims + 1, 2, 9).filter(lambda s: min(s[1:]) >= 6))
    args = data.draw(conv_args(dims, depthwise=True))
    check(f"  depthwise_conv{dims}d({', '.join(args)}, multiplier={multiplier})", shape)


@FEW
@given(dims=st.sampled_from([1, 2]), multiplier=st.integers(1, 3), filters=st.integers(1, 5), data=st.data())
def test_separable_conv(dims, multiplier, filters, data):
    shape = data.draw(distinct(dims + 1, 2, 9).filter(lambda s: min(s[1:]) >= 6))
    args = data.draw(conv_args(dims, depthwise=True))
    check(f"  separable_conv{dims}d({filters}, {', '.join(args)}, multiplier={multiplier})", shape)


@st.composite
def transpose_args(draw, dims: int, sizes):
    kernel = draw(st.lists(st.integers(1, 4), min_size=dims, max_size=dims))
    stride = draw(st.lists(st.integers(1, 3), min_size=dims, max_size=dims))
    form = draw(st.sampled_from(["valid", "same", "number", "output_size"]))
    args = [f"kernel={tup(kernel)}", f"stride={tup(stride)}"]
    if form in ("valid", "same"):
        return args + [f"padding={form}"]
    # padding small enough to leave an output: (n − 1)·s + k − 2p ≥ 1
    pads = [draw(st.integers(0, max(0, ((n - 1) * s + k - 1) // 2))) for n, s, k in zip(sizes, stride, kernel)]
    extra = [draw(st.integers(0, s - 1)) for s in stride]
    if form == "number":
        return args + [f"padding={tup(pads)}", f"output_padding={tup(extra)}"]
    want = [(n - 1) * s - 2 * p + k + e for n, s, p, k, e in zip(sizes, stride, pads, kernel, extra)]
    return args + [f"padding={tup(pads)}", f"output_size={tup(want)}"]


@FEW
@given(dims=st.sampled_from([1, 2]), filters=st.integers(1, 5), data=st.data())
def test_conv_transpose(dims, filters, data):
    shape = data.draw(distinct(dims + 1, 2, 7))
    args = data.draw(transpose_args(dims, shape[1:]))
    check(f"  conv_transpose{dims}d({filters}, {', '.join(args)}, bias={data.draw(st.sampled_from(['true', 'false']))})", shape)


@pytest.mark.parametrize(("layer", "size", "out"), [
    ("conv_transpose1d(2, 4, stride=2, padding=1)", 5, 10),   # the DCGAN doubling
    ("conv_transpose1d(2, 3, stride=2, padding=1, output_padding=1)", 5, 10),
    ("conv_transpose1d(2, 3, stride=2, padding=1, output_size=10)", 5, 10),
    ("conv_transpose1d(2, 3, stride=2, padding=1, output_size=9)", 5, 9),
    ("conv_transpose1d(2, 3, stride=2, padding=same)", 5, 10),
    ("conv_transpose1d(2, 1, stride=3, padding=same)", 5, 15),  # zeros after the full output
    ("conv_transpose1d(2, 4, stride=1, padding=same)", 5, 5),   # odd cut, at the end
    ("conv_transpose1d(2, 3)", 5, 7),
])
def test_conv_transpose_output_size(layer, size, out):
    """PyTorch's rule, (in − 1)·stride − 2·padding + kernel + output_padding; same = in · stride."""
    text = spec_of(f"  input x: [3, {size}]\n  {layer}")
    assert out_shape(text) == (2, out)
    assert_same_function(text)


# --- resizing -------------------------------------------------------------------------------------

@FEW
@given(dims=st.sampled_from([1, 2]), data=st.data())
def test_upsample(dims, data):
    shape = data.draw(distinct(dims + 1, 2, 7))
    scale = data.draw(st.lists(st.integers(1, 4), min_size=dims, max_size=dims))
    mode = data.draw(st.sampled_from(["nearest", "linear" if dims == 1 else "bilinear"]))
    check(f"  conv{dims}d(3, 1) -> upsample{dims}d({tup(scale)}, mode={mode})", shape)


def sides(draw, dims: int, most: int) -> str:
    form = draw(st.sampled_from(["number", "axes", "sides"] if dims == 2 else ["number", "sides"]))
    if form == "number":
        return str(draw(st.integers(0, most)))
    if form == "axes":
        return tup(draw(st.integers(0, most)) for _ in range(dims))
    pairs = [(draw(st.integers(0, most)), draw(st.integers(0, most))) for _ in range(dims)]
    return tup(pairs[0]) if dims == 1 else "(" + ", ".join(tup(p) for p in pairs) + ")"


@FEW
@given(dims=st.sampled_from([1, 2]), data=st.data())
def test_zeropad_and_crop(dims, data):
    shape = data.draw(distinct(dims + 1, 9, 14))  # two crops of up to 2 + 2 leave at least one cell
    pad = sides(data.draw, dims, 3)
    crop = sides(data.draw, dims, 2)
    # the crop both of the input (logical in Keras) and of a convolution's output (channels last)
    check(f"  x -> crop{dims}d({crop}) -> zeropad{dims}d({pad}) -> conv{dims}d(4, 1) -> crop{dims}d({crop})", shape)


def test_bilinear_upsampling_is_exact_in_float64():
    """TensorFlow's resize computes in float32 (1e-6 apart from PyTorch in float64, measured): the
    Keras output's own layer agrees with PyTorch to rounding, edges included."""
    text = spec_of("  input x: [2, 5, 6]\n  upsample2d((3, 4), mode=bilinear)")
    x = np.random.default_rng(0).standard_normal((3, 2, 5, 6))
    t_out, k_out = _outputs(text, x)
    np.testing.assert_allclose(k_out, t_out, rtol=0, atol=1e-14)
    # half-pixel centres: output cell i reads (i + 0.5) / scale − 0.5, clamped at the edges: row 2
    # reads row 1/3, column 3 reads column 3/8; cell (0, 0) is input cell (0, 0), unblended
    np.testing.assert_allclose(t_out[:, :, 0, 0], x[:, :, 0, 0], rtol=1e-14)
    row0, row1 = 0.625 * x[:, :, 0, 0] + 0.375 * x[:, :, 0, 1], 0.625 * x[:, :, 1, 0] + 0.375 * x[:, :, 1, 1]
    np.testing.assert_allclose(t_out[:, :, 2, 3], 2 / 3 * row0 + 1 / 3 * row1, rtol=1e-12)


# --- pools ----------------------------------------------------------------------------------------

@FEW
@given(op=st.sampled_from(["max", "avg"]), data=st.data())
def test_pool3d(op, data):
    shape = data.draw(distinct(4, 3, 8))
    kernel = data.draw(st.lists(st.integers(1, 3), min_size=3, max_size=3))
    stride = data.draw(st.lists(st.integers(1, 3), min_size=3, max_size=3))
    pad = f", padding={tup(data.draw(st.integers(0, k // 2)) for k in kernel)}" if op == "avg" else ""
    check(f"  conv3d(2, 1) -> {op}pool3d({tup(kernel)}, {tup(stride)}{pad}) -> global_{op}pool()", shape)


@FEW
@given(dims=st.sampled_from([1, 2]), data=st.data())
def test_avgpool_padding_counts_the_zeros(dims, data):
    shape = data.draw(distinct(dims + 1, 4, 9))
    kernel = data.draw(st.lists(st.integers(1, 4), min_size=dims, max_size=dims))
    stride = data.draw(st.lists(st.integers(1, 3), min_size=dims, max_size=dims))
    pad = [data.draw(st.integers(0, k // 2)) for k in kernel]
    check(f"  avgpool{dims}d({tup(kernel)}, {tup(stride)}, padding={tup(pad)})", shape)


def test_avgpool_padding_divides_by_the_whole_window():
    text = spec_of("  input x: [1, 3]\n  avgpool1d(3, stride=1, padding=1)")
    for out in _outputs(text, np.array([[[3.0, 6.0, 9.0]]])):
        np.testing.assert_allclose(out, [[[3.0, 6.0, 5.0]]])


@FEW
@given(op=st.sampled_from(["max", "avg"]), dims=st.sampled_from([1, 2]), data=st.data())
def test_adaptive_pool(op, dims, data):
    shape = data.draw(distinct(dims + 1, 2, 9))
    size = data.draw(st.lists(st.integers(1, 10), min_size=dims, max_size=dims))
    check(f"  conv{dims}d(3, 1) -> adaptive_{op}pool{dims}d({tup(size)})", shape)


@pytest.mark.parametrize("layer", ["adaptive_avgpool1d(3)", "adaptive_maxpool1d(3)"])
def test_adaptive_pool_windows_follow_pytorch(layer):
    """7 cells into 3: windows [0, 3), [2, 5), [4, 7) — overlapping, as PyTorch's rule makes them."""
    x = np.arange(7.0)[None, None] ** 2
    want = [[[np.mean(x[0, 0, a:b]) if "avg" in layer else x[0, 0, b - 1] for a, b in ((0, 3), (2, 5), (4, 7))]]]
    for out in _outputs(spec_of(f"  input x: [1, 7]\n  {layer}"), x):
        np.testing.assert_allclose(out, want)


def test_adaptive_pool_that_tiles_is_a_plain_keras_pool():
    from dlspec.backends.codegen import generate

    text = spec_of("  input x: [3, 8, 6]\n  adaptive_avgpool2d((4, 3))")
    code = " ".join(generate(check_text(text), "keras").split())  # lines are wrapped
    assert "adaptive_avgpool2d = layers.AveragePooling2D( pool_size=(2, 2), strides=(2, 2)," in code


# --- activations ----------------------------------------------------------------------------------

@pytest.mark.parametrize("act", ["relu6", "hard_sigmoid", "hard_swish", "mish"])
def test_activation_on_a_grid_across_its_kinks(act):
    grid = np.linspace(-10, 10, 401)  # steps of 0.05: through −3, 0, 3 and 6 exactly
    reference = {"relu6": np.clip(grid, 0, 6), "hard_sigmoid": np.clip(grid + 3, 0, 6) / 6,
                 "hard_swish": grid * np.clip(grid + 3, 0, 6) / 6,
                 "mish": grid * np.tanh(np.log1p(np.exp(grid)))}[act]
    for out in _outputs(spec_of(f"  input x: [401]\n  {act}()"), grid[None]):
        np.testing.assert_allclose(out[0], reference, rtol=1e-12, atol=1e-15)


# --- float32 and parameter counts -----------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "  input x: [3, 9, 7]\n  separable_conv2d(8, 3, padding=same, multiplier=2, activation=relu6) -> depthwise_conv2d(3, stride=2)",
    # one output row: trimmed to its window, at the width's stride (TensorFlow takes one stride)
    "  input x: [1, 4, 9]\n  depthwise_conv2d(3, stride=2) -> separable_conv2d(2, (1, 3), stride=2)",
    "  input x: [4, 5, 6]\n  conv_transpose2d(3, 4, stride=2, padding=1) -> upsample2d(2, mode=bilinear) -> adaptive_avgpool2d((3, 5))",
    "  input x: [2, 5, 7, 6]\n  conv3d(3, 3, padding=same) -> maxpool3d(2) -> global_avgpool()",
])
def test_float32_agrees(body):
    assert_float32_agrees(spec_of(body))


@pytest.mark.parametrize(("layer", "shape", "count"), [
    # Keras's DepthwiseConv2D: kernel 3·3·C·M plus C·M biases
    ("depthwise_conv2d(3, multiplier=2)", "[5, 9, 7]", 3 * 3 * 5 * 2 + 5 * 2),
    ("depthwise_conv1d(4, bias=false)", "[6, 9]", 4 * 6),
    # depthwise without bias, then pointwise C·M → F with the one bias
    ("separable_conv2d(8, (3, 2), multiplier=3)", "[5, 9, 7]", 3 * 2 * 5 * 3 + 5 * 3 * 8 + 8),
    ("separable_conv1d(4, 3, bias=false)", "[6, 9]", 3 * 6 + 6 * 4),
    ("conv_transpose2d(4, (2, 3), stride=2)", "[5, 9, 7]", 5 * 4 * 2 * 3 + 4),
    ("conv3d(6, (1, 2, 3), groups=3)", "[3, 5, 6, 7]", 6 * 1 * 1 * 2 * 3 + 6),
    ("adaptive_maxpool2d((2, 3))", "[5, 9, 7]", 0),
])
def test_parameter_count(layer, shape, count):
    text = spec_of(f"  input x: {shape}\n  {layer}")
    graph = check_text(text).graph
    assert graph.params("torch") == graph.params("keras") == (count, count)
    assert_same_function(text)  # and both frameworks count the same


# --- shape errors ---------------------------------------------------------------------------------

ERRORS = [
    ("transpose cannot reach output_size", "[3, 5]", "conv_transpose1d(2, 3, stride=2, padding=1, output_size=12)",
     "cannot make a length of 12 from 5", "it makes 9 to 10", "padding"),
    ("transpose same with other output_size", "[3, 5, 7]", "conv_transpose2d(2, 3, stride=2, padding=same, output_size=(10, 13))",
     "input · stride = 7 · 2 = 14", "not the output_size 13", "leave out output_size"),
    ("transpose padding eats the output", "[3, 2]", "conv_transpose1d(2, 2, padding=2)",
     "leaves no output from an input of 2", "padding", "smaller padding"),
    ("output_padding not below stride", "[3, 5]", "conv_transpose1d(2, 3, stride=2, output_padding=2)",
     "smaller than the stride", "output_padding", "signature"),
    ("output_padding with same", "[3, 5]", "conv_transpose1d(2, 3, stride=2, padding=same, output_padding=1)",
     "input · stride", "cannot be added", "signature"),
    ("output_size and output_padding", "[3, 5]", "conv_transpose1d(2, 3, stride=2, output_padding=1, output_size=12)",
     "not both", "output_size", "signature"),
    ("conv3d kernel too large", "[3, 5, 6, 7]", "conv3d(4, (6, 2, 2))",
     "conv3d with kernel (6, 2, 2) leaves no output for the input [3, 5, 6, 7]", "more than the padded input", "padding=same"),
    ("dilated kernel too large", "[3, 9]", "depthwise_conv1d(3, dilation=5)",
     "the kernel spans 11 with its dilation", "leaves no output", "smaller kernel"),
    ("depthwise of a vector", "[3]", "depthwise_conv2d(3)",
     "expects an input of shape [channels, height, width]", "got [3]", "reshape((1, 3))"),
    ("conv2d of a volume", "[3, 5, 6, 7]", "conv2d(4, 3)",
     "conv2d expects an input of shape [channels, height, width]", "got [3, 5, 6, 7]", "use `conv3d`"),
    ("global pool of a vector", "[3]", "global_avgpool()",
     "[channels, length] or [channels, height, width] or [channels, depth, height, width]", "got [3]", "no spatial axis"),
    ("grouped conv3d channels", "[5, 4, 6, 7]", "conv3d(4, 1, groups=2)",
     "input channels divisible by 2, got 5", "groups=2", "multiple of 2"),
    ("depthwise strides differ", "[3, 9, 7]", "separable_conv2d(4, 3, stride=(1, 2))",
     "must be the same on both axes", "stride (1, 2)", "signature"),
    ("avg pool padding above half", "[3, 9]", "avgpool1d(3, padding=2)",
     "at most half the kernel", "padding 2", "signature"),
    ("pool3d window too large", "[3, 4, 5, 6]", "maxpool3d(5)",
     "window (5, 5, 5) is larger than the input", "[3, 4, 5, 6]", "smaller window"),
    ("crop everything", "[3, 5, 7]", "crop2d(((2, 3), (1, 1)))",
     "cuts 2 + 3 cells from a height of 5", "leaving nothing", "fewer than 5"),
    ("zeropad2d bad form", "[3, 5, 7]", "zeropad2d((1, 2, 3))",
     "must be a number, (height, width), or ((top, bottom), (left, right))", "(1, 2, 3)", "signature"),
    ("zeropad2d pair of three", "[3, 5, 7]", "zeropad2d(((1, 2, 3), (1, 2)))",
     "((top, bottom), (left, right))", "got ((1, 2, 3), (1, 2))", "signature"),
    ("zeropad2d negative side", "[3, 5, 7]", "zeropad2d(((1, -2), (1, 2)))",
     "must be at least 0 on every side", "got ((1, -2), (1, 2))", "signature"),
    ("crop1d three numbers", "[3, 5]", "crop1d((1, 2, 3))",
     "must be a number, or (left, right)", "cropping", "signature"),
]


@pytest.mark.parametrize(("shape", "layer", "words", "more", "hint"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_shape_error(shape, layer, words, more, hint):
    with pytest.raises(DlsError) as exc:
        check_text(spec_of(f"  input x: {shape}\n  {layer}"))
    d = exc.value.diagnostics[0]
    assert words in d.message and more in d.message, d.message
    assert (hint is None) or (d.hint and hint in d.hint), d.hint
    assert d.span.line == 3  # the layer's line, after `model Net {` and the input


def _outputs(text: str, x: np.ndarray):
    checked = check_text(text)
    torch_model, keras_model = build_pair(checked, "float64", seed=0)
    t_out, k_out = run_pair(checked.graph, torch_model, keras_model, [x])
    return t_out[0], k_out[0]


def test_keras_helper_layers_save_and_load(tmp_path):
    """AdaptivePool and ResizeLinear are serializable: a saved .keras model loads and computes the same."""
    import keras

    text = spec_of("  input x: [3, 7, 5]\n  conv2d(4, 1) -> upsample2d((2, 3), mode=bilinear) -> adaptive_avgpool2d((3, 4))")
    checked = check_text(text)
    _, keras_model = build_pair(checked, "float64", seed=0)
    keras_model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(5).standard_normal((2, 3, 7, 5))
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(keras_model(x)))


INIT_SPEC = """
model Net {{
  input x: [16, 9, 11]
  depthwise_conv2d((3, 5), multiplier=3, init={init}) -> conv_transpose2d(20, (3, 5), init={init})
  separable_conv2d(30, (3, 5), multiplier=2, init={init})
}}

train {{
  data: synthetic(task=regression)
  loss: mse()
}}
"""
# Keras's fans (kernel size × the kernel's last two axes): depthwise (3·5·16, 3·5·3); transposed
# (3·5·20, 3·5·48), its kernel being (*k, filters, channels); separable's depthwise (3·5·20, 3·5·2).
INIT_FANS = {"depthwise_conv2d": (240, 45), "conv_transpose2d": (300, 720), "separable_conv2d": (300, 30)}


@pytest.mark.parametrize("init", ["xavier_uniform", "he_normal"])
def test_initial_weights_have_keras_fans_in_both_outputs(init, tmp_path):
    from scipy import stats

    from dlspec.runtime import load_generated

    checked = check_text(INIT_SPEC.format(init=init))
    torch_model = load_generated(checked, "torch", tmp_path).build_model()
    keras_model = load_generated(checked, "keras", tmp_path).build_model()
    for layer, (fan_in, fan_out) in INIT_FANS.items():
        mod = getattr(torch_model, layer)
        torch_w = (mod.depthwise.weight if layer.startswith("separable") else mod.weight).detach().numpy().ravel()
        keras_w = keras_model.get_layer(layer).get_weights()[0].ravel()
        bound = np.sqrt(6 / (fan_in + fan_out))
        dist = stats.uniform(-bound, 2 * bound) if init == "xavier_uniform" else stats.norm(0, np.sqrt(2 / fan_in))
        for name, w in (("torch", torch_w), ("keras", keras_w)):  # p > 1e-4: see test_initializers.py
            assert stats.kstest(w, dist.cdf).pvalue > 1e-4, (layer, name)
