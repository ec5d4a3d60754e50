"""Hypothesis profiles. `ci` is the default (`make test`): enough examples that the property tests
run a few hundred generated specs through both backends in a few minutes on 2 cores, the same
examples on every run (derandomized: a landing's CI passes or fails as the developer's run did, and
a failure reproduces). `dev` runs fewer, for iterating: `pytest --hypothesis-profile=dev` (or
HYPOTHESIS_PROFILE=dev). `deep` runs several hundred fresh random examples each time, to shake out
rare combinations of layers: `make explore` runs it on the property tests."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Each pytest-xdist worker (`make test` runs two, on two cores) gets one thread per framework:
# PyTorch's and TensorFlow's thread pools of one worker otherwise spin against the other's.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(_var, "1")

# Building a Keras model takes 0.1-0.3 s, so examples are slow by Hypothesis's standards: no
# deadline, and no health check failing a strategy for being slow.
settings.register_profile("ci", max_examples=70, deadline=None, print_blob=True, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=8)
settings.register_profile("deep", parent=settings.get_profile("ci"), max_examples=300, derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
