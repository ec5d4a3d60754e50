"""PyTorch output: an `nn.Module` whose attributes and forward() variables follow the spec's names."""

from __future__ import annotations

from dlspec.registry import ident
from dlspec.schedules import TORCH_EXPR

from .codegen import Generator


class TorchGenerator(Generator):
    target = "torch"
    template = "torch.py.j2"
    expr = TORCH_EXPR

    def model_context(self, g):
        modules, init, forward = [], [], []
        for n in g.nodes:
            name = ident(n.name)
            mod = f"self.{name}"
            module = n.layer.torch_module(n)
            if module is not None:
                modules.append(f"{mod} = {module}")
                init += n.layer.torch_init(n, mod)
            xs = [ident(i) for i in n.inputs]
            forward.append(f"{name} = {n.layer.torch_forward(n, mod, xs)}")
        outs = [ident(o) for o in g.outputs]
        return {
            "modules": modules,
            "init": init,
            "forward": forward,
            "forward_args": ", ".join(ident(t.name) for t in g.inputs),
            "returns": ", ".join(outs),
            "uses_functional": any("F." in line for line in forward),
        }

    def training_context(self):
        p = self.plan
        return {
            "optimizer": p.optimizer.torch("model.parameters()"),
            "d_optimizer": p.d_optimizer.torch("model.parameters()") if p.d_optimizer else None,  # a GAN's discriminator
        }
