"""The property tests stand on tests/strategies: every spec they draw must be valid. Drawing and
checking a spec takes milliseconds, so this draws many more than the framework tests do and finds
a strategy bug (a layer drawn where its shape does not fit) before a slow test trips on it."""

from __future__ import annotations

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from dlspec.check import check_text

from .strategies import KINDS, specs


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=settings.default.max_examples * 2)
@given(data=st.data())
def test_every_drawn_spec_checks(kind, data):
    text = data.draw(specs(kind), label="spec")
    note(text)
    checked = check_text(text, "drawn.dls")  # raises a DlsError if the spec is not valid
    assert len(checked.graphs) == 1 and checked.plan is not None
