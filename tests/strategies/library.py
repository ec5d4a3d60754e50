"""Calls of the blocks of dlspec's libraries (`use resnet`, ...), each with its shape rule written
from the library's file (dlspec/stdlib/*.dls), for the shape that reaches it."""

from __future__ import annotations

from hypothesis import strategies as st

from .parts import Block, Invalid, divisors
from .shapes import keras_bias_ok


def _need(ok: bool) -> None:
    if not ok:
        raise Invalid("library block does not fit")


def _strided(a, s):
    """A stride-`stride` 1×1 (valid) or 3×3 (padding 1 or same) convolution of [C, H, W]: ceil(n / s)."""
    _need(len(s) == 3)
    return tuple(-(-n // a.get("stride", 1)) for n in s[1:])


def _map(s, rank=3):
    _need(len(s) == rank)
    return s


def _seq(s, width):
    _need(len(s) == 2 and s[1] == width and width >= 2)
    return s


# name: (library, [(parameter, default or None)], rule(arguments, [shape]) -> shape)
BLOCKS = {
    "basic": ("resnet", [("filters", None), ("stride", 1)], lambda a, ss: (a["filters"], *_strided(a, ss[0]))),
    "basic_identity": ("resnet", [("filters", None)], lambda a, ss: _map(ss[0]) if ss[0][0] == a["filters"] else _need(False)),
    "bottleneck": ("resnet", [("filters", None), ("out", None), ("stride", 1)], lambda a, ss: (a["out"], *_strided(a, ss[0]))),
    "bottleneck_identity": ("resnet", [("filters", None), ("out", None)],
                            lambda a, ss: _map(ss[0]) if ss[0][0] == a["out"] else _need(False)),
    "dense_layer": ("densenet", [("growth", None), ("bottleneck", 128)], lambda a, ss: (_map(ss[0])[0] + a["growth"], *ss[0][1:])),
    "transition": ("densenet", [("filters", None)],
                   lambda a, ss: (a["filters"], *(n // 2 for n in _map(ss[0])[1:])) if min(ss[0][1:]) >= 2 else _need(False)),
    "inverted_residual": ("mobilenet", [("expanded", None), ("out", None), ("stride", 1)],
                          lambda a, ss: (a["out"], *_strided(a, ss[0]))),
    "inverted_residual_add": ("mobilenet", [("expanded", None), ("out", None)],
                              lambda a, ss: _map(ss[0]) if ss[0][0] == a["out"] else _need(False)),
    "squeeze_excite": ("mobilenet", [("channels", None), ("reduced", None)],
                       lambda a, ss: ss[0] if len(ss[0]) >= 2 and ss[0][0] == a["channels"] else _need(False)),
    "encoder_block": ("transformer", [("width", None), ("heads", None), ("ff", None), ("dropout", 0.1), ("causal", False)],
                      lambda a, ss: _seq(ss[0], a["width"]) if a["width"] % a["heads"] == 0
                      and keras_bias_ok(ss[0], a["heads"]) else _need(False)),
}
LIBRARY_BLOCKS = {name: Block(name, params, None, {}, library, rule) for name, (library, params, rule) in BLOCKS.items()}


def library_calls(draw, s: tuple, width: int) -> list[tuple[Block, dict]]:
    """(block, arguments) of the library blocks that fit shape `s`, with drawn arguments; widths at most `width`."""
    w = lambda: draw(st.integers(1, width))
    stride = lambda: draw(st.sampled_from([1, 2]))
    calls = []
    if len(s) == 3:
        c = s[0]
        calls += [("basic", {"filters": w(), "stride": stride()}), ("basic_identity", {"filters": c}),
                  ("bottleneck", {"filters": w(), "out": w(), "stride": stride()}),
                  ("bottleneck_identity", {"filters": w(), "out": c}),
                  ("inverted_residual", {"expanded": w(), "out": w(), "stride": stride()}),
                  ("inverted_residual_add", {"expanded": w(), "out": c})]
        if c < width:
            calls.append(("dense_layer", {"growth": draw(st.integers(1, width - c)), "bottleneck": w()}))
        if min(s[1:]) >= 2:
            calls.append(("transition", {"filters": w()}))
    if len(s) >= 2:
        calls.append(("squeeze_excite", {"channels": s[0], "reduced": w()}))
    if len(s) == 2 and s[1] >= 2:
        calls.append(("encoder_block", {"width": s[1], "heads": draw(st.sampled_from(divisors(s[1]))), "ff": w(),
                                        "dropout": draw(st.sampled_from([0.1, 0.0])), "causal": draw(st.booleans())}))
    return [(LIBRARY_BLOCKS[name], args) for name, args in calls]
