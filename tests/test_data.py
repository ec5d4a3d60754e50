"""Data from files (.npz, .csv): loaded the same by both outputs, checked against the model by
`dls check`, with clear errors for missing files, wrong shapes and labels out of range."""

from __future__ import annotations

import numpy as np
import pytest

from dlspec.check import check_file
from dlspec.diagnostics import DlsError
from dlspec.runtime import load_generated

SPEC = """
model Net {{
  input x: [6]
  dense(3)
}}

train {{
  data: {data}
  {extra}
}}
"""


def _spec(tmp_path, data, extra=""):
    path = tmp_path / "net.dls"
    path.write_text(SPEC.format(data=data, extra=extra))
    return path


@pytest.fixture
def arrays(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 2, 3)) * 5 + 3, rng.integers(0, 3, 50)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "train.npz", inputs=x, labels=y)
    rows = ["a,b,c,label,d,e,f"] + [",".join(map(str, [*r[:3], lab, *r[3:]])) for r, lab in zip(x.reshape(50, 6), y)]
    (tmp_path / "data" / "train.csv").write_text("\n".join(rows) + "\n")
    return x.reshape(50, 6), y


@pytest.mark.parametrize("source", ['npz("data/train.npz", x="inputs", y="labels", normalize=true)',
                                    'csv("data/train.csv", target="label", normalize=true)'])
def test_both_outputs_load_the_same_normalized_split(source, arrays, tmp_path):
    checked = check_file(_spec(tmp_path, source))
    torch_data = load_generated(checked, "torch", tmp_path / "t").load_data()
    keras_data = load_generated(checked, "keras", tmp_path / "k").load_data()
    for a, b in zip(torch_data, keras_data):
        np.testing.assert_array_equal(a, b)
    x_train, y_train, x_val, _ = torch_data
    assert len(x_train) == 40 and len(x_val) == 10 and y_train.dtype == np.int64
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-6)  # standardized with the training statistics
    x, y = arrays
    train = np.random.default_rng(0).permutation(50)[10:]  # the spec's seed (0) and validation (0.2)
    expected = (x[train] - x[train].mean(axis=0)) / x[train].std(axis=0)
    np.testing.assert_allclose(x_train, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y_train, y[train])


@pytest.mark.parametrize(("source", "message"), [
    ('npz("data/missing.npz")', "no such data file"),
    ('npz("data/train.npz")', "has no array `x`"),
    ('npz("data/train.npz", x="labels", y="labels")', "inputs of shape [] per sample"),
    ('csv("data/train.csv", target="label_")', "has no column `label_`"),
])
def test_data_errors_are_clear(source, message, arrays, tmp_path):
    with pytest.raises(DlsError) as exc:
        check_file(_spec(tmp_path, source))
    assert message in exc.value.diagnostics[0].message
    assert exc.value.diagnostics[0].span.line == 8  # the `data:` line


def test_labels_out_of_range(tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 6)), y=np.array([0, 1, 2, 7]))
    with pytest.raises(DlsError, match="labels must be whole numbers from 0 to 2"):
        check_file(_spec(tmp_path, 'npz("bad.npz")'))


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, colour in (("cats", (200, 30, 30)), ("dogs", (30, 30, 200))):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(6):
            pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (12, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pets" / name / f"{i}.png")
    spec = tmp_path / "pets.dls"
    spec.write_text('model Pets {\n  input image: [3, 6, 8]\n  flatten() -> dense(2)\n}\n\n'
                    'train {\n  data: image_folder("pets", validation=0.25)\n}\n')
    x, y, x_val, _ = load_generated(check_file(spec), "torch", tmp_path / "t").load_data()
    assert x.shape == (9, 3, 6, 8) and x_val.shape == (3, 3, 6, 8) and 0 <= x.min() and x.max() <= 1
    red = x[:, 0].mean(axis=(1, 2)) > x[:, 2].mean(axis=(1, 2))
    np.testing.assert_array_equal(red, y == 0)  # cats (class 0, alphabetically first) are red
    spec.write_text(spec.read_text().replace("dense(2)", "dense(3)"))
    with pytest.raises(DlsError, match="has 2 classes"):
        check_file(spec)


def test_compiled_code_names_its_data_relative_to_itself(arrays, tmp_path):
    from .helpers import dls

    spec = _spec(tmp_path, 'npz("data/train.npz", x="inputs", y="labels")')
    out = tmp_path / "generated" / "net_torch.py"
    r = dls("compile", spec, "-t", "torch", "-o", out)
    assert r.returncode == 0, r.stderr
    code = out.read_text()
    assert 'DATA_FILE = "../data/train.npz"' in code and str(tmp_path) not in code  # movable with its data
    from dlspec.runtime import load_module

    x, y, _, _ = load_module(out).load_data()
    assert x.shape == (40, 6) and len(y) == 40
