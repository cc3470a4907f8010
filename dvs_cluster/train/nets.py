"""
The three DVSNet networks, sized for one CPU core per region on an embedded board.

All graphs take raw uint8 NHWC RGB (the runtime hands camera pixels straight in) and normalise inside,
so the ONNX files are the whole contract (docs/DESIGN.md). Only ops that export with dynamic N, H, W
are used: strided convs, bilinear resize by a fixed factor, global pooling and matmuls.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dvs_cluster.core.classes import NUM_CLASSES

# ImageNet statistics in RGB order, on the 0..255 scale.
_MEAN = (123.675, 116.28, 103.53)
_STD = (58.395, 57.12, 57.375)

FEATURE_CHANNELS = 64
FEATURE_GRID = (4, 8)


def _normalise(image: Tensor) -> Tensor:
    """uint8 NHWC RGB -> float NCHW, ImageNet-normalised (inside the graph, so the runtime does nothing)."""
    x = image.permute(0, 3, 1, 2).to(torch.float32)
    mean = torch.tensor(_MEAN, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(_STD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def conv_bn(
    cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1
) -> nn.Sequential:
    """Conv + BN + ReLU; BN folds into the conv at export, so it is free at run time."""
    pad = dilation * (k // 2)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DSBlock(nn.Module):
    """Depthwise-separable residual block: the cheapest way to add depth and receptive field."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.dw = nn.Sequential(
            nn.Conv2d(cin, cin, 3, stride, dilation, dilation=dilation, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
        )
        self.pw = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        """Residual only when shapes match (stride 1, same width)."""
        y = self.pw(F.relu(self.dw(x)))
        if self.residual:
            y = y + x
        return F.relu(y)


@dataclass(frozen=True)
class SegConfig:
    """Widths of the segmentation net; tuned with train/cost.py against the 80 ms budget."""

    stem: int = 32
    c4: int = 64
    c8: int = 128
    c16: int = 192
    c32: int = 320
    n16: int = 4
    n32: int = 4
    ctx: int = 160
    dec: int = 128


class SegNet(nn.Module):
    """Compact encoder-decoder: 1/32 encoder, ASPP-lite context, skip at 1/4, logits at output stride 4."""

    def __init__(self, cfg: SegConfig | None = None) -> None:
        super().__init__()
        c = cfg or SegConfig()
        self.cfg = c
        self.stem = nn.Sequential(conv_bn(3, c.stem, stride=2), conv_bn(c.stem, c.c4, stride=2))
        self.s4 = DSBlock(c.c4, c.c4)
        self.s8 = nn.Sequential(DSBlock(c.c4, c.c8, stride=2), DSBlock(c.c8, c.c8))
        self.s16 = nn.Sequential(
            DSBlock(c.c8, c.c16, stride=2), *[DSBlock(c.c16, c.c16) for _ in range(c.n16 - 1)]
        )
        self.s32 = nn.Sequential(
            DSBlock(c.c16, c.c32, stride=2),
            *[DSBlock(c.c32, c.c32, dilation=1 + i % 2) for i in range(c.n32 - 1)],
        )
        # ASPP-lite on the 1/32 grid: 1x1, two dilated depthwise branches and the global context.
        self.aspp1 = conv_bn(c.c32, c.ctx, k=1)
        self.aspp2 = nn.Sequential(
            nn.Conv2d(c.c32, c.c32, 3, 1, 2, dilation=2, groups=c.c32, bias=False), conv_bn(c.c32, c.ctx, k=1)
        )
        self.aspp3 = nn.Sequential(
            nn.Conv2d(c.c32, c.c32, 3, 1, 4, dilation=4, groups=c.c32, bias=False), conv_bn(c.c32, c.ctx, k=1)
        )
        self.aspp_pool = nn.Sequential(nn.Conv2d(c.c32, c.ctx, 1), nn.ReLU(inplace=True))
        self.aspp_out = conv_bn(c.ctx, c.ctx, k=1)
        self.up8 = conv_bn(c.ctx + c.c8, c.dec, k=1)
        self.skip4 = conv_bn(c.c4, c.dec // 2, k=1)
        self.dec = nn.Sequential(DSBlock(c.dec + c.dec // 2, c.dec), DSBlock(c.dec, c.dec))
        self.cls = nn.Conv2d(c.dec, NUM_CLASSES, 1)

    def forward(self, image: Tensor) -> Tensor:
        """uint8 [N,H,W,3] -> logits [N,19,H/4,W/4]."""
        x = _normalise(image)
        f4 = self.s4(self.stem(x))
        f8 = self.s8(f4)
        f32 = self.s32(self.s16(f8))
        g = self.aspp_pool(f32.mean(dim=(2, 3), keepdim=True))
        ctx = self.aspp1(f32) + self.aspp2(f32) + self.aspp3(f32) + g
        ctx = self.aspp_out(ctx)
        ctx = F.interpolate(ctx, scale_factor=4.0, mode="bilinear", align_corners=False)
        y = self.up8(torch.cat([ctx, f8], dim=1))
        y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        y = self.dec(torch.cat([y, self.skip4(f4)], dim=1))
        out: Tensor = self.cls(y)
        return out


def _pool_matrix(size: int, out: int, like: Tensor) -> Tensor:
    """(out, size) averaging matrix with PyTorch's adaptive-pool bins; traced sizes stay dynamic."""
    pos = torch.arange(size, dtype=torch.float32, device=like.device)
    s = torch.ones_like(pos).sum()  # the size as a tensor, so ONNX computes it from the input shape
    i = torch.arange(out, dtype=torch.float32, device=like.device).view(out, 1)
    start = torch.floor(i * s / out)
    end = torch.ceil((i + 1) * s / out)
    m = ((pos.view(1, -1) >= start) & (pos.view(1, -1) < end)).to(torch.float32)
    return m / m.sum(dim=1, keepdim=True)


def adaptive_avg_pool(x: Tensor, out_h: int, out_w: int) -> Tensor:
    """
    Exact adaptive average pooling written as two matmuls.

    torch's adaptive_avg_pool2d exports to ONNX only for static input sizes; pooling matrices built
    from the traced shape keep H and W dynamic and reproduce its bins exactly.
    """
    mh = _pool_matrix(x.shape[2], out_h, x)  # (out_h, H)
    mw = _pool_matrix(x.shape[3], out_w, x)  # (out_w, W)
    return torch.matmul(torch.matmul(mh, x), mw.t())


@dataclass(frozen=True)
class FlowConfig:
    """Widths of the flow net (FlowNet-S layout, much thinner); tuned so seg >= 5x (flow + DN)."""

    c: tuple[int, int, int, int, int] = (16, 32, 48, 64, 96)
    dec: tuple[int, int, int] = (32, 24, 16)


class FlowNet(nn.Module):
    """
    FlowNet-S-like: both frames at half resolution, 6-channel input, encoder to 1/64 of the region.

    Outputs backward flow (current -> key) at 1/4 of the region in pixels of that grid, the coarser
    predictions (for the multi-scale loss) and the deepest features pooled to 4x8 for the DN.
    """

    def __init__(self, cfg: FlowConfig | None = None) -> None:
        super().__init__()
        c = (cfg or FlowConfig()).c
        d = (cfg or FlowConfig()).dec
        # Levels relative to the region: e1 1/4, e2 1/8, e3 1/16, e4 1/32, e5 1/64.
        self.e1 = conv_bn(6, c[0], k=3, stride=2)
        self.e2 = nn.Sequential(conv_bn(c[0], c[1], stride=2), conv_bn(c[1], c[1]))
        self.e3 = nn.Sequential(conv_bn(c[1], c[2], stride=2), conv_bn(c[2], c[2]))
        self.e4 = nn.Sequential(conv_bn(c[2], c[3], stride=2), conv_bn(c[3], c[3]))
        self.e5 = nn.Sequential(conv_bn(c[3], c[4], stride=2), conv_bn(c[4], FEATURE_CHANNELS))
        self.p5 = nn.Conv2d(FEATURE_CHANNELS, 2, 3, 1, 1)
        self.u5 = conv_bn(FEATURE_CHANNELS, d[0])
        self.p4 = nn.Conv2d(c[3] + d[0] + 2, 2, 3, 1, 1)
        self.u4 = conv_bn(c[3] + d[0] + 2, d[1])
        self.p3 = nn.Conv2d(c[2] + d[1] + 2, 2, 3, 1, 1)
        self.u3 = conv_bn(c[2] + d[1] + 2, d[2])
        self.p2 = nn.Conv2d(c[1] + d[2] + 2, 2, 3, 1, 1)

    @staticmethod
    def _up(x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward_all(self, key: Tensor, current: Tensor) -> tuple[list[Tensor], Tensor]:
        """Flows at 1/4, 1/8, 1/16, 1/32, 1/64 (each in pixels of its own grid) and the 4x8 features."""
        x = torch.cat([_normalise(current), _normalise(key)], dim=1)
        x = F.avg_pool2d(x, 2)  # half resolution, as DVSNet
        f1 = self.e1(x)
        f2 = self.e2(f1)
        f3 = self.e3(f2)
        f4 = self.e4(f3)
        f5 = self.e5(f4)
        fl5 = self.p5(f5)
        y = torch.cat([f4, self._up(self.u5(f5)), self._up(fl5) * 2.0], dim=1)
        fl4 = self.p4(y) + self._up(fl5) * 2.0
        y = torch.cat([f3, self._up(self.u4(y)), self._up(fl4) * 2.0], dim=1)
        fl3 = self.p3(y) + self._up(fl4) * 2.0
        y = torch.cat([f2, self._up(self.u3(y)), self._up(fl3) * 2.0], dim=1)
        fl2 = self.p2(y) + self._up(fl3) * 2.0
        fl1 = self._up(fl2) * 2.0  # 1/4 grid by bilinear upsampling, as cheap as DVSNet's 1/8 output
        feats = adaptive_avg_pool(f5, *FEATURE_GRID)
        return [fl1, fl2, fl3, fl4, fl5], feats

    def forward(self, key: Tensor, current: Tensor) -> tuple[Tensor, Tensor]:
        """uint8 key, current [N,H,W,3] -> flow [N,2,H/4,W/4], features [N,64,4,8]."""
        flows, feats = self.forward_all(key, current)
        return flows[0], feats


class DecisionNet(nn.Module):
    """DVSNet's DN, shrunk: 3x3 conv -> FC -> FC -> score in 0..100 (a sigmoid keeps it in range)."""

    def __init__(self, conv: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.conv = nn.Conv2d(FEATURE_CHANNELS, conv, 3, 1, 1)
        self.fc1 = nn.Linear(conv * FEATURE_GRID[0] * FEATURE_GRID[1], hidden)
        self.fc2 = nn.Linear(hidden, 16)
        self.fc3 = nn.Linear(16, 1)
        # Start near the typical agreement (~90 %) so early MSE is not dominated by the offset.
        nn.init.constant_(self.fc3.bias, 2.2)

    def forward(self, features: Tensor) -> Tensor:
        """Map features [N,64,4,8] to score [N,1] (percent of pixels where the flow path agrees)."""
        x = F.leaky_relu(self.conv(features), 0.1)
        x = F.leaky_relu(self.fc1(torch.flatten(x, 1)), 0.1)
        x = F.leaky_relu(self.fc2(x), 0.1)
        return 100.0 * torch.sigmoid(self.fc3(x))


def param_count(m: nn.Module) -> int:
    """Trainable parameters, for the model card."""
    return sum(p.numel() for p in m.parameters() if p.requires_grad)
