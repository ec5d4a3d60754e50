"""The metrics' numpy code (the same text in both outputs) against scikit-learn's definitions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from dlspec.check import check_text
from dlspec.runtime import load_generated

SPEC = """
model Net {{
  input x: [3]
  dense(5)
}}

train {{
  data: synthetic(task={task})
  loss: {loss}
  metrics: [{metrics}]
}}
"""


@pytest.fixture(scope="module")
def classification(tmp_path_factory):
    text = SPEC.format(task="classification", loss="cross_entropy()",
                       metrics="accuracy, top_k(2), precision, recall, f1, precision(micro), recall(micro), f1(micro), confusion_matrix")
    return load_generated(check_text(text), "torch", tmp_path_factory.mktemp("cls"))


def test_classification_metrics_match_scikit_learn(classification):
    rng = np.random.default_rng(0)
    out, y = rng.standard_normal((200, 5)), rng.integers(0, 5, 200)
    y[y == 4] = 3  # a class that never occurs: macro averages must count it as scikit-learn does
    got = classification.compute_metrics(out, y)
    pred = out.argmax(axis=1)
    labels = list(range(5))
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert got["top2_accuracy"] == pytest.approx(sk.top_k_accuracy_score(y, out, k=2, labels=labels))
    for name, fn in (("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)):
        for average in ("macro", "micro"):
            expected = fn(y, pred, average=average, labels=labels, zero_division=0)
            assert got[f"{name}_{average}"] == pytest.approx(expected), (name, average)
    np.testing.assert_array_equal(classification.confusion_matrix(out, y), sk.confusion_matrix(y, pred, labels=labels))


def test_regression_and_binary_metrics_match_scikit_learn(tmp_path):
    rng = np.random.default_rng(1)
    reg = load_generated(check_text(SPEC.format(task="regression", loss="mse()", metrics="mae, mse, r2")), "torch", tmp_path)
    out, y = rng.standard_normal((100, 5)), rng.standard_normal((100, 5))
    got = reg.compute_metrics(out, y)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, out))
    assert got["mse"] == pytest.approx(sk.mean_squared_error(y, out))
    assert got["r2"] == pytest.approx(1 - np.sum((y - out) ** 2) / np.sum((y - y.mean()) ** 2))
    binary = load_generated(check_text(SPEC.format(task="binary", loss="binary_cross_entropy()", metrics="auroc")), "torch", tmp_path / "b")
    scores, labels = np.round(rng.standard_normal((100, 5)), 1), (rng.random((100, 5)) > 0.4).astype(float)  # ties too
    expected = np.mean([sk.roc_auc_score(labels[:, j], scores[:, j]) for j in range(5)])
    assert binary.compute_metrics(scores, labels)["auroc"] == pytest.approx(expected)


def test_a_metric_that_does_not_fit_the_task_is_an_error():
    from dlspec.diagnostics import DlsError

    with pytest.raises(DlsError, match="needs real-valued targets"):
        check_text(SPEC.format(task="classification", loss="cross_entropy()", metrics="r2"))
