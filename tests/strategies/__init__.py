"""Hypothesis strategies for dlspec text.

`specs(kind)` draws VALID specs using every layer of dlspec's registry, each where the shape that
reaches it allows: chains, element-wise merges of branches, `concat`s, two-input layers (scale,
cross-attention, graph convolution, the VAE pair), blocks with parameters, blocks of dlspec's
libraries (`use resnet`, ...), `repeat`, constants, `activation=` and `init=`. Each layer's
arguments are drawn for its input shape; shapes are tracked by a small calculator written from the
language reference (shapes.py, independent of dlspec's checker), so a spec is valid by construction.

`ir_texts()` draws arbitrary text the grammar accepts, meaningful or not, for the parser/printer
round trip (ir_text.py).

Modules: parts.py (what a drawn spec is made of), shapes.py (the shape calculator), layers.py (one
layer for a shape), library.py (library blocks), bodies.py (moves, blocks, the spec text)."""

from .bodies import KINDS, specs
from .ir_text import ir_texts

__all__ = ["KINDS", "ir_texts", "specs"]
