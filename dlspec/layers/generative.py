"""Layers of variational autoencoders: the reparameterized sample and its KL term. Both read
`(mean, log_var)`, two tensors of one shape, log_var being the log of the variance."""

from __future__ import annotations

from ..registry import Code, ShapeError, fmt_shape, fn
from .base import Layer, layer


def _mean_and_log_var(op: str, shapes) -> None:
    if len(shapes) != 2 or shapes[0] != shapes[1]:
        got = " and ".join(fmt_shape(s) for s in shapes)
        raise ShapeError(f"{op} takes two inputs of one shape, the mean and the log-variance, got {got}",
                         hint=f"write `(mean, log_var) -> {op}()`, e.g. both from a `dense(latent)`")


@layer
class SampleNormal(Layer):
    """Draws z ~ N(mean, exp(log_var)) by reparameterization: z = mean + exp(0.5 · log_var) · ε,
    ε ~ N(0, 1), so gradients reach mean and log_var. In training only: in inference (evaluation,
    prediction, `dls verify`) z = mean, so that outputs are reproducible and both backends compare
    equal. The two outputs draw ε from their own generators (seeded by the spec's seed), so
    training draws agree in distribution, not bit for bit."""

    name = "sample_normal"
    example = "sample_normal()"
    arity = None
    torch_classes = ("sample_normal",)
    keras_classes = ("sample_normal",)

    def infer(self, shapes):
        _mean_and_log_var("sample_normal", shapes)
        return shapes[0]

    def torch_module(self, node):
        return "SampleNormal()"

    def torch_forward(self, node, mod, xs):
        return f"{mod}({xs[0]}, {xs[1]})"

    def keras_layer(self, node, layout):
        return fn("SampleNormal", seed=Code("SEED"), name=node.name)


@layer
class KlNormal(Layer):
    """The KL divergence of N(mean, exp(log_var)) from N(0, I), per sample: a [1] tensor
    −0.5 · Σ (1 + log_var − mean² − exp(log_var)), summed over every non-batch axis. Output it
    and let a loss read it (e.g. the VAE loss adds it to the reconstruction loss)."""

    name = "kl_normal"
    example = "kl_normal()"
    arity = None
    keras_classes = ("sample_kl_normal",)

    def infer(self, shapes):
        _mean_and_log_var("kl_normal", shapes)
        return (1,)

    def torch_forward(self, node, mod, xs):
        m, v = xs
        return f"-0.5 * (1 + {v} - {m} ** 2 - torch.exp({v})).flatten(1).sum(1, keepdim=True)"

    def keras_layer(self, node, layout):
        return fn("KlNormal", name=node.name)
