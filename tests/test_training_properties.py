"""Training equality as a property: for random small models (dense, convolution with batch norm,
recurrent layers), random optimizers with random hyperparameters, random schedules with warm-up,
clipping and l1/l2 penalties, k = 4 optimizer steps on the same batches leave the same parameters
(and batch-norm statistics) in both outputs, and the learning rate is the same at every step.

Tolerance: relative 1e-9 in float64, or 1e-8 of a step (lr) for values near 0, as
tests/test_optimizers.py states: steps of size ~lr leave room only for float64 rounding; any
mismatched convention (epsilon placement, accumulator start, clip scope, penalty vs decay, momentum
of the statistics) is >= 1e-4 of a step."""

from __future__ import annotations

from hypothesis import given, note, settings
from hypothesis import strategies as st

from .test_optimizers import _run

LR = st.sampled_from([0.003, 0.01, 0.05])
BETA = st.sampled_from([0.5, 0.9, 0.99])
EPS = st.sampled_from([1e-8, 1e-4, 1e-2])  # large ones show where epsilon is added


@st.composite
def optimizers(draw) -> str:
    kind = draw(st.sampled_from(["sgd", "adam", "adamw", "adagrad", "rmsprop", "adamax", "nadam"]))
    lr = draw(LR)
    if kind == "sgd":
        momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
        nesterov = "true" if momentum and draw(st.booleans()) else "false"
        return f"sgd(lr={lr}, momentum={momentum}, nesterov={nesterov})"
    if kind in ("adam", "adamax", "nadam"):
        return f"{kind}(lr={lr}, beta1={draw(BETA)}, beta2={draw(st.sampled_from([0.9, 0.999]))}, eps={draw(EPS)})"
    if kind == "adamw":
        return f"adamw(lr={lr}, eps={draw(EPS)}, weight_decay={draw(st.sampled_from([0.0, 0.01, 0.3]))})"
    if kind == "adagrad":
        return f"adagrad(lr={lr}, eps={draw(EPS)}, initial_accumulator={draw(st.sampled_from([0.0, 0.1, 0.5]))})"
    centered = "true" if draw(st.booleans()) else "false"
    return f"rmsprop(lr={lr}, alpha={draw(BETA)}, eps={draw(EPS)}, momentum={draw(st.sampled_from([0.0, 0.5]))}, centered={centered})"


@st.composite
def schedules(draw) -> str:
    warmup = draw(st.sampled_from([0, 0, 2]))
    w = f"warmup={warmup}" if warmup else ""
    body = draw(st.sampled_from([
        "constant({w})", "step(1, gamma=0.5, unit=step{c}{w})", "exponential(0.7, unit=step{c}{w})",
        "exponential(0.5, staircase=true, unit=step{c}{w})", "cosine({w})", "cosine(min_ratio=0.2{c}{w})",
        "one_cycle({w})", "multistep([1, 3], unit=step{c}{w})",
    ]))
    return body.format(w=w, c=", " if w else "")


@st.composite
def models(draw) -> tuple[str, str]:
    """(input declaration, layers): the last layer gives 4 classes."""
    kind = draw(st.sampled_from(["vector", "image", "sequence"]))
    act = draw(st.sampled_from(["relu", "tanh", "silu", "elu"]))
    if kind == "vector":
        width = draw(st.integers(3, 9))
        norm = draw(st.sampled_from(["", " -> layernorm()", " -> batchnorm()"]))
        return "input x: [7]", f"x -> dense({width}, activation={act}){norm} -> dense(4)"
    if kind == "image":
        filters = draw(st.integers(2, 5))
        norm = draw(st.sampled_from([" -> batchnorm()", " -> groupnorm(1)", ""]))
        stride = draw(st.sampled_from([1, 2]))
        return "input x: [3, 6, 5]", f"x -> conv2d({filters}, 3, stride={stride}, padding=same){norm} -> {act}() -> flatten() -> dense(4)"
    cell = draw(st.sampled_from(["rnn", "lstm", "gru"]))
    extra = draw(st.sampled_from(["", ", bidirectional=true", ", layers=2"]))
    return "input x: [5, 3]", f"x -> {cell}({draw(st.integers(2, 6))}{extra}) -> dense(4)"


@st.composite
def extras(draw) -> str:
    lines = []
    if draw(st.booleans()):
        lines.append(f"clip_norm: {draw(st.sampled_from([0.05, 1.0]))}")
    if draw(st.booleans()):
        lines.append(f"clip_value: {draw(st.sampled_from([0.002, 0.05]))}")
    if draw(st.booleans()):
        lines.append(f"l2: {draw(st.sampled_from([0.001, 0.05]))}")
    if draw(st.booleans()):
        lines.append(f"l1: {draw(st.sampled_from([0.0001, 0.01]))}")
    return "\n  ".join(lines)


SPEC = """model Net {{
  {input}
  {layers}
}}

train {{
  data: synthetic(samples=64)
  optimizer: {optimizer}
  schedule: {schedule}
  epochs: 2
  batch_size: 16
  {extra}
}}
"""


@settings(max_examples=int(settings().max_examples * 0.3))  # ~20 in the ci profile: each builds both models
@given(model=models(), optimizer=optimizers(), schedule=schedules(), extra=extras())
def test_k_steps_of_random_training_setups_agree(model, optimizer, schedule, extra, tmp_path_factory):
    text = SPEC.format(input=model[0], layers=model[1], optimizer=optimizer, schedule=schedule, extra=extra)
    note(text)
    _run(text, tmp_path_factory.mktemp("train"))
