"""
Training crops drawn on the training device, with rare-class sampling.

Why: on a GPU the seg step takes milliseconds while the numpy crop loop (``data.seg_crops``,
``datasets.real_crops``) takes as long again per batch in one Python thread. Here the whole set lives on
the device as uint8 and a batch of crops is a handful of gathers. The geometry is that of
``datasets.crop_at_scale`` (a window at (x0, y0) resampled by ``scale``, optional horizontal flip;
bilinear image with edge replication, nearest labels with 255 outside), so scale 1 and integer offsets
copy pixels exactly, as ``data.seg_crops`` does.

Rare-class sampling (as in DAFormer, Hoyer et al. 2022): a share of the crops is centred near a pixel
of a class drawn with probability proportional to freq^-power, so the thin classes a uniform crop
rarely holds (fences, bicycles, signs) are seen in most batches. Crops still hold whatever surrounds
that pixel, and the class-weighted loss is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from dvs_cluster.core.classes import IGNORE_LABEL, NUM_CLASSES

U8 = npt.NDArray[np.uint8]

# Rare-class coordinates are kept on a grid of this step (pixels) and at most this many per class.
COORD_STEP = 8
COORD_CAP = 2_000_000


class DeviceCrops:
    """
    One image set on ``device``; ``sample`` returns (float NHWC images 0..255, int64 labels).

    ``base_scale``: per-image scale (the run-time letterbox scale; 1 for synthetic frames);
    ``jitter``: log-uniform factor range on top (None: none, and integer offsets: exact copies);
    ``rare``: share of crops placed by rare-class sampling; ``power``: class probability ~ freq^-power.
    """

    def __init__(
        self,
        images: U8 | Sequence[U8],
        labels: U8 | Sequence[U8],
        device: torch.device,
        base_scale: float | Sequence[float] = 1.0,
        jitter: tuple[float, float] | None = None,
        rare: float = 0.0,
        power: float = 0.5,
        seed: int = 0,
    ) -> None:
        shapes = {np.shape(im)[:2] for im in images} | {np.shape(lb)[:2] for lb in labels}
        if len(shapes) != 1:
            raise ValueError(f"DeviceCrops needs images and labels of one size, got {sorted(shapes)}")
        self.device = device
        self.images = torch.from_numpy(np.ascontiguousarray(np.stack(list(images)))).to(device)
        lab = np.ascontiguousarray(np.stack(list(labels)))
        self.labels = torch.from_numpy(lab).to(device)
        self.n, self.h, self.w = (int(v) for v in lab.shape)
        scales = np.array(np.broadcast_to(np.asarray(base_scale, np.float32), (self.n,)))
        self.base_scale = torch.from_numpy(scales).to(device)
        self.jitter = jitter
        self.rare = float(rare)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.class_p = torch.zeros(NUM_CLASSES, device=device)
        self._coords = torch.zeros(0, dtype=torch.int64, device=device)
        self._starts = torch.zeros(NUM_CLASSES, dtype=torch.int64, device=device)
        self._lens = torch.zeros(NUM_CLASSES, dtype=torch.int64, device=device)
        if self.rare > 0.0:
            self._index_classes(lab, power, np.random.default_rng(seed))

    def _index_classes(self, lab: U8, power: float, rng: np.random.Generator) -> None:
        """Flat indices (frame, y, x) of each class on a COORD_STEP grid; class draw p ~ freq^-power."""
        grid = lab[:, ::COORD_STEP, ::COORD_STEP]
        gh, gw = grid.shape[1:]
        counts = np.bincount(grid.ravel(), minlength=256)[:NUM_CLASSES].astype(np.float64)
        p = np.where(counts > 0, np.maximum(counts, 1.0) ** -power, 0.0)
        if p.sum() == 0:
            raise ValueError("rare-class sampling: no labelled pixel in the set")
        self.class_p = torch.tensor(p / p.sum(), dtype=torch.float32, device=self.device)
        flat = grid.reshape(-1)
        parts, lens = [], []
        for c in range(NUM_CLASSES):
            idx = np.flatnonzero(flat == c) if counts[c] > 0 else np.zeros(0, np.int64)
            if len(idx) > COORD_CAP:
                idx = np.sort(rng.choice(idx, COORD_CAP, replace=False))
            f, rem = np.divmod(idx, gh * gw)
            y, x = np.divmod(rem, gw)
            parts.append((f * self.h + y * COORD_STEP) * self.w + x * COORD_STEP)
            lens.append(len(idx))
        self._coords = torch.from_numpy(np.concatenate(parts).astype(np.int64)).to(self.device)
        self._lens = torch.tensor(lens, dtype=torch.int64, device=self.device)
        self._starts = torch.cumsum(self._lens, 0) - self._lens

    def _rand(self, n: int) -> Tensor:
        return torch.rand(n, generator=self.gen, device=self.device)

    def _rare_points(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """(frame, y, x) of n pixels of classes drawn by class_p (no host round trip)."""
        cls = torch.multinomial(self.class_p, n, replacement=True, generator=self.gen)
        lens = self._lens[cls]
        j = self._starts[cls] + (self._rand(n) * lens).long().minimum(lens - 1)
        flat = self._coords[j]
        f, rem = flat // (self.h * self.w), flat % (self.h * self.w)
        return f, rem // self.w, rem % self.w

    def sample(self, batch: int, ch: int, cw: int) -> tuple[Tensor, Tensor]:
        """A batch of ``ch x cw`` crops: float32 (B, ch, cw, 3) in 0..255 and int64 labels (B, ch, cw)."""
        dev = self.device
        n_rare = int(round(self.rare * batch))
        idx = torch.randint(self.n, (batch,), generator=self.gen, device=dev)
        if n_rare > 0:
            f, py, px = self._rare_points(n_rare)
            idx[:n_rare] = f
        scale = self.base_scale[idx]
        if self.jitter is not None:
            lo, hi = np.log(self.jitter[0]), np.log(self.jitter[1])
            scale = scale * torch.exp(lo + (hi - lo) * self._rand(batch))
        win_w, win_h = cw / scale, ch / scale
        # Uniform windows; a window wider than the image is centred (the rest is padding).
        x0 = torch.where(win_w < self.w, self._rand(batch) * (self.w - win_w), (self.w - win_w) / 2)
        y0 = torch.where(win_h < self.h, self._rand(batch) * (self.h - win_h), (self.h - win_h) / 2)
        if n_rare > 0:
            ww, wh = win_w[:n_rare], win_h[:n_rare]
            # The chosen pixel lands uniformly inside the window; windows stay inside the image.
            rx = (px.to(torch.float32) - self._rand(n_rare) * ww).clamp(min=0.0).minimum(self.w - ww)
            ry = (py.to(torch.float32) - self._rand(n_rare) * wh).clamp(min=0.0).minimum(self.h - wh)
            x0[:n_rare] = torch.where(ww < self.w, rx, x0[:n_rare])
            y0[:n_rare] = torch.where(wh < self.h, ry, y0[:n_rare])
        if self.jitter is None:
            x0, y0 = x0.floor(), y0.floor()
        flip = self._rand(batch) < 0.5
        u = torch.arange(cw, device=dev, dtype=torch.float32).view(1, 1, cw)
        v = torch.arange(ch, device=dev, dtype=torch.float32).view(1, ch, 1)
        u = torch.where(flip.view(-1, 1, 1), cw - 1 - u, u)
        s = scale.view(-1, 1, 1)
        xs = x0.view(-1, 1, 1) + u / s  # (B, 1, cw)
        ys = y0.view(-1, 1, 1) + v / s  # (B, ch, 1)
        return self._bilinear(idx, xs, ys), self._nearest(idx, xs, ys)

    def _bilinear(self, idx: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
        xc = xs.clamp(0.0, self.w - 1.0)
        yc = ys.clamp(0.0, self.h - 1.0)
        x0, y0 = xc.floor(), yc.floor()
        ax, ay = (xc - x0).unsqueeze(-1), (yc - y0).unsqueeze(-1)
        xi0, yi0 = x0.long(), y0.long()
        xi1, yi1 = (xi0 + 1).clamp(max=self.w - 1), (yi0 + 1).clamp(max=self.h - 1)
        base = idx.view(-1, 1, 1) * (self.h * self.w)
        flat = self.images.view(-1, 3)

        def at(yy: Tensor, xx: Tensor) -> Tensor:
            return flat[base + yy * self.w + xx].to(torch.float32)

        top = at(yi0, xi0) * (1 - ax) + at(yi0, xi1) * ax
        bot = at(yi1, xi0) * (1 - ax) + at(yi1, xi1) * ax
        return top * (1 - ay) + bot * ay

    def _nearest(self, idx: Tensor, xs: Tensor, ys: Tensor) -> Tensor:
        xi, yi = torch.round(xs).long(), torch.round(ys).long()
        inside = (xi >= 0) & (xi < self.w) & (yi >= 0) & (yi < self.h)
        flat = self.labels.view(-1)
        base = idx.view(-1, 1, 1) * (self.h * self.w)
        lab = flat[base + yi.clamp(0, self.h - 1) * self.w + xi.clamp(0, self.w - 1)].long()
        return torch.where(inside, lab, torch.full_like(lab, IGNORE_LABEL))
