"""Tiny segmentation models built offline, loaded through exactly the paths real checkpoints take.

    python -m lightbox.testing.tiny_segmentation models/     # writes models/tiny-birefnet/ and models/tiny-seg.onnx

- ``tiny-birefnet/``: a ``PreTrainedModel`` with its own configuration and modeling files registered
  through ``auto_map`` (as BiRefNet's checkpoints ship), saved with ``save_pretrained``; Lightbox loads
  it with ``AutoModelForImageSegmentation.from_pretrained(path, trust_remote_code=True)``. Like
  BiRefNet it returns a list of logit maps, the last one final.
- ``tiny-seg.onnx``: the same network exported with ``torch.onnx`` (input ``1 x 3 x S x S`` or a
  dynamic batch), run by onnxruntime.

The network is a fixed "salient colour" detector, not a trained model: logits grow with a pixel's
colour distance from the mean colour of the image border (two learnable 1x1 layers, so weights really
are saved and loaded). It finds a product that differs from its surroundings - enough to test
plumbing, shapes, batching and routing, never a benchmark figure.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

CONFIG_SRC = '''
from transformers import PretrainedConfig


class TinySegConfig(PretrainedConfig):
    model_type = "tiny_birefnet"

    def __init__(self, image_size=128, gain=6.0, bias=-3.0, **kwargs):
        self.image_size = image_size
        self.gain = gain
        self.bias = bias
        super().__init__(**kwargs)
'''

NET_SRC = '''
import torch
from torch import nn


class SalientColour(nn.Module):
    """Logits from each pixel's colour distance to the mean colour of the image border."""

    def __init__(self, gain: float, bias: float):
        super().__init__()
        self.mix = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.mix.weight.fill_(gain / 3.0)
            self.mix.bias.fill_(bias)

    def forward(self, x):
        b = 2
        ring = torch.cat([x[:, :, :b, :].flatten(2), x[:, :, -b:, :].flatten(2),
                          x[:, :, :, :b].flatten(2), x[:, :, :, -b:].flatten(2)], dim=2)
        ref = ring.mean(dim=2, keepdim=True).unsqueeze(-1)
        return self.mix((x - ref).abs())
'''

MODELING_SRC = NET_SRC + '''
from transformers import PreTrainedModel

try:
    from .configuration_tinyseg import TinySegConfig
except ImportError:  # imported as a top-level module while the model is built
    from configuration_tinyseg import TinySegConfig


class TinySegModel(PreTrainedModel):
    config_class = TinySegConfig
    base_model_prefix = "tiny"

    def __init__(self, config):
        super().__init__(config)
        self.net = SalientColour(config.gain, config.bias)
        self.coarse = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.coarse.weight.fill_(1.0)
            self.coarse.bias.fill_(0.0)
        self.post_init()

    def _init_weights(self, module):
        pass  # weights are set in __init__ and by the checkpoint

    def forward(self, x):
        fine = self.net(x)
        return [self.coarse(fine) * 0.5, fine]  # like BiRefNet: one map per stage, the last is final
'''


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tiny_birefnet(directory: Path, image_size: int = 128, gain: float = 6.0, bias: float = -3.0) -> Path:
    """Write a tiny BiRefNet-like checkpoint (config, remote code via auto_map, weights) to ``directory``."""
    directory = Path(directory)
    with tempfile.TemporaryDirectory() as src:
        src = Path(src)
        (src / "configuration_tinyseg.py").write_text(CONFIG_SRC)
        (src / "modeling_tinyseg.py").write_text(MODELING_SRC)
        sys.path.insert(0, str(src))
        try:
            conf_mod = _load_module("configuration_tinyseg", src / "configuration_tinyseg.py")
            model_mod = _load_module("modeling_tinyseg", src / "modeling_tinyseg.py")
            conf_mod.TinySegConfig.register_for_auto_class()
            model_mod.TinySegModel.register_for_auto_class("AutoModelForImageSegmentation")
            model = model_mod.TinySegModel(conf_mod.TinySegConfig(image_size=image_size, gain=gain, bias=bias))
            model.save_pretrained(directory)
        finally:
            sys.path.remove(str(src))
            for name in ("configuration_tinyseg", "modeling_tinyseg"):
                sys.modules.pop(name, None)
    return directory


def tiny_onnx(path: Path, image_size: int = 128, gain: float = 6.0, bias: float = -3.0, dynamic_batch: bool = True) -> Path:
    """Export the same network with torch.onnx (opset 17) to ``path``."""
    import torch

    with tempfile.TemporaryDirectory() as src:
        (Path(src) / "tinyseg_net.py").write_text(NET_SRC)
        mod = _load_module("tinyseg_onnx_src", Path(src) / "tinyseg_net.py")
        net = mod.SalientColour(gain, bias).eval()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        axes = {"input": {0: "batch"}, "mask": {0: "batch"}} if dynamic_batch else None
        torch.onnx.export(net, (torch.zeros(1, 3, image_size, image_size),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["mask"], dynamic_axes=axes)
        sys.modules.pop("tinyseg_onnx_src", None)
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "models")
    tiny_birefnet(out / "tiny-birefnet")
    tiny_onnx(out / "tiny-seg.onnx")
    sys.stdout.write(f"wrote {out / 'tiny-birefnet'} and {out / 'tiny-seg.onnx'}\n")
