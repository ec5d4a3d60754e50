"""The layer registry: `LAYERS` maps each layer name to its entry. Importing this package
registers every family; add a layer by adding an entry to the module of its family."""

from . import activations, attention, conv, dense, generative, graph_conv, norm, pool, recurrent, resize, structure  # noqa: F401  (registers)
from .activations import ACTIVATIONS
from .base import ANY, CHANNELS_LAST, LAYERS, LOGICAL, Layer, keras_axis

__all__ = ["ACTIVATIONS", "ANY", "CHANNELS_LAST", "LAYERS", "LOGICAL", "Layer", "keras_axis"]
