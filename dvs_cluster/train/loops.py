"""
Training loops: seg net (class-balanced CE), flow net (multi-scale masked EPE), DN (MSE on agreement).

Budgets are step counts (reproducible) with a wall-clock cap as a safety net for a shared machine;
when the cap truncates a run the number of steps actually taken is reported.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dvs_cluster.core.classes import IGNORE_LABEL, NUM_CLASSES
from dvs_cluster.train.data import FlowSet, SegSet, class_frequencies, flow_crops, log, seg_crops
from dvs_cluster.train.nets import DecisionNet, FlowNet, SegNet


@dataclass
class LoopConfig:
    """One training loop's budget."""

    steps: int
    batch: int
    crop_h: int
    crop_w: int
    lr: float
    max_seconds: float = math.inf
    log_every: int = 25


@dataclass
class LoopResult:
    """What the model card reports about a loop."""

    steps: int
    seconds: float
    final_loss: float


def _lr_at(progress: float, base: float) -> float:
    """Linear warm-up over the first 3 % then cosine to 2 % of base: robust with short CPU budgets."""
    if progress < 0.03:
        return base * max(progress, 0.001) / 0.03
    p = min(1.0, (progress - 0.03) / 0.97)
    return base * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * p)))


def _jitter(x: Tensor, gen: torch.Generator, same_for: int = 1) -> Tensor:
    """
    Brightness/contrast/saturation jitter on uint8 NHWC -> float NHWC (the nets accept float too).

    ``same_for`` > 1 applies one draw to consecutive groups (key and current of a pair).
    """
    n = x.shape[0] // same_for
    xf = x.to(torch.float32)
    b = (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 50.0
    c = 0.75 + 0.5 * torch.rand(n, 1, 1, 1, generator=gen)
    s = 0.7 + 0.6 * torch.rand(n, 1, 1, 1, generator=gen)
    if same_for > 1:
        b, c, s = (t.repeat(same_for, 1, 1, 1) for t in (b, c, s))
    b, c, s = (t.to(x.device) for t in (b, c, s))
    gray = xf.mean(dim=3, keepdim=True)
    xf = gray + (xf - gray) * s
    mean = xf.mean(dim=(1, 2, 3), keepdim=True)
    xf = (xf - mean) * c + mean + b
    return xf.clamp(0.0, 255.0)


def _run(
    name: str,
    cfg: LoopConfig,
    model: nn.Module,
    step_fn: Callable[[int], Tensor],
    params: list[nn.Parameter],
    weight_decay: float = 1e-4,
    on_checkpoint: Callable[[int, float], None] | None = None,
    checkpoint_every_s: float = 60.0,
) -> LoopResult:
    """
    The shared loop: AdamW, warm-up + cosine by progress (steps or wall clock), EMA loss log.

    ``on_checkpoint(steps_done, seconds)`` is called every ``checkpoint_every_s`` (model in train mode;
    the callback saves what it needs), so a run cut short by its host still leaves weights behind.
    """
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=weight_decay)
    model.train()
    t0 = time.time()
    last_ckpt = t0
    # The EMA stays a tensor on the model's device: reading a GPU loss every step would stall the queue.
    ema: Tensor | None = None
    step = 0
    for step in range(cfg.steps):
        # Progress is steps or wall clock, whichever is further: a capped run still anneals fully.
        progress = max(step / cfg.steps, (time.time() - t0) / cfg.max_seconds)
        if progress >= 1.0:
            log(f"[{name}] wall-clock cap {cfg.max_seconds:.0f}s reached after {step} steps")
            step -= 1
            break
        for g in opt.param_groups:
            g["lr"] = _lr_at(progress, cfg.lr)
        loss = step_fn(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        cur = loss.detach().float()
        ema = cur if ema is None else 0.95 * ema + 0.05 * cur
        el = time.time() - t0
        if on_checkpoint is not None and time.time() - last_ckpt >= checkpoint_every_s:
            on_checkpoint(step + 1, el)
            last_ckpt = time.time()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            eta = min(el / (step + 1) * (cfg.steps - step - 1), cfg.max_seconds - el)
            log(
                f"[{name}] step {step + 1}/{cfg.steps} loss {float(cur):.4f} (ema {float(ema):.4f}) "
                f"{el:.0f}s eta {eta:.0f}s"
            )
    model.eval()
    return LoopResult(step + 1, time.time() - t0, float("nan") if ema is None else float(ema))


def class_weights(s: SegSet) -> Tensor:
    """ENet-style 1/ln(1.02 + p) weights, normalised to mean 1 over present classes: helps thin classes."""
    freq = class_frequencies(s.labels, NUM_CLASSES)
    w = 1.0 / np.log(1.02 + freq)
    w = np.where(freq > 0, w, 0.0)
    w = w / w[freq > 0].mean()
    return torch.tensor(np.clip(w, 0.0, 10.0), dtype=torch.float32)


def train_seg(net: SegNet, data: SegSet, cfg: LoopConfig, seed: int, device: torch.device) -> LoopResult:
    """Cross-entropy on logits upsampled to the crop (thin classes need full-resolution supervision)."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    weights = class_weights(data).to(device)
    net.to(device)

    def step_fn(_: int) -> Tensor:
        xs, ys = seg_crops(data, cfg.batch, cfg.crop_h, cfg.crop_w, rng)
        x = _jitter(torch.from_numpy(xs), gen).to(device)
        y = torch.from_numpy(ys.astype(np.int64)).to(device)
        logits = net(x)
        up = F.interpolate(logits, size=y.shape[1:], mode="bilinear", align_corners=False)
        return F.cross_entropy(up, y, weight=weights, ignore_index=IGNORE_LABEL)

    res = _run("seg", cfg, net, step_fn, list(net.parameters()))
    net.cpu()
    return res


def _downsample_gt(flow: Tensor, valid: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """GT on a coarser grid: masked mean of the vectors (scaled to that grid); valid if >50 % valid."""
    if factor == 1:
        return flow, valid
    v = valid.to(flow.dtype).unsqueeze(1)
    num = F.avg_pool2d(flow * v, factor)
    den = F.avg_pool2d(v, factor)
    return num / den.clamp_min(1e-6) / factor, den.squeeze(1) > 0.5


def multiscale_epe(flows: list[Tensor], gt: Tensor, valid: Tensor) -> Tensor:
    """Masked EPE at 1/4 (weight 1) plus coarser levels (FlowNet-style deep supervision)."""
    weights = (1.0, 0.5, 0.25, 0.25, 0.25)
    total = flows[0].new_zeros(())
    for i, (fl, w) in enumerate(zip(flows, weights, strict=True)):
        g, v = _downsample_gt(gt, valid, 2**i)
        epe = torch.linalg.vector_norm(fl - g, dim=1)
        vm = v.to(epe.dtype)
        total = total + w * (epe * vm).sum() / vm.sum().clamp_min(1.0)
    return total


def train_flow(net: FlowNet, data: FlowSet, cfg: LoopConfig, seed: int, device: torch.device) -> LoopResult:
    """Multi-scale masked EPE against GT backward flow on the 1/4 grid."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    net.to(device)

    def step_fn(_: int) -> Tensor:
        ks, cs, fs, vs = flow_crops(data, cfg.batch, cfg.crop_h, cfg.crop_w, rng)
        both = _jitter(torch.from_numpy(np.concatenate([ks, cs])), gen, same_for=2).to(device)
        k, c = both[: cfg.batch], both[cfg.batch :]
        flows = net.forward_all(k, c)[0]
        return multiscale_epe(flows, torch.from_numpy(fs).to(device), torch.from_numpy(vs).to(device))

    res = _run("flow", cfg, net, step_fn, list(net.parameters()), weight_decay=1e-5)
    net.cpu()
    return res


def train_dn(
    net: DecisionNet,
    feats: npt.NDArray[np.float32],
    targets: npt.NDArray[np.float32],
    cfg: LoopConfig,
    seed: int,
) -> LoopResult:
    """MSE between DN score and the measured flow-path agreement (percent), as DVSNet."""
    rng = np.random.default_rng(seed)
    x_all = torch.from_numpy(feats)
    y_all = torch.from_numpy(targets).view(-1, 1)

    def step_fn(_: int) -> Tensor:
        idx = torch.from_numpy(rng.integers(0, len(x_all), cfg.batch))
        return F.mse_loss(net(x_all[idx]), y_all[idx])

    return _run("dn", cfg, net, step_fn, list(net.parameters()), weight_decay=1e-4)
