"""Data augmentation, applied to training batches only. Each operation is one numpy function
(backends/templates/_augment.py.j2), the same text in both outputs and fed the same seeded random
generator, so with a seed both outputs see the same augmented batches, bit for bit. Images are
[channels, height, width]; random values are drawn per sample."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from .registry import Entry, Float, NonNegInt, PositiveFloat, PositiveInt, registry_of

AUGMENTATIONS, augmentation = registry_of("augmentation")
Fraction = Annotated[Float, Field(gt=0.0, lt=1.0)]
IMAGE, COLOUR, TOKENS = "image", "colour image", "tokens"


class Augmentation(Entry):
    kind: ClassVar[str] = "augmentation"
    needs: ClassVar[str] = IMAGE  # what the model's input must be


@augmentation
class Flip(Augmentation):
    """Mirror left-right (horizontal) and/or top-bottom (vertical), each with probability p."""

    name = "flip"
    horizontal: bool = True
    vertical: bool = False
    p: Fraction = 0.5


@augmentation
class Rotation(Augmentation):
    """Rotate about the centre by an angle drawn from U(-degrees, degrees); nearest pixel, zeros outside."""

    name = "rotation"
    positional = ("degrees",)
    degrees: Annotated[Float, Field(gt=0.0, le=180.0)]


@augmentation
class Zoom(Augmentation):
    """Scale about the centre by a factor drawn from U(1 - factor, 1 + factor); nearest pixel, zeros outside."""

    name = "zoom"
    positional = ("factor",)
    factor: Fraction


@augmentation
class Translate(Augmentation):
    """Shift by whole pixels drawn from U(-fraction, fraction) of the height and of the width; zeros fill."""

    name = "translate"
    positional = ("fraction",)
    fraction: Fraction


@augmentation
class Crop(Augmentation):
    """Pad every side with `padding` zeros, then crop a random window of the original size."""

    name = "crop"
    positional = ("padding",)
    padding: PositiveInt


@augmentation
class Brightness(Augmentation):
    """Add a value drawn from U(-delta, delta) to every pixel (additive, as TensorFlow's adjust_brightness)."""

    name = "brightness"
    positional = ("delta",)
    delta: PositiveFloat


@augmentation
class Contrast(Augmentation):
    """Scale each channel's deviation from its mean by a factor drawn from U(1 - factor, 1 + factor)."""

    name = "contrast"
    positional = ("factor",)
    factor: Fraction


@augmentation
class Saturation(Augmentation):
    """Scale the distance of each RGB pixel from its grey (luma) value by U(1 - factor, 1 + factor)."""

    name = "saturation"
    positional = ("factor",)
    needs = COLOUR
    factor: Fraction


@augmentation
class Hue(Augmentation):
    """Rotate the hue of RGB images by an angle drawn from U(-delta, delta) turns (in YIQ space)."""

    name = "hue"
    positional = ("delta",)
    needs = COLOUR
    delta: Annotated[Float, Field(gt=0.0, le=0.5)]


@augmentation
class Noise(Augmentation):
    """Add Gaussian noise N(0, std²) to every value."""

    name = "noise"
    positional = ("std",)
    std: PositiveFloat


@augmentation
class Cutout(Augmentation):
    """Zero a size × size square (clipped at the borders) centred on a random pixel (DeVries & Taylor)."""

    name = "cutout"
    positional = ("size",)
    size: PositiveInt


@augmentation
class TokenMask(Augmentation):
    """Replace each token id by `mask` (an id, 0 unless given) with probability rate."""

    name = "token_mask"
    positional = ("rate",)
    needs = TOKENS
    rate: Fraction
    mask: NonNegInt = 0
