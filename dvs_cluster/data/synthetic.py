"""
Procedural driving video with Cityscapes trainId labels and exact ground-truth backward flow.

Why procedural: training the three networks and testing the whole pipeline needs endless labelled video
with known motion, shipped inside the package, deterministic from a seed and cheap to render.

The world is 2.5D, in metres: X to the right, Y up, Z along the (straight) road. A pinhole camera with
zero pitch and roll at height ~1.5 m drives along +Z with a seeded speed profile and seeded yaw
(path weave plus head turns). Because pitch and roll are zero, every vertical plane is hit by a whole
image column at one depth, and the ground plane has one depth per image row, so the renderer is a few
separable numpy expressions:

* ground plane Y=0, classified per pixel by its lateral X (road, lane markings, bike lane, curb,
  sidewalk, verge, terrain); texture coordinates in world metres so the texture moves correctly;
* two facade layers per side (near: buildings / walls / fences / hedges / gaps, far: closed skyline of
  buildings and tree lines) as vertical planes X = const, split into seeded segments along Z;
* objects (poles, signs, traffic lights, trees, parked and moving cars, trucks, buses, motorcycles,
  cyclists, pedestrians) as axis-aligned boxes of which the one or two faces turned to the camera are
  drawn as textured sprites with a depth test;
* sky at infinity (depth 1e6 m), textured by viewing direction.

Every visible pixel keeps its depth and the id of the planar surface it lies on. ``flow(t_key, t_cur)``
lifts each current pixel to its world point, moves it back by its object's displacement, projects it
into the key camera and calls it valid when the key frame shows the same surface there (planes cannot
occlude themselves, so this is an exact occlusion test up to pixel rounding).

Everything at time t is a pure function of (seed, t): scenes are cut at seeded frame indices, camera
paths are closed-form sums of sinusoids, facade segments come from an integer hash of their index and
objects from a generator seeded by (seed, scene, family, block), so random access in any order returns
the same bytes.
"""

from __future__ import annotations

import bisect
import colorsys
import math
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from dvs_cluster.core.classes import NUM_CLASSES

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
BoolArr = npt.NDArray[np.bool_]

#: Seed of the embedded default demo video (``default_sample``).
DEFAULT_SEED = 1729

# Cityscapes trainIds used by the generator.
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEG, TERRAIN, SKY = range(11)
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = range(11, 19)
assert NUM_CLASSES == 19

SKY_DEPTH = 1.0e6  # metres; stands in for infinity, far enough that parallax is < 0.01 px
NEAR = 0.3  # near clipping distance (m)
OBJ_RANGE = 160.0  # objects farther than this are not drawn (they are < 1 px)
BLOCK = 40.0  # object spawn block length along Z (m)
TILE = 256  # texture tile size in the atlas (texels), padded by 1 texel of wrap on each side
TILE_P = TILE + 2
N_MIP = 4
SPRITE_PPM = 48.0  # sprite resolution (texels per metre)

# Static surface ids (local and global): sky, ground, near facade L/R, far facade L/R.
SID_SKY, SID_GROUND, SID_NEAR_L, SID_NEAR_R, SID_FAR_L, SID_FAR_R = range(6)
N_STATIC = 6

# Atlas tiles.
(T_ROAD, T_PAINT, T_SIDEWALK, T_CURB, T_TERRAIN, T_SKY, T_BIKE) = range(7)
T_FAR0 = 7  # + side*2 + (0 building, 1 vegetation)
T_NEAR0 = 11  # + side*6 + near type tile index (0..2 buildings, 3 wall, 4 fence, 5 vegetation)
N_TILES = 23
ATLAS_COLS = 6

# Near facade segment types.
NT_GAP, NT_BUILDING, NT_WALL, NT_FENCE, NT_VEG = range(5)
_NEAR_LABEL = np.array([SKY, BUILDING, WALL, FENCE, VEG], dtype=np.uint8)


# ----------------------------------------------------------------------------------------------------
# Hashing: integer hash of (keys...) -> uniform floats, vectorised, for per-segment properties.
# ----------------------------------------------------------------------------------------------------

_MASK63 = (1 << 63) - 1


def _mix(z: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser: a cheap, well-mixing bijection on uint64 (wraps on purpose)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _hash_unit(key: int, idx: I64) -> F64:
    """Uniform [0, 1) per element of ``idx`` for the scalar ``key``; pure function of its inputs."""
    with np.errstate(over="ignore"):
        k = np.uint64(key & ((1 << 64) - 1))
        z = np.atleast_1d(idx).astype(np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + k
        z = _mix(_mix(z) ^ k)
    out: F64 = (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return out


def _key(*parts: int) -> int:
    """Combine small integers into one 64-bit hash key."""
    h = 0x243F6A8885A308D3
    for p in parts:
        with np.errstate(over="ignore"):
            h = int(_mix(np.array([(h ^ (p & ((1 << 64) - 1)))], dtype=np.uint64))[0])
    return h


def _rng(*parts: int) -> np.random.Generator:
    """Generator seeded by non-negative integer parts (seed, scene, purpose, ...)."""
    return np.random.default_rng([p & _MASK63 for p in parts])


# ----------------------------------------------------------------------------------------------------
# Textures
# ----------------------------------------------------------------------------------------------------


def _noise(rng: np.random.Generator, size: int, beta: float, lo: float = 0.0, hi: float = 1.0) -> F32:
    """Periodic (seamlessly tiling) 1/f^beta noise, zero mean, unit std, optionally band-limited."""
    white = rng.standard_normal((size, size))
    spec = np.fft.rfft2(white)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    r = np.sqrt(fx * fx + fy * fy)
    r[0, 0] = 1.0
    spec *= r ** (-beta)
    spec[(r < lo) | (r > hi)] = 0.0
    spec[0, 0] = 0.0
    n = np.fft.irfft2(spec, s=(size, size))
    return (n / (n.std() + 1e-9)).astype(np.float32)


def _hsv(h: float, s: float, v: float) -> F32:
    """One RGB colour in [0, 1] from HSV (hue wraps)."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)), np.float32)


def _shade(base: F32, field_: F32, amount: float) -> F32:
    """Modulate a base colour by a zero-mean field: (h, w) -> (h, w, 3) in [0, 1]."""
    return np.clip(base[None, None, :] * (1.0 + amount * field_[:, :, None]), 0.0, 1.0)


def _tile_asphalt(rng: np.random.Generator, base: F32) -> F32:
    """Asphalt: grain plus large blotches and a few dark tar lines."""
    t = _shade(base, 0.6 * _noise(rng, TILE, 0.3) + 0.4 * _noise(rng, TILE, 1.6), 0.18)
    lines = _noise(rng, TILE, 1.2)
    t *= np.where(np.abs(lines) < 0.03, 0.7, 1.0)[:, :, None].astype(np.float32)
    return t


def _tile_paint(rng: np.random.Generator, base: F32) -> F32:
    """Worn road paint."""
    wear = _noise(rng, TILE, 1.0)
    t = _shade(base, 0.5 * _noise(rng, TILE, 0.2), 0.12)
    return np.where((wear < -1.2)[:, :, None], t * 0.55, t).astype(np.float32)


def _tile_pavers(rng: np.random.Generator, base: F32, size_px: int) -> F32:
    """Paving slabs: grout grid, per-slab brightness and grain."""
    t = _shade(base, 0.7 * _noise(rng, TILE, 0.4) + 0.3 * _noise(rng, TILE, 1.5), 0.15)
    yy, xx = np.mgrid[0:TILE, 0:TILE]
    slab = (yy // size_px) * 97 + (xx // size_px)
    var = (rng.random(int(slab.max()) + 1) * 0.25 - 0.125).astype(np.float32)
    t = t * (1.0 + var[slab])[:, :, None]
    grout = ((yy % size_px) < 2) | ((xx % size_px) < 2)
    return np.clip(np.where(grout[:, :, None], t * 0.6, t), 0, 1).astype(np.float32)


def _tile_grass(rng: np.random.Generator, base: F32, hue_jitter: float) -> F32:
    """Grass / dirt: two-colour mixture of coarse and fine noise."""
    n1 = _noise(rng, TILE, 1.8)
    n2 = _noise(rng, TILE, 0.2)
    other = base * np.array([1.25, 1.0, 0.7], np.float32) * (0.9 + hue_jitter)
    m = np.clip(0.5 + 0.4 * n1, 0, 1)[:, :, None]
    t = base[None, None] * (1 - m) + other[None, None] * m
    return np.clip(t * (1.0 + 0.25 * n2[:, :, None]), 0, 1).astype(np.float32)


def _tile_leaves(rng: np.random.Generator, base: F32) -> F32:
    """Foliage: band-pass blobs (leaf clusters) with dark gaps and highlights."""
    n = _noise(rng, TILE, 0.0, 0.03, 0.18)
    fine = _noise(rng, TILE, 0.0, 0.2, 0.5)
    shade = np.clip(0.75 + 0.35 * n + 0.12 * fine, 0.15, 1.4)
    t = base[None, None] * shade[:, :, None]
    hl = (n > 1.3)[:, :, None]
    t = np.where(hl, t * 1.2 + 0.05, t)
    return np.clip(t, 0, 1).astype(np.float32)


def _tile_building(rng: np.random.Generator, wall: F32, glass: F32, ppm: float) -> F32:
    """Facade: plaster grain, window grid (stripes of windows per floor), floor ledges."""
    t = _shade(wall, 0.6 * _noise(rng, TILE, 0.5) + 0.4 * _noise(rng, TILE, 1.7), 0.12)
    floor_m = rng.uniform(2.8, 3.6)
    bay_m = TILE / ppm / max(1, round(TILE / ppm / rng.uniform(1.8, 3.6)))
    floor_px = max(6, int(round(floor_m * ppm)))
    bay_px = max(6, int(round(bay_m * ppm)))
    win_w = rng.uniform(0.35, 0.75)
    win_h = rng.uniform(0.35, 0.65)
    yy, xx = np.mgrid[0:TILE, 0:TILE]
    fy = (yy % floor_px) / floor_px
    fx = (xx % bay_px) / bay_px
    win = (np.abs(fx - 0.5) < win_w / 2) & (np.abs(fy - 0.45) < win_h / 2)
    refl = np.clip(0.8 + 0.3 * _noise(rng, TILE, 1.4), 0.3, 1.5)
    cell = (yy // floor_px) * 31 + xx // bay_px
    lit = rng.random(int(cell.max()) + 1) < rng.uniform(0.0, 0.3)
    g = glass[None, None] * refl[:, :, None]
    g = np.where(lit[cell][:, :, None], np.clip(g + np.array([0.5, 0.45, 0.25], np.float32), 0, 1), g)
    t = np.where(win[:, :, None], g, t)
    ledge = (yy % floor_px) < max(1, floor_px // 12)
    t = np.where(ledge[:, :, None], t * 0.75, t)
    return np.clip(t, 0, 1).astype(np.float32)


def _tile_wall(rng: np.random.Generator, base: F32, ppm: float) -> F32:
    """Brick or concrete wall."""
    t = _shade(base, 0.7 * _noise(rng, TILE, 0.5) + 0.3 * _noise(rng, TILE, 1.6), 0.15)
    if rng.random() < 0.5:
        bh = max(3, int(round(0.075 * ppm * 2)))
        bw = bh * 3
        yy, xx = np.mgrid[0:TILE, 0:TILE]
        row = yy // bh
        mortar = ((yy % bh) < 1) | (((xx + (row % 2) * (bw // 2)) % bw) < 1)
        t = np.where(mortar[:, :, None], t * 0.65 + 0.2, t)
    else:
        yy, xx = np.mgrid[0:TILE, 0:TILE]
        panel = max(8, int(round(rng.uniform(1.0, 2.5) * ppm)))
        t = np.where(((xx % panel) < 2)[:, :, None], t * 0.6, t)
    return np.clip(t, 0, 1).astype(np.float32)


def _tile_fence(rng: np.random.Generator, base: F32, ppm: float) -> F32:
    """Fence: slats or mesh with darker gaps (the gaps keep the fence label, as in Cityscapes)."""
    t = _shade(base, _noise(rng, TILE, 1.0), 0.12)
    yy, xx = np.mgrid[0:TILE, 0:TILE]
    if rng.random() < 0.5:
        pitch = max(4, int(round(rng.uniform(0.1, 0.25) * ppm)))
        gap = (xx % pitch) < pitch * rng.uniform(0.2, 0.5)
    else:
        pitch = max(4, int(round(rng.uniform(0.05, 0.12) * ppm)))
        gap = (((xx + yy) % pitch) > 1) & (((xx - yy) % pitch) > 1)
    return np.where(gap[:, :, None], t * 0.35, t).astype(np.float32)


def _tile_sky(rng: np.random.Generator, horizon: F32, zenith: F32, cloud: F32, cover: float) -> F32:
    """Sky: vertical gradient (row 0 = zenith side, last row = horizon) with periodic clouds."""
    g = np.linspace(0.0, 1.0, TILE, dtype=np.float32)[:, None, None]
    t = zenith[None, None] * (1 - g) + horizon[None, None] * g
    n = _noise(rng, TILE, 1.6)
    c = np.clip((n - (1.5 - 3.0 * cover)) * 0.8, 0, 1)[:, :, None]
    t = t * (1 - c) + cloud[None, None] * (0.85 + 0.15 * _noise(rng, TILE, 0.8)[:, :, None]) * c
    return np.clip(np.broadcast_to(t, (TILE, TILE, 3)), 0, 1).astype(np.float32)


def _fmod(a: F32, m: float) -> F32:
    """Floating modulo m (>= 0) via floor: several times faster than np.mod on large arrays."""
    mm = np.float32(m)
    out: F32 = a - np.floor(a * np.float32(1.0 / m)) * mm
    return out


def _pad_wrap(tile: F32) -> F32:
    return np.pad(tile, ((1, 1), (1, 1), (0, 0)), mode="wrap")


def _mips(tile: F32) -> list[F32]:
    """Tile pyramid at full size (blurred, not shrunk) so all levels share texture coordinates."""
    out = [_pad_wrap(tile)]
    for lvl in range(1, N_MIP):
        s = 0.6 * (2**lvl)
        pad = int(3 * s) + 2
        big = np.pad(tile, ((pad, pad), (pad, pad), (0, 0)), mode="wrap")
        blurred = cv2.GaussianBlur(big, (0, 0), s)[pad - 1 : pad + TILE + 1, pad - 1 : pad + TILE + 1]
        out.append(blurred.astype(np.float32))
    return out


# ----------------------------------------------------------------------------------------------------
# Sprites (label mask + colour) for objects
# ----------------------------------------------------------------------------------------------------

Recipe = tuple[Any, ...]


def _canvas(w_m: float, h_m: float) -> tuple[U8, F32, float]:
    w = max(2, int(round(w_m * SPRITE_PPM)))
    h = max(2, int(round(h_m * SPRITE_PPM)))
    return np.full((h, w), 255, np.uint8), np.zeros((h, w, 3), np.float32), SPRITE_PPM


def _rand_vehicle_colour(rng: np.random.Generator) -> F32:
    if rng.random() < 0.45:
        return _hsv(0, 0, rng.choice([0.08, 0.2, 0.55, 0.75, 0.92]) * rng.uniform(0.85, 1.1))
    return _hsv(rng.random(), rng.uniform(0.3, 0.9), rng.uniform(0.25, 0.9))


def _rand_clothes(rng: np.random.Generator) -> F32:
    return _hsv(rng.random(), rng.uniform(0.0, 0.8), rng.uniform(0.1, 0.9))


def _poly(img: Any, pts_m: list[tuple[float, float]], val: Any, h: int) -> None:
    """Fill a polygon given in metres from the bottom-left corner (y up)."""
    pts = np.array([[x * SPRITE_PPM, h - 1 - y * SPRITE_PPM] for x, y in pts_m], np.int32)
    cv2.fillPoly(img, [pts], val)


def _rect(img: Any, x0: float, y0: float, x1: float, y1: float, val: Any, h: int) -> None:
    _poly(img, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)], val, h)


def _circle(img: Any, x: float, y: float, r: float, val: Any, h: int, th: int = -1) -> None:
    c = (int(round(x * SPRITE_PPM)), int(round(h - 1 - y * SPRITE_PPM)))
    cv2.circle(img, c, max(1, int(round(r * SPRITE_PPM))), val, th)


def _person(
    rng: np.random.Generator,
    lab: U8,
    col: F32,
    x0: float,
    y0: float,
    w: float,
    hgt: float,
    side: bool,
    label: int,
) -> None:
    """Draw a person (standing) into a sprite: legs, torso, arms, head."""
    h = lab.shape[0]
    skin = _hsv(rng.uniform(0.02, 0.1), rng.uniform(0.2, 0.6), rng.uniform(0.25, 0.95))
    top, bottom, hair = _rand_clothes(rng), _rand_clothes(rng), _hsv(0.08, 0.5, rng.uniform(0.05, 0.6))
    cx = x0 + w / 2
    leg = hgt * 0.47
    tw = w * (0.45 if side else 0.75)
    spread = rng.uniform(0.0, 0.18) * w if side else 0.0
    for sgn in (-1, 1):
        lx = cx + sgn * (tw * 0.22 + spread)
        pts = [
            (lx - w * 0.09, y0),
            (lx + w * 0.09, y0),
            (cx + sgn * tw * 0.25 + w * 0.1, y0 + leg),
            (cx + sgn * tw * 0.25 - w * 0.1, y0 + leg),
        ]
        for img, v in ((lab, label), (col, tuple(float(c) for c in bottom))):
            _poly(img, pts, v, h)
    for img, v in ((lab, label), (col, tuple(float(c) for c in top))):
        _rect(img, cx - tw / 2, y0 + leg - 0.02, cx + tw / 2, y0 + hgt * 0.82, v, h)
        if not side:
            _rect(img, cx - tw / 2 - w * 0.12, y0 + hgt * 0.42, cx - tw / 2, y0 + hgt * 0.8, v, h)
            _rect(img, cx + tw / 2, y0 + hgt * 0.42, cx + tw / 2 + w * 0.12, y0 + hgt * 0.8, v, h)
    r = hgt * 0.075
    for img, v in ((lab, label), (col, tuple(float(c) for c in skin))):
        _circle(img, cx, y0 + hgt * 0.9, r, v, h)
    _circle(col, cx, y0 + hgt * 0.93, r * 0.8, tuple(float(c) for c in hair), h)


def _bike(lab: U8, col: F32, x0: float, length: float, r: float, label: int, frame: F32, motor: bool) -> None:
    """Side view of a bicycle / motorcycle: two wheels, frame (and an engine block for motorcycles)."""
    h = lab.shape[0]
    th = max(2, int(round((0.1 if motor else 0.04) * SPRITE_PPM)))
    wx = (x0 + r, x0 + length - r)
    fc = tuple(float(c) for c in frame)
    for x in wx:
        _circle(lab, x, r, r, label, h, th)
        _circle(col, x, r, r, (0.06, 0.06, 0.06), h, th)
    pts = [(wx[0], r), (x0 + length * 0.45, r), (wx[1] - r * 0.3, r * 2.0), (x0 + length * 0.35, r * 2.0)]
    p = np.array([[x * SPRITE_PPM, h - 1 - y * SPRITE_PPM] for x, y in pts], np.int32)
    cv2.polylines(lab, [p], True, label, max(2, th // 2 + 1))
    cv2.polylines(col, [p], True, fc, max(2, th // 2 + 1))
    if motor:
        _rect(lab, x0 + length * 0.3, r * 0.8, x0 + length * 0.7, r * 2.1, label, h)
        _rect(col, x0 + length * 0.3, r * 0.8, x0 + length * 0.7, r * 2.1, fc, h)


def _make_sprite(recipe: Recipe) -> tuple[U8, F32]:
    """Render a sprite from its recipe (kind, seed, sizes...); colours in [0, 1] before scene grading."""
    kind = str(recipe[0])
    rng = _rng(int(recipe[1]), 4242)
    w_m, h_m = float(recipe[2]), float(recipe[3])
    lab, col, _ = _canvas(w_m, h_m)
    h = lab.shape[0]
    if kind in ("car_back", "car_front", "car_side"):
        label = int(recipe[4])
        body = _rand_vehicle_colour(_rng(int(recipe[5]), 1))
        bc = tuple(float(c) for c in body)
        glass = tuple(float(c) for c in _hsv(0.6, 0.2, rng.uniform(0.05, 0.3)))
        if kind == "car_side":
            box = label in (TRUCK, BUS)
            r = min(0.42, h_m * 0.22)
            top = h_m
            cab = [(0.02, r * 0.9), (w_m - 0.02, r * 0.9), (w_m, h_m * 0.55), (w_m * 0.02, h_m * 0.6)]
            for img, v in ((lab, label), (col, bc)):
                _poly(img, cab, v, h)
                if box:
                    _rect(img, 0.0, r * 0.9, w_m, top, v, h)
                else:
                    _poly(
                        img,
                        [
                            (w_m * 0.2, h_m * 0.58),
                            (w_m * 0.78, h_m * 0.55),
                            (w_m * 0.62, top),
                            (w_m * 0.3, top),
                        ],
                        v,
                        h,
                    )
            if box:
                for i in range(max(1, int(w_m / 1.4))):
                    if label == BUS or i == 0:
                        _rect(col, 0.2 + i * 1.4, h_m * 0.55, 0.2 + i * 1.4 + 1.1, h_m * 0.85, glass, h)
            else:
                _poly(
                    col,
                    [
                        (w_m * 0.25, h_m * 0.6),
                        (w_m * 0.75, h_m * 0.58),
                        (w_m * 0.6, top * 0.95),
                        (w_m * 0.32, top * 0.95),
                    ],
                    glass,
                    h,
                )
            for x in (r + 0.25, w_m - r - 0.3):
                for img, v in ((lab, label), (col, (0.04, 0.04, 0.04))):
                    _circle(img, x, r, r, v, h)
                _circle(col, x, r, r * 0.45, (0.5, 0.5, 0.52), h)
        else:
            r = 0.3
            for img, v in ((lab, label), (col, (0.03, 0.03, 0.03))):
                _rect(img, 0.05, 0.0, 0.35, r * 1.4, v, h)
                _rect(img, w_m - 0.35, 0.0, w_m - 0.05, r * 1.4, v, h)
            for img, v in ((lab, label), (col, bc)):
                _rect(img, 0.0, 0.22, w_m, h_m * (0.9 if label in (TRUCK, BUS) else 0.58), v, h)
                if label not in (TRUCK, BUS):
                    _poly(
                        img,
                        [(0.12, h_m * 0.58), (w_m - 0.12, h_m * 0.58), (w_m - 0.3, h_m), (0.3, h_m)],
                        v,
                        h,
                    )
                else:
                    _rect(img, 0.0, 0.22, w_m, h_m, v, h)
            gy = (h_m * 0.62, h_m * 0.95) if label not in (TRUCK, BUS) else (h_m * 0.55, h_m * 0.92)
            if not (label == TRUCK and kind == "car_back"):
                _poly(col, [(0.25, gy[0]), (w_m - 0.25, gy[0]), (w_m - 0.38, gy[1]), (0.38, gy[1])], glass, h)
            light = (0.8, 0.05, 0.05) if kind == "car_back" else (0.95, 0.95, 0.85)
            _rect(col, 0.08, h_m * 0.42, 0.35, h_m * 0.5, light, h)
            _rect(col, w_m - 0.35, h_m * 0.42, w_m - 0.08, h_m * 0.5, light, h)
            _rect(col, w_m * 0.38, 0.3, w_m * 0.62, 0.42, (0.9, 0.9, 0.9), h)  # number plate
    elif kind in ("ped_front", "ped_side"):
        _person(_rng(int(recipe[4]), 2), lab, col, 0.0, 0.0, w_m, h_m, kind == "ped_side", PERSON)
    elif kind in ("cyc_side", "cyc_back"):
        motor = bool(recipe[5])
        frame = _rand_vehicle_colour(_rng(int(recipe[4]), 3))
        vlabel = MOTORCYCLE if motor else BICYCLE
        r = 0.33 if motor else 0.34
        if kind == "cyc_side":
            _bike(lab, col, 0.0, w_m, r, vlabel, frame, motor)
            _person(
                _rng(int(recipe[4]), 2), lab, col, w_m * 0.3, r * 1.1, w_m * 0.3, h_m - r * 1.1, True, RIDER
            )
        else:
            for img, v in ((lab, vlabel), (col, (0.05, 0.05, 0.05))):
                _rect(
                    img,
                    w_m / 2 - (0.07 if motor else 0.025),
                    0.0,
                    w_m / 2 + (0.07 if motor else 0.025),
                    2 * r,
                    v,
                    h,
                )
            for img, v in ((lab, vlabel), (col, tuple(float(c) for c in frame))):
                _rect(img, w_m * 0.1, 2 * r + 0.15, w_m * 0.9, 2 * r + 0.2, v, h)  # handlebar
                if motor:
                    _rect(img, w_m * 0.3, r * 0.7, w_m * 0.7, 2 * r + 0.1, v, h)
            _person(
                _rng(int(recipe[4]), 2), lab, col, w_m * 0.1, r * 1.3, w_m * 0.8, h_m - r * 1.3, False, RIDER
            )
    elif kind == "pole":
        c = _hsv(rng.uniform(0.5, 0.65), rng.uniform(0, 0.3), rng.uniform(0.25, 0.75))
        lab[:] = POLE
        col[:] = c[None, None]
        col *= (1.0 + 0.35 * np.linspace(-1, 1, lab.shape[1], dtype=np.float32) ** 2)[None, :, None] * 0.85
    elif kind == "sign":
        shape = int(rng.integers(0, 4))
        c = _hsv(rng.choice([0.0, 0.6, 0.15, 0.33, rng.random()]), rng.uniform(0.5, 1), rng.uniform(0.5, 1))
        inner = _hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.7, 1.0))
        cm = (w_m / 2, h_m / 2)
        rr = min(w_m, h_m) / 2 * 0.98
        if shape == 0:
            pts = [
                (cm[0] + rr * math.cos(a), cm[1] + rr * math.sin(a)) for a in np.linspace(0, 2 * np.pi, 24)
            ]
        elif shape == 1:
            pts = [(0.02, 0.02), (w_m - 0.02, 0.02), (w_m / 2, h_m - 0.02)]
            if rng.random() < 0.5:
                pts = [(0.02, h_m - 0.02), (w_m - 0.02, h_m - 0.02), (w_m / 2, 0.02)]
        elif shape == 2:
            pts = [(0, 0), (w_m, 0), (w_m, h_m), (0, h_m)]
        else:
            pts = [(w_m / 2, 0), (w_m, h_m / 2), (w_m / 2, h_m), (0, h_m / 2)]
        _poly(lab, pts, SIGN, h)
        _poly(col, pts, tuple(float(v) for v in c), h)
        small = [(cm[0] + 0.6 * (x - cm[0]), cm[1] + 0.6 * (y - cm[1])) for x, y in pts]
        _poly(col, small, tuple(float(v) for v in inner), h)
    elif kind == "light":
        lab[:] = LIGHT
        col[:] = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.05, 0.35))[None, None]
        on = int(rng.integers(0, 3))
        lamp = [(0.9, 0.1, 0.05), (0.95, 0.7, 0.05), (0.1, 0.9, 0.3)]
        for i in range(3):
            lc: tuple[float, ...] = lamp[i] if i == on else tuple(0.25 * v for v in lamp[i])
            _circle(col, w_m / 2, h_m * (0.8 - 0.3 * i), min(w_m, h_m / 3) * 0.33, lc, h)
    elif kind == "crown":
        base = _hsv(rng.uniform(0.18, 0.38), rng.uniform(0.35, 0.8), rng.uniform(0.2, 0.6))
        for _ in range(int(rng.integers(6, 14))):
            x = rng.uniform(0.25, 0.75) * w_m
            y = rng.uniform(0.3, 0.7) * h_m
            r = rng.uniform(0.2, 0.32) * min(w_m, h_m)
            _circle(lab, x, y, r, VEG, h)
        n = _noise(rng, max(lab.shape), 0.0, 0.05, 0.3)[: lab.shape[0], : lab.shape[1]]
        col[:] = base[None, None] * np.clip(0.8 + 0.3 * n, 0.2, 1.5)[:, :, None]
        edge = (lab == VEG) & (n < -1.6)
        lab[edge] = 255
    elif kind == "trunk":
        lab[:] = VEG
        col[:] = _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.3, 0.6), rng.uniform(0.15, 0.4))[None, None]
    else:  # pragma: no cover - recipes are produced in this module only
        raise ValueError(f"unknown sprite kind {kind}")
    grain = rng.standard_normal(lab.shape).astype(np.float32)
    col *= (1.0 + 0.06 * grain)[:, :, None]
    return lab, np.clip(col, 0, 1)


# ----------------------------------------------------------------------------------------------------
# Scene description
# ----------------------------------------------------------------------------------------------------


@dataclass
class _Part:
    """An axis-aligned box (or flat quad when an extent is 0) drawn by its faces turned to the camera."""

    gid: int
    x0: float
    x1: float
    z0: float
    z1: float
    y0: float
    y1: float
    zface: Recipe | None  # sprite for the face Z = z0 (axis +X), None = not drawn
    xface: Recipe | None  # sprite for the faces X = x0 / x1 (axis +Z), None = not drawn
    vz: float = 0.0
    vx: float = 0.0
    flip: bool = False  # xface sprite axis runs along -Z (object heading -Z)
    lead: bool = False  # follows the ego car (its Z is ego Z + gap(t))


@dataclass
class _Family:
    """A group of objects spawned per block of Z with one velocity (so they never overtake each other)."""

    fid: int
    kind: str
    vz: float
    x: float  # lateral anchor (lane centre / side sign for roadside)
    side: int = 1


@dataclass
class _Scene:
    """All seeded parameters of one scene (between two cuts)."""

    seed: int
    index: int
    fps: float
    rng_key: int
    # camera
    cam_h: float
    z_start: float
    v0: float
    spd: list[tuple[float, float, float]]  # (amplitude m/s, omega rad/s, phase)
    lat0: float
    lat: list[tuple[float, float, float]]
    look: list[tuple[float, float, float]]
    bob: tuple[float, float, float]
    # road layout
    lane_w: float
    lanes_r: int
    lanes_l: int
    road_l: float  # X of left road edge (negative)
    road_r: float
    x_near: tuple[float, float]  # |X| of near facades (left, right)
    x_far: tuple[float, float]
    seg_near: tuple[float, float]
    seg_far: tuple[float, float]
    near_cum: F64  # cumulative type probabilities for near facade segments
    near_h: F64  # (5, 2) height ranges per near type
    far_veg_p: float
    far_h: tuple[float, float]
    lat_label: U8 = field(repr=False, default_factory=lambda: np.zeros(0, np.uint8))
    lat_tile: npt.NDArray[np.int32] = field(repr=False, default_factory=lambda: np.zeros(0, np.int32))
    lat_mark: U8 = field(repr=False, default_factory=lambda: np.zeros(0, np.uint8))
    lat_ox: F32 = field(repr=False, default_factory=lambda: np.zeros(0, np.float32))
    lat_oy: F32 = field(repr=False, default_factory=lambda: np.zeros(0, np.float32))
    lat_x0: float = -100.0
    dash: tuple[float, float] = (3.0, 9.0)
    families: list[_Family] = field(default_factory=list)
    lead_gap: tuple[float, float, float, float] | None = None  # (gap, amp, omega, phase)
    ego_x: float = 0.0
    # appearance
    tint: F32 = field(default_factory=lambda: np.ones(3, np.float32))
    light: tuple[float, float] = (1.0, 1.0)
    gain: float = 1.0
    noise_level: int = 0
    blur: float = 0.7
    haze: F32 = field(default_factory=lambda: np.ones(3, np.float32))
    ppm_ground: float = 40.0
    ppm_facade: float = 28.0
    sidewalk: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0))  # |X| ranges
    verge: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0))
    parking: tuple[float | None, float | None] = (None, None)  # |X| of parking lane centres
    bike: tuple[float | None, float | None] = (None, None)
    # caches
    blocks: OrderedDict[tuple[int, int], list[_Part]] = field(default_factory=OrderedDict, repr=False)
    sprites: OrderedDict[Recipe, tuple[U8, U8]] = field(default_factory=OrderedDict, repr=False)
    atlas: U8 | None = field(default=None, repr=False)

    # --- camera -----------------------------------------------------------------------------------
    def pose(self, tau: int) -> tuple[float, float, float, float]:
        """Camera (x, y, z, yaw) at scene-local frame ``tau``; closed form, so random access is O(1)."""
        s = tau / self.fps
        z = self.z_start + self.v0 * s
        for a, w, p in self.spd:
            z += a / w * (math.cos(p) - math.cos(w * s + p))
        x, dxds = self.lat0, 0.0
        for a, w, p in self.lat:
            x += a * math.sin(w * s + p)
            dxds += a * w * math.cos(w * s + p)
        v = self.v0 + sum(a * math.sin(w * s + p) for a, w, p in self.spd)
        yaw = math.atan2(dxds, v)
        for a, w, p in self.look:
            yaw += a * math.sin(w * s + p)
        y = self.cam_h + self.bob[0] * math.sin(self.bob[1] * s + self.bob[2])
        return x, y, z, yaw

    def lead_z(self, tau: int) -> float:
        """Z of the rear of the car ahead in the ego lane (follows the ego car at a varying gap)."""
        assert self.lead_gap is not None
        g, a, w, p = self.lead_gap
        return self.pose(tau)[2] + g + a * math.sin(w * tau / self.fps + p)

    def offset(self, part: _Part, tau: int) -> tuple[float, float]:
        """World displacement (dx, dz) of a part at frame ``tau`` relative to its spawn position."""
        if part.lead:
            return 0.0, self.lead_z(tau)
        s = tau / self.fps
        return part.vx * s, part.vz * s


def _make_scene(seed: int, index: int, fps: float) -> _Scene:
    """Draw every parameter of scene ``index`` from (seed, index)."""
    rng = _rng(seed, index, 1)
    urban = rng.random() < 0.55
    v0 = float(rng.uniform(3.5, 11.0))
    spd = [
        (float(rng.uniform(0, 0.3) * v0), float(rng.uniform(0.15, 0.6)), float(rng.uniform(0, 6.3))),
        (float(rng.uniform(0, 0.12) * v0), float(rng.uniform(0.6, 1.5)), float(rng.uniform(0, 6.3))),
    ]
    lat = [
        (float(rng.uniform(0, 0.35)), float(rng.uniform(0.2, 0.6)), float(rng.uniform(0, 6.3))),
        (float(rng.uniform(0, 0.1)), float(rng.uniform(0.8, 2.0)), float(rng.uniform(0, 6.3))),
    ]
    look_amp = float(rng.choice([0.02, 0.05, 0.09, 0.14]))
    look = [
        (look_amp * float(rng.uniform(0.5, 1.0)), float(rng.uniform(0.15, 0.5)), float(rng.uniform(0, 6.3))),
        (float(rng.uniform(0, 0.015)), float(rng.uniform(1.0, 3.0)), float(rng.uniform(0, 6.3))),
    ]
    lane_w = float(rng.uniform(2.9, 3.6))
    lanes_r = int(rng.choice([1, 2, 2, 3]))
    lanes_l = int(rng.choice([1, 1, 2, 2]))
    bike = rng.random() < 0.65
    bike_w = float(rng.uniform(1.3, 1.8)) if bike else 0.0
    park_r = rng.random() < 0.55
    park_l = rng.random() < 0.4
    park_w = 2.3
    road_r = lanes_r * lane_w + bike_w + (park_w if park_r else 0.0)
    road_l = -(lanes_l * lane_w + bike_w + (park_w if park_l else 0.0))
    ego_lane = lanes_r - 1 if rng.random() < 0.7 else int(rng.integers(0, lanes_r))
    ego_x = (ego_lane + 0.5) * lane_w
    curb = float(rng.uniform(0.15, 0.3))
    sides = []
    for edge in (-road_l, road_r):
        verge = float(rng.uniform(0.6, 2.5)) if rng.random() < (0.25 if urban else 0.5) else 0.0
        walk = float(rng.uniform(1.8, 5.0) if urban else rng.uniform(1.2, 3.0))
        strip = float(rng.uniform(0.5, 6.0)) if rng.random() < (0.25 if urban else 0.7) else 0.0
        s0 = edge + curb + verge
        sides.append((edge, verge, s0, s0 + walk, s0 + walk + strip))
    x_near = (sides[0][4], sides[1][4])
    x_far = (x_near[0] + float(rng.uniform(6, 30)), x_near[1] + float(rng.uniform(6, 30)))
    p = np.array([0.08, 0.72, 0.08, 0.05, 0.07] if urban else [0.25, 0.22, 0.12, 0.16, 0.25])
    p = p * rng.uniform(0.5, 1.5, 5)
    near_h = np.array(
        [[0, 0], [6, 24], [1.0, 2.8], [1.0, 2.2], [1.5, 6.0]]
        if urban
        else [[0, 0], [4.5, 12], [1.0, 2.5], [0.9, 2.0], [1.5, 7.0]],
        np.float64,
    )
    sc = _Scene(
        seed=seed,
        index=index,
        fps=fps,
        rng_key=_key(seed, index),
        cam_h=float(rng.uniform(1.3, 1.7)),
        z_start=float(rng.uniform(-1e4, 1e4)),
        v0=v0,
        spd=spd,
        lat0=ego_x + float(rng.uniform(-0.25, 0.25)),
        lat=lat,
        look=look,
        bob=(float(rng.uniform(0, 0.02)), float(rng.uniform(8, 14)), float(rng.uniform(0, 6.3))),
        lane_w=lane_w,
        lanes_r=lanes_r,
        lanes_l=lanes_l,
        road_l=road_l,
        road_r=road_r,
        x_near=x_near,
        x_far=x_far,
        seg_near=(float(rng.uniform(6, 20)), float(rng.uniform(6, 20))),
        seg_far=(float(rng.uniform(8, 30)), float(rng.uniform(8, 30))),
        near_cum=np.cumsum(p / p.sum()),
        near_h=near_h,
        far_veg_p=float(rng.uniform(0.05, 0.4) if urban else rng.uniform(0.4, 0.9)),
        far_h=(6.0, 35.0) if urban else (5.0, 16.0),
        ego_x=ego_x,
    )
    sc.dash = (float(rng.uniform(1.5, 4.0)), float(rng.uniform(6.0, 12.0)))
    sc.sidewalk = ((sides[0][2], sides[0][3]), (sides[1][2], sides[1][3]))
    sc.verge = ((sides[0][0] + curb, sides[0][2]), (sides[1][0] + curb, sides[1][2]))
    sc.parking = (-road_l - park_w / 2 if park_l else None, road_r - park_w / 2 if park_r else None)
    sc.bike = (
        (-road_l - (park_w if park_l else 0) - bike_w / 2) if bike else None,
        (road_r - (park_w if park_r else 0) - bike_w / 2) if bike else None,
    )
    # Lateral profile of the ground at 5 cm resolution: label, texture tile, marking code.
    res = 0.05
    xs = sc.lat_x0 + res * (np.arange(int(200 / res)) + 0.5)
    ax = np.abs(xs)
    right = xs >= 0
    lab = np.full(xs.shape, TERRAIN, np.uint8)
    tile = np.full(xs.shape, T_TERRAIN, np.int32)
    on_road = (xs >= road_l) & (xs <= road_r)
    lab[on_road] = ROAD
    tile[on_road] = T_ROAD
    for s, (edge, _verge, s0, s1, _st) in enumerate(sides):
        sel = (right == bool(s)) & (ax > edge)
        curb_sel = sel & (ax <= edge + curb)
        walk_sel = sel & (ax >= s0) & (ax <= s1)
        lab[curb_sel | walk_sel] = SIDEWALK
        tile[curb_sel] = T_CURB
        tile[walk_sel] = T_SIDEWALK
    mark = np.zeros(xs.shape, np.uint8)  # 1 solid, 2 dashed
    mw = float(rng.uniform(0.1, 0.16))
    centre = int(rng.choice([1, 2, 3]))  # 3 = double solid

    def put(x: float, code: int) -> None:
        mark[np.abs(xs - x) < mw / 2] = code

    if centre == 3:
        put(-mw * 0.9, 1)
        put(mw * 0.9, 1)
    else:
        put(0.0, centre)
    for i in range(1, lanes_r):
        put(i * lane_w, 2)
    for i in range(1, lanes_l):
        put(-i * lane_w, 2)
    if bike:
        put(lanes_r * lane_w + mw / 2, 1)
        put(-lanes_l * lane_w - mw / 2, 1)
        bsel = (ax > lanes_r * lane_w + mw) & (ax < lanes_r * lane_w + bike_w) & right
        bsel |= (ax > lanes_l * lane_w + mw) & (ax < lanes_l * lane_w + bike_w) & ~right
        tile[bsel] = T_BIKE
    put(road_r - mw, 1)
    put(road_l + mw, 1)
    sc.lat_label, sc.lat_tile, sc.lat_mark = lab, tile, mark
    # texture origins per (lateral cell, painted): index = 2 * cell + painted
    tiles2 = np.stack([tile, np.full_like(tile, T_PAINT)], axis=1).ravel()
    sc.lat_ox = ((tiles2 % ATLAS_COLS) * TILE_P + 1.0).astype(np.float32)
    sc.lat_oy = ((tiles2 // ATLAS_COLS) * TILE_P + 1.0).astype(np.float32)
    # Appearance.
    sc.tint = (rng.uniform(0.85, 1.15, 3) * np.array([1, 1, 1])).astype(np.float32)
    lit = float(rng.uniform(0.55, 0.95))
    sc.light = (1.0, lit) if rng.random() < 0.5 else (lit, 1.0)
    sc.gain = float(rng.uniform(0.75, 1.25))
    sc.noise_level = int(rng.integers(0, 3))
    sc.blur = float(rng.uniform(0.4, 1.1))
    sc.ppm_ground = float(rng.uniform(28, 48))
    sc.ppm_facade = float(rng.uniform(22, 34))
    # Object families (fid 1.. ; 0 is unused so that object gids never collide with static ids).
    fams: list[_Family] = [_Family(1, "roadside", 0.0, 0.0, -1), _Family(2, "roadside", 0.0, 0.0, 1)]
    fid = 3
    for i in range(lanes_r):
        if i != ego_lane:
            fams.append(_Family(fid, "lane", float(rng.uniform(3.0, 14.0)), (i + 0.5) * lane_w, 1))
            fid += 1
    for i in range(lanes_l):
        fams.append(_Family(fid, "lane", -float(rng.uniform(5.0, 15.0)), -(i + 0.5) * lane_w, -1))
        fid += 1
    for s in (0, 1):
        bx = sc.bike[s]
        sign = -1 if s == 0 else 1
        if bx is not None:
            fams.append(_Family(fid, "bike", sign * float(rng.uniform(2.5, 6.0)), sign * bx, sign))
        else:
            w0, w1 = sc.sidewalk[s]
            fams.append(
                _Family(fid, "bike", sign * float(rng.uniform(2.0, 4.5)), sign * (0.3 * w0 + 0.7 * w1), sign)
            )
        fid += 1
        for v in (float(rng.uniform(0.8, 1.7)), -float(rng.uniform(0.8, 1.7))):
            fams.append(_Family(fid, "walk", v, 0.0, sign))
            fid += 1
    sc.families = fams
    if rng.random() < 0.6:
        sc.lead_gap = (
            float(rng.uniform(10, 35)),
            float(rng.uniform(0, 6)),
            float(rng.uniform(0.1, 0.4)),
            float(rng.uniform(0, 6.3)),
        )
    hz = _hsv(rng.uniform(0.5, 0.65), rng.uniform(0.05, 0.3), rng.uniform(0.7, 0.95))
    sc.haze = hz
    return sc


# ----------------------------------------------------------------------------------------------------
# Object spawning
# ----------------------------------------------------------------------------------------------------


def _gid(fid: int, block: int, j: int) -> int:
    """Globally unique (within a scene) id of spawned part j; faces add 0/1 (see ``_draw_part``)."""
    return ((fid << 32) | ((block + (1 << 21)) << 10) | j) * 2 + 64


def _vehicle(
    rng: np.random.Generator,
    fid: int,
    b: int,
    j: int,
    x: float,
    z: float,
    vz: float,
    heading: int,
    kinds: tuple[float, float, float, float],
) -> tuple[list[_Part], float]:
    """A car / truck / bus / motorcycle centred on lane X, rear (along heading) at z; returns length."""
    u = rng.random()
    pc, pt, pb, _pm = kinds
    s = int(rng.integers(0, 1 << 30))
    if u < pc:
        label, w, ln, h = CAR, rng.uniform(1.65, 1.95), rng.uniform(3.8, 4.9), rng.uniform(1.35, 1.7)
    elif u < pc + pt:
        label, w, ln, h = TRUCK, rng.uniform(2.2, 2.5), rng.uniform(5.5, 9.0), rng.uniform(2.6, 3.6)
    elif u < pc + pt + pb:
        label, w, ln, h = BUS, 2.5, rng.uniform(10.0, 12.5), rng.uniform(2.9, 3.3)
    else:
        w, ln, h = 0.8, 2.1, 1.6
        gid = _gid(fid, b, j)
        z0 = z if heading > 0 else z - ln
        return [
            _Part(
                gid,
                x - w / 2,
                x + w / 2,
                z0,
                z0 + ln,
                0.0,
                h,
                ("cyc_back", s, w, h, s, 1),
                ("cyc_side", s, ln, h, s, 1),
                vz=vz,
                flip=heading < 0,
            )
        ], ln
    x += rng.uniform(-0.25, 0.25)
    z0 = z if heading > 0 else z - ln
    face = "car_back" if heading > 0 else "car_front"
    part = _Part(
        _gid(fid, b, j),
        x - w / 2,
        x + w / 2,
        z0,
        z0 + ln,
        0.0,
        h,
        (face, s, w, h, label, s),
        ("car_side", s, ln, h, label, s),
        vz=vz,
        flip=heading < 0,
    )
    return [part], ln


def _spawn(sc: _Scene, fam: _Family, b: int) -> list[_Part]:
    """Objects of one family in block b of its (moving) spawn frame; seeded by (seed, scene, fid, b)."""
    rng = _rng(sc.seed, sc.index, 100 + fam.fid, b + (1 << 40))
    parts: list[_Part] = []
    z_lo = b * BLOCK
    j = 0

    def nid() -> int:
        nonlocal j
        j += 1
        return _gid(fam.fid, b, j)

    sign = fam.side
    si = 0 if sign < 0 else 1
    if fam.kind == "lane":
        z = z_lo + rng.uniform(0, 20)
        while z < z_lo + BLOCK:
            if rng.random() < 0.75:
                ps, ln = _vehicle(
                    rng,
                    fam.fid,
                    b,
                    j + 1,
                    fam.x,
                    z,
                    fam.vz,
                    1 if fam.vz > 0 else -1,
                    (0.85, 0.06, 0.05, 0.04),
                )
                j += 1
                parts += ps
            else:
                ln = 4.0
            z += ln + rng.uniform(6, 35)
    elif fam.kind == "bike":
        z = z_lo + rng.uniform(0, 30)
        while z < z_lo + BLOCK:
            s = int(rng.integers(0, 1 << 30))
            x = fam.x + rng.uniform(-0.2, 0.2)
            h = rng.uniform(1.6, 1.85)
            heading = 1 if fam.vz > 0 else -1
            parts.append(
                _Part(
                    nid(),
                    x - 0.3,
                    x + 0.3,
                    z,
                    z + 1.75,
                    0.0,
                    h,
                    ("cyc_back", s, 0.6, h, s, 0),
                    ("cyc_side", s, 1.75, h, s, 0),
                    vz=fam.vz,
                    flip=heading < 0,
                )
            )
            z += rng.uniform(12, 60)
    elif fam.kind == "walk":
        w0, w1 = sc.sidewalk[si]
        z = z_lo + rng.uniform(0, 10)
        while z < z_lo + BLOCK:
            s = int(rng.integers(0, 1 << 30))
            ax = rng.uniform(w0 + 0.3, max(w0 + 0.35, w1 - 0.3))
            x = sign * ax
            h = rng.uniform(1.5, 1.95)
            w = h * rng.uniform(0.26, 0.32)
            parts.append(
                _Part(
                    nid(),
                    x - w / 2,
                    x + w / 2,
                    z,
                    z + 0.3,
                    0.0,
                    h,
                    ("ped_front", s, w, h, s),
                    None,
                    vz=fam.vz,
                    flip=fam.vz < 0,
                )
            )
            z += rng.uniform(4, 28)
    elif fam.kind == "roadside":
        edge = (-sc.road_l, sc.road_r)[si]
        w0, w1 = sc.sidewalk[si]
        v0, v1 = sc.verge[si]
        xn = sc.x_near[si]
        # street lamps / plain poles
        z = z_lo + rng.uniform(0, 12)
        while z < z_lo + BLOCK:
            ax = edge + 0.5 + rng.uniform(0, 0.3)
            h, w = rng.uniform(5.0, 9.0), rng.uniform(0.14, 0.26)
            pr = ("pole", int(rng.integers(0, 1 << 30)), w, h)
            parts.append(_Part(nid(), sign * ax - w / 2, sign * ax + w / 2, z, z + w, 0.0, h, pr, None))
            z += rng.uniform(14, 35)
        # traffic signs
        for _ in range(int(rng.integers(0, 3))):
            z = z_lo + rng.uniform(0, BLOCK)
            ax = edge + rng.uniform(0.4, 1.0)
            h, w = rng.uniform(2.0, 2.8), 0.07
            pr = ("pole", int(rng.integers(0, 1 << 30)), w, h)
            parts.append(_Part(nid(), sign * ax - w / 2, sign * ax + w / 2, z, z + w, 0.0, h, pr, None))
            sw, sh = rng.uniform(0.5, 0.9), rng.uniform(0.5, 0.9)
            sr = ("sign", int(rng.integers(0, 1 << 30)), sw, sh)
            parts.append(
                _Part(
                    nid(),
                    sign * ax - sw / 2,
                    sign * ax + sw / 2,
                    z - 0.03,
                    z - 0.03,
                    h - 0.05,
                    h - 0.05 + sh,
                    sr,
                    None,
                )
            )
        # traffic lights (sometimes on a mast arm over the road)
        if rng.random() < 0.55:
            z = z_lo + rng.uniform(0, BLOCK)
            ax = edge + rng.uniform(0.3, 0.8)
            h, w = rng.uniform(3.0, 4.2), rng.uniform(0.12, 0.2)
            pr = ("pole", int(rng.integers(0, 1 << 30)), w, h + 1.5)
            parts.append(_Part(nid(), sign * ax - w / 2, sign * ax + w / 2, z, z + w, 0.0, h + 1.5, pr, None))
            lr = ("light", int(rng.integers(0, 1 << 30)), 0.34, 0.95)
            parts.append(
                _Part(
                    nid(),
                    sign * ax - 0.17,
                    sign * ax + 0.17,
                    z - 0.32,
                    z - 0.02,
                    h - 1.0,
                    h - 0.05,
                    lr,
                    ("pole", int(rng.integers(0, 1 << 30)), 0.3, 0.95),
                )
            )
            if rng.random() < 0.6:
                reach = rng.uniform(3.0, max(3.5, edge - 1.0))
                ay = h + 1.2
                ar = ("pole", int(rng.integers(0, 1 << 30)), reach, 0.16)
                xa, xb = sorted((sign * ax, sign * (ax - reach)))
                parts.append(_Part(nid(), xa, xb, z + w / 2, z + w / 2, ay, ay + 0.16, ar, None))
                xl = sign * (ax - reach + 0.5)
                lr2 = ("light", int(rng.integers(0, 1 << 30)), 0.34, 0.95)
                parts.append(
                    _Part(
                        nid(),
                        xl - 0.17,
                        xl + 0.17,
                        z - 0.3,
                        z,
                        ay - 0.95,
                        ay,
                        lr2,
                        ("pole", int(rng.integers(0, 1 << 30)), 0.3, 0.95),
                    )
                )
        # trees on verges, strips and wide sidewalks
        tree_x = []
        if v1 - v0 > 0.5:
            tree_x.append((v0 + v1) / 2)
        if xn - w1 > 1.0:
            tree_x.append((w1 + xn) / 2)
        if w1 - w0 > 3.0 and not tree_x:
            tree_x.append(w0 + 0.8)
        for tx in tree_x:
            z = z_lo + rng.uniform(0, 15)
            while z < z_lo + BLOCK:
                th, cw, ch = rng.uniform(1.8, 3.2), rng.uniform(2.5, 6.0), rng.uniform(2.5, 5.5)
                x = sign * (tx + rng.uniform(-0.2, 0.2))
                tw = rng.uniform(0.2, 0.4)
                tr = ("trunk", int(rng.integers(0, 1 << 30)), tw, th + 0.5)
                parts.append(
                    _Part(nid(), x - tw / 2, x + tw / 2, z - tw / 2, z + tw / 2, 0.0, th + 0.5, tr, None)
                )
                cz = ("crown", int(rng.integers(0, 1 << 30)), cw, ch)
                cx = ("crown", int(rng.integers(0, 1 << 30)), cw, ch)
                parts.append(_Part(nid(), x - cw / 2, x + cw / 2, z, z, th, th + ch, cz, None))
                parts.append(_Part(nid(), x, x, z - cw / 2, z + cw / 2, th, th + ch, None, cx))
                z += rng.uniform(6, 20)
        # parked cars
        px = sc.parking[si]
        if px is not None:
            z = z_lo + rng.uniform(0, 6)
            while z < z_lo + BLOCK:
                if rng.random() < 0.75:
                    ps, ln = _vehicle(rng, fam.fid, b, j + 1, sign * px, z, 0.0, 1, (0.88, 0.08, 0.0, 0.04))
                    j += 1
                    parts += ps
                else:
                    ln = 5.0
                z += ln + rng.uniform(0.6, 5.0)
        # standing people
        for _ in range(int(rng.integers(0, 3))):
            z = z_lo + rng.uniform(0, BLOCK)
            x = sign * rng.uniform(w0 + 0.3, max(w0 + 0.35, w1 - 0.3))
            s = int(rng.integers(0, 1 << 30))
            h = rng.uniform(1.5, 1.95)
            w = h * rng.uniform(0.26, 0.32)
            parts.append(
                _Part(
                    nid(),
                    x - w / 2,
                    x + w / 2,
                    z,
                    z + 0.3,
                    0.0,
                    h,
                    ("ped_front", s, w, h, s),
                    None,
                )
            )
    return parts


# ----------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------


@dataclass
class SyntheticFrame:
    """One rendered frame: RGB image, trainId labels, and whether a scene cut happened right before."""

    index: int
    image: U8
    labels: U8
    cut: bool


@dataclass
class _Geom:
    """Per-pixel geometry of one frame: what ``flow`` needs (depth, surface ids, object displacements)."""

    t: int
    scene: int
    tau: int
    pose: tuple[float, float, float, float]
    depth: F32  # camera depth (m), SKY_DEPTH for sky
    lid: npt.NDArray[np.int16]  # local surface index per pixel
    gids: I64  # local index -> global surface id
    parts: list[_Part]  # local index - N_STATIC -> part (for displacements)
    labels: U8


#: Frame rate of the procedural camera: Cityscapes' 17 Hz, the video DVSNet was measured on.
DEFAULT_FPS = 17.0


class SyntheticVideo:
    """
    Endless, seeded, random-access driving video with labels and ground-truth flow.

    ``cut_every``: None (default) cuts scenes at seeded lengths of 150..300 frames; a positive int cuts
    every ``cut_every`` frames; 0 or a negative value never cuts. ``length`` only bounds iteration.
    """

    def __init__(
        self,
        seed: int = 0,
        width: int = 1024,
        height: int = 512,
        cut_every: int | None = None,
        fps: float = DEFAULT_FPS,
        length: int | None = None,
        noise: bool = True,
    ) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"frame size {width}x{height} too small (min 16x16)")
        self.seed = int(seed)
        self.width = int(width)
        self.height = int(height)
        self.cut_every = cut_every
        self.fps = float(fps)
        self.length = length
        self.noise = noise
        self.f = 0.78 * self.width
        self.cx = (self.width - 1) / 2.0
        self.cy = 0.44 * (self.height - 1)
        self._xc = ((np.arange(self.width) - self.cx) / self.f).astype(np.float64)
        self._yc = ((self.cy - np.arange(self.height)) / self.f).astype(np.float64)
        self._rows = np.arange(self.height, dtype=np.float32)[:, None]
        self._yc32 = self._yc.astype(np.float32)[:, None]
        self._starts: list[int] = [0]
        self._scenes: OrderedDict[int, _Scene] = OrderedDict()
        self._geoms: OrderedDict[int, _Geom] = OrderedDict()
        self._noise_bank: list[tuple[U8, U8]] | None = None

    # --- scenes ---------------------------------------------------------------------------------
    def _scene_index(self, t: int) -> tuple[int, int]:
        """(scene index, scene start frame) of global frame t."""
        if t < 0:
            raise ValueError(f"frame index must be >= 0, got {t}")
        ce = self.cut_every
        if ce is not None:
            if ce <= 0:
                return 0, 0
            return t // ce, (t // ce) * ce
        while self._starts[-1] <= t:
            k = len(self._starts) - 1
            ln = 150 + int(_hash_unit(_key(self.seed, 77), np.array([k]))[0] * 151)
            self._starts.append(self._starts[-1] + ln)
        k = bisect.bisect_right(self._starts, t) - 1
        return k, self._starts[k]

    def scene_of(self, t: int) -> int:
        """Index of the scene frame t belongs to (frames of different scenes share no content)."""
        return self._scene_index(t)[0]

    def _scene(self, k: int) -> _Scene:
        sc = self._scenes.get(k)
        if sc is None:
            sc = _make_scene(self.seed, k, self.fps)
            self._scenes[k] = sc
            while len(self._scenes) > 3:
                self._scenes.popitem(last=False)
        else:
            self._scenes.move_to_end(k)
        return sc

    # --- rendering ------------------------------------------------------------------------------
    def _atlas(self, sc: _Scene) -> U8:
        """Per-scene texture atlas (all tiles, N_MIP blur levels stacked vertically), uint8 RGB."""
        if sc.atlas is not None:
            return sc.atlas
        rng = _rng(sc.seed, sc.index, 2)
        tiles: list[F32] = [np.zeros((TILE, TILE, 3), np.float32)] * N_TILES
        road = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.12), rng.uniform(0.22, 0.5))
        tiles[T_ROAD] = _tile_asphalt(rng, road)
        tiles[T_PAINT] = _tile_paint(
            rng, _hsv(rng.uniform(0.1, 0.16), rng.choice([0.0, 0.05, 0.6]), rng.uniform(0.7, 0.95))
        )
        tiles[T_BIKE] = _tile_asphalt(
            rng,
            road
            if rng.random() < 0.5
            else _hsv(rng.choice([0.0, 0.33, 0.6]), rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.6)),
        )
        side_c = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.35), rng.uniform(0.35, 0.85))
        slab = int(rng.uniform(0.25, 0.7) * sc.ppm_ground)
        tiles[T_SIDEWALK] = _tile_pavers(rng, side_c, max(6, slab))
        tiles[T_CURB] = _tile_pavers(rng, _hsv(0, 0, rng.uniform(0.45, 0.85)), TILE // 2)
        tiles[T_TERRAIN] = _tile_grass(
            rng,
            _hsv(rng.uniform(0.06, 0.3), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.65)),
            float(rng.uniform(-0.1, 0.1)),
        )
        hz = sc.haze
        zen = _hsv(rng.uniform(0.52, 0.68), rng.uniform(0.0, 0.7), rng.uniform(0.45, 0.95))
        if rng.random() < 0.15:
            hz = _hsv(rng.uniform(0.02, 0.12), rng.uniform(0.3, 0.6), rng.uniform(0.7, 0.95))
        tiles[T_SKY] = _tile_sky(rng, hz, zen, _hsv(0, 0, rng.uniform(0.6, 1.0)), float(rng.uniform(0, 0.8)))
        veg_hue = rng.uniform(0.15, 0.35) if rng.random() < 0.85 else rng.uniform(0.0, 0.12)
        for s in range(2):
            light = sc.light[s]
            fb = _tile_building(
                rng,
                _hsv(rng.random(), rng.uniform(0, 0.3), rng.uniform(0.4, 0.8)),
                _hsv(0.6, 0.2, rng.uniform(0.2, 0.5)),
                sc.ppm_facade * 0.6,
            )
            fv = _tile_leaves(
                rng, _hsv(veg_hue + rng.uniform(-0.04, 0.04), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.45))
            )
            tiles[T_FAR0 + s * 2] = fb * light * 0.9 + 0.1 * hz[None, None]
            tiles[T_FAR0 + s * 2 + 1] = fv * light * 0.9 + 0.1 * hz[None, None]
            for v in range(3):
                wall = _hsv(rng.random(), rng.uniform(0, 0.55), rng.uniform(0.3, 0.9))
                glass = _hsv(rng.uniform(0.5, 0.7), rng.uniform(0, 0.4), rng.uniform(0.05, 0.45))
                tiles[T_NEAR0 + s * 6 + v] = _tile_building(rng, wall, glass, sc.ppm_facade) * light
            tiles[T_NEAR0 + s * 6 + 3] = (
                _tile_wall(rng, _hsv(rng.random(), rng.uniform(0, 0.5), rng.uniform(0.3, 0.8)), sc.ppm_facade)
                * light
            )
            tiles[T_NEAR0 + s * 6 + 4] = (
                _tile_fence(
                    rng, _hsv(rng.random(), rng.uniform(0, 0.6), rng.uniform(0.2, 0.8)), sc.ppm_facade
                )
                * light
            )
            tiles[T_NEAR0 + s * 6 + 5] = (
                _tile_leaves(
                    rng,
                    _hsv(veg_hue + rng.uniform(-0.05, 0.05), rng.uniform(0.3, 0.8), rng.uniform(0.15, 0.55)),
                )
                * light
            )
        rows = (N_TILES + ATLAS_COLS - 1) // ATLAS_COLS
        ah = rows * TILE_P
        atlas = np.zeros((ah * N_MIP, ATLAS_COLS * TILE_P, 3), np.float32)
        for i, tile in enumerate(tiles):
            r, c = divmod(i, ATLAS_COLS)
            for lvl, m in enumerate(_mips(tile * sc.tint[None, None])):
                atlas[lvl * ah + r * TILE_P : lvl * ah + (r + 1) * TILE_P, c * TILE_P : (c + 1) * TILE_P] = m
        sc.atlas = np.clip(atlas * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return sc.atlas

    def _sprite(self, sc: _Scene, recipe: Recipe) -> tuple[U8, U8]:
        sp = sc.sprites.get(recipe)
        if sp is None:
            lab, col = _make_sprite(recipe)
            sp = (lab, np.clip(col * sc.tint[None, None] * 255.0 + 0.5, 0, 255).astype(np.uint8))
            sc.sprites[recipe] = sp
            while len(sc.sprites) > 2000:
                sc.sprites.popitem(last=False)
        return sp

    def _parts(self, sc: _Scene, tau: int, ez: float) -> list[_Part]:
        """Parts whose (moved) position may be in view at frame ``tau``."""
        out: list[_Part] = []
        s = tau / self.fps
        for fam in sc.families:
            shift = fam.vz * s
            lo = int(math.floor((ez - 15.0 - shift - 15.0) / BLOCK))
            hi = int(math.floor((ez + OBJ_RANGE - shift) / BLOCK))
            for b in range(lo, hi + 1):
                key = (fam.fid, b)
                blk = sc.blocks.get(key)
                if blk is None:
                    blk = _spawn(sc, fam, b)
                    sc.blocks[key] = blk
                    while len(sc.blocks) > 400:
                        sc.blocks.popitem(last=False)
                out.extend(blk)
        if sc.lead_gap is not None:
            x = sc.ego_x
            lead_parts, _ = _vehicle(
                _rng(sc.seed, sc.index, 5), 999, 0, 1, x, 0.0, 0.0, 1, (0.9, 0.06, 0.04, 0.0)
            )
            for p in lead_parts:
                p.lead = True
                p.z1 -= p.z0
                p.z0 = 0.0
            out.extend(lead_parts)
        return out

    def _render(self, t: int, color: bool) -> tuple[_Geom, U8 | None]:
        """Render frame t: geometry always, the RGB image when ``color``."""
        k, start = self._scene_index(t)
        sc = self._scene(k)
        tau = t - start
        ex, ey, ez, yaw = sc.pose(tau)
        H, W = self.height, self.width
        cs, sn = math.cos(yaw), math.sin(yaw)
        dx = (self._xc * cs + sn).astype(np.float64)
        dz = (-self._xc * sn + cs).astype(np.float64)
        yc = self._yc
        rows = self._rows
        f, cy = self.f, self.cy
        side = (dx >= 0).astype(np.int64)  # 0 left, 1 right

        def facade(
            layer: int,
        ) -> tuple[F64, F64, F64, F64, F64, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
            """Per column: depth, Z of hit, top/bottom row, texture U, type, tile."""
            xs = np.array(sc.x_near if layer == 0 else sc.x_far)
            xp = np.where(side == 0, -xs[0], xs[1])
            with np.errstate(divide="ignore", invalid="ignore"):
                tt = (xp - ex) / dx
            bad = ~np.isfinite(tt) | (tt <= NEAR) | (tt > 5e4)
            tt = np.where(bad, 5e4, tt)
            zh = ez + tt * dz
            seg = np.array(sc.seg_near if layer == 0 else sc.seg_far)[side]
            j = np.floor(zh / seg).astype(np.int64)
            key = sc.rng_key + 7919 * layer
            u1 = _hash_unit(key, j * 2 + side)
            u2 = _hash_unit(key + 1, j * 2 + side)
            u3 = _hash_unit(key + 2, j * 2 + side)
            if layer == 0:
                typ = np.searchsorted(sc.near_cum, u1).clip(0, 4).astype(np.int64)
                lo, hi = sc.near_h[typ, 0], sc.near_h[typ, 1]
                hgt = lo + u2 * (hi - lo)
                veg = typ == NT_VEG
                cell = np.floor(zh * 1.5).astype(np.int64)
                hgt = np.where(veg, hgt + 0.7 * _hash_unit(key + 3, cell * 2 + side), hgt)
                tsel = np.select(
                    [typ == NT_BUILDING, typ == NT_WALL, typ == NT_FENCE],
                    [(u3 * 3).astype(np.int64).clip(0, 2), np.full_like(typ, 3), np.full_like(typ, 4)],
                    5,
                )
                tile = T_NEAR0 + side * 6 + tsel
                hgt = np.where(typ == NT_GAP, 0.0, hgt)
            else:
                typ = np.where(u1 < sc.far_veg_p, NT_VEG, NT_BUILDING).astype(np.int64)
                hgt = sc.far_h[0] + u2 * (sc.far_h[1] - sc.far_h[0])
                hgt = np.where(
                    typ == NT_VEG, hgt * 0.5 + 1.0 * _hash_unit(key + 3, np.floor(zh).astype(np.int64)), hgt
                )
                tile = T_FAR0 + side * 2 + (typ == NT_VEG)
            hgt = np.where(bad, 0.0, hgt)
            top = cy - f * (hgt - ey) / tt
            bot = cy + f * ey / tt
            top = np.where(hgt <= 0, np.inf, top)
            texu = (zh - j * seg) * sc.ppm_facade + u3 * 997.0
            return tt, zh, top, bot, texu, typ, tile

        tn, _zn, top_n, bot_n, texu_n, typ_n, tile_n = facade(0)
        tf, _zf, top_f, bot_f, texu_f, typ_f, tile_f = facade(1)
        top_f = np.where(np.isinf(top_f), bot_f, top_f)  # far layer is closed
        # Exclusive layer masks (sky, far facade, ground, near facade). Selections below are sums of
        # mask * value (exact, as exactly one mask is 1), which is much faster than chains of np.where.
        fb = rows >= top_f.astype(np.float32)[None, :]
        gb = rows > bot_f.astype(np.float32)[None, :]  # (ground is always inside fb)
        nb = (rows >= top_n.astype(np.float32)[None, :]) & (rows <= bot_n.astype(np.float32)[None, :])
        not_n = ~nb
        m_s = ~fb & not_n
        m_f = fb & ~gb & not_n
        m_g = gb & not_n
        masks_f = [m.astype(np.float32) for m in (m_s, m_f, m_g, nb)]
        masks_u = [m.view(np.uint8) for m in (m_s, m_f, m_g, nb)]
        g0 = int(math.floor(cy)) + 1  # first row below the horizon (ground rows)
        with np.errstate(divide="ignore"):
            tg = np.where(yc < 0, ey / np.maximum(-yc, 1e-12), SKY_DEPTH)
        tgb = tg[g0:].astype(np.float32)[:, None]
        depth = masks_f[0] * np.float32(SKY_DEPTH) + masks_f[1] * tf.astype(np.float32)[None, :]
        depth += masks_f[3] * tn.astype(np.float32)[None, :]
        depth[g0:] += masks_f[2][g0:] * tgb
        lid16 = masks_u[1] * (SID_FAR_L + side).astype(np.uint8)[None, :]
        lid16 += masks_u[3] * (SID_NEAR_L + side).astype(np.uint8)[None, :]
        lid16 += masks_u[2] * np.uint8(SID_GROUND)
        lid = lid16.astype(np.int16)
        # ground lateral/longitudinal coordinates (only rows below the horizon)
        gx = np.float32(ex) + tgb * dx.astype(np.float32)[None, :]
        gz_rel = tgb * dz.astype(np.float32)[None, :]  # Z - ez (kept small for float32 precision)
        xi = ((gx - np.float32(sc.lat_x0)) * np.float32(20.0)).astype(np.int32)
        np.clip(xi, 0, sc.lat_label.shape[0] - 1, out=xi)
        glab = np.take(sc.lat_label, xi)
        lab_f = np.where(typ_f == NT_VEG, VEG, BUILDING).astype(np.uint8)
        labels = masks_u[0] * np.uint8(SKY) + masks_u[1] * lab_f[None, :]
        labels += masks_u[3] * _NEAR_LABEL[typ_n][None, :]
        labels[g0:] += masks_u[2][g0:] * glab

        # objects
        parts = self._parts(sc, tau, ez)
        gids = list(range(N_STATIC))
        drawn: list[_Part] = []
        image: U8 | None = None
        if color:
            atlas = self._atlas(sc)
            ah = atlas.shape[0] // N_MIP
            ox_t = (np.arange(N_TILES) % ATLAS_COLS) * TILE_P + 1.0
            oy_t = (np.arange(N_TILES) // ATLAS_COLS) * TILE_P + 1.0
            # sky: by viewing direction
            az = (yaw + np.arctan(self._xc)) * (TILE / (math.pi / 2))
            sky_u = (ox_t[T_SKY] + np.mod(az, TILE)).astype(np.float32)
            el = np.arctan(np.maximum(yc, 0.0)) / math.radians(35.0)
            sky_v = (oy_t[T_SKY] + np.clip((1.0 - el) * (TILE - 1), 0, TILE - 1)).astype(np.float32)
            mx = masks_f[0] * sky_u[None, :]
            my = masks_f[0] * sky_v[:, None]
            ppmf = sc.ppm_facade

            def lvl_col(tt: F64, ppm: float) -> F64:
                fp = tt / f * ppm
                return np.clip(np.floor(np.log2(np.maximum(fp, 1e-6)) + 0.5), 0, N_MIP - 1) * ah

            for tt, texu, tile, m, pp in (
                (tf, texu_f, tile_f, masks_f[1], ppmf * 0.6),
                (tn, texu_n, tile_n, masks_f[3], ppmf),
            ):
                u = (ox_t[tile] + np.mod(texu * (pp / ppmf), TILE)).astype(np.float32)
                vy0 = (oy_t[tile] + lvl_col(tt, pp) + (TILE - 1)).astype(np.float32)
                tp = (tt * pp).astype(np.float32)
                vv = _fmod(np.float32(ey * pp) + tp[None, :] * self._yc32, TILE)
                mx += m * u[None, :]
                my += m * (vy0[None, :] - vv)
            # ground texture by lateral band; lane markings dashed along world Z
            pg = np.float32(sc.ppm_ground)
            mk = np.take(sc.lat_mark, xi)
            zabs = float(ez)
            zmod0 = np.float32(math.fmod(zabs, sc.dash[1]))
            dash_on = _fmod(gz_rel + zmod0, sc.dash[1]) < np.float32(sc.dash[0])
            code = xi * 2 + (((mk == 1) | ((mk == 2) & dash_on)).view(np.uint8))
            zt0 = np.float32(math.fmod(zabs * sc.ppm_ground, TILE))
            fpz = tg[g0:] ** 2 / (f * ey) * sc.ppm_ground * 0.5
            glvl = np.clip(np.floor(np.log2(np.maximum(fpz, 1e-6)) + 0.5), 0, N_MIP - 1) * ah
            gu = np.take(sc.lat_ox, code) + _fmod(gx * pg, TILE)
            gv = np.take(sc.lat_oy, code) + glvl.astype(np.float32)[:, None] + _fmod(gz_rel * pg + zt0, TILE)
            mg = masks_f[2][g0:]
            mx[g0:] += mg * gu
            my[g0:] += mg * gv
            img: U8 = np.asarray(
                cv2.remap(atlas, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), np.uint8
            )
            # distance haze on far facades and ground near the horizon
            r_a, r_b = max(0, int(cy) - int(0.25 * H)), min(H, int(cy) + int(0.08 * H))
            dsub = depth[r_a:r_b]
            fog = np.clip((dsub - np.float32(60.0)) * np.float32(1 / 400.0), 0.0, 0.6)
            fog *= dsub < np.float32(SKY_DEPTH * 0.5)
            hz_img = np.empty((r_b - r_a, W, 3), np.uint8)
            hz_img[:] = np.clip(sc.haze * sc.tint * 255.0, 0, 255).astype(np.uint8)
            band = np.ascontiguousarray(img[r_a:r_b])
            img[r_a:r_b] = cv2.blendLinear(band, hz_img, np.float32(1.0) - fog, fog)
            image = img

        for part in parts:
            ox, oz = sc.offset(part, tau)
            if self._draw_part(
                sc, part, ox, oz, (ex, ey, ez, yaw), dx, dz, depth, labels, lid, image, len(gids)
            ):
                gids.append(part.gid)
                gids.append(part.gid + 1)
                drawn.append(part)
        geom = _Geom(t, k, tau, (ex, ey, ez, yaw), depth, lid, np.array(gids, np.int64), drawn, labels)
        if image is not None:
            image = self._post(sc, t, tau, image)
        return geom, image

    def _draw_part(
        self,
        sc: _Scene,
        p: _Part,
        ox: float,
        oz: float,
        pose: tuple[float, float, float, float],
        dx: F64,
        dz: F64,
        depth: F32,
        labels: U8,
        lid: npt.NDArray[np.int16],
        image: U8 | None,
        base_lid: int,
    ) -> bool:
        """Draw the faces of one part turned to the camera; local ids base_lid (z face), +1 (x face)."""
        ex, ey, ez, yaw = pose
        x0, x1, z0, z1 = p.x0 + ox, p.x1 + ox, p.z0 + oz, p.z1 + oz
        if z1 < ez - 20.0 or z0 > ez + OBJ_RANGE:
            return False
        cs, sn = math.cos(yaw), math.sin(yaw)
        drew = False
        H, W = self.height, self.width
        f, cxp, cy = self.f, self.cx, self.cy
        for fidx in (0, 1):
            # the z face (Z = z0, seen from the front) and the x face turned to the camera
            if fidx == 0:
                if p.zface is None or ez >= z0:
                    continue
                val, a0, a1, recipe, flip = z0, x0, x1, p.zface, False
                pax, paz, pbx, pbz = a0 - ex, val - ez, a1 - ex, val - ez
            else:
                if p.xface is None:
                    continue
                if x0 == x1 or ex < x0:
                    val = x0
                elif ex > x1:
                    val = x1
                else:
                    continue
                a0, a1, recipe, flip = z0, z1, p.xface, p.flip
                pax, paz, pbx, pbz = val - ex, a0 - ez, val - ex, a1 - ez
            # corners in camera coordinates (clipped to the near plane) -> pixel bounding box
            xa, za = pax * cs - paz * sn, pax * sn + paz * cs
            xb, zb = pbx * cs - pbz * sn, pbx * sn + pbz * cs
            if za < NEAR and zb < NEAR:
                continue
            if za < NEAR:
                r = (NEAR - za) / (zb - za)
                xa, za = xa + r * (xb - xa), NEAR
            elif zb < NEAR:
                r = (NEAR - zb) / (za - zb)
                xb, zb = xb + r * (xa - xb), NEAR
            ua, ub = cxp + f * xa / za, cxp + f * xb / zb
            c0 = max(0, int(min(ua, ub)) - 1)
            c1 = min(W, int(max(ua, ub)) + 2)
            zmin = min(za, zb)
            if c1 <= c0 or zmin > OBJ_RANGE:
                continue
            ka, kb = f / za, f / zb
            dy1, dy0 = p.y1 - ey, p.y0 - ey
            r0 = max(0, int(cy - max(ka * dy1, kb * dy1)) - 1)
            r1 = min(H, int(cy - min(ka * dy0, kb * dy0)) + 2)
            if r1 <= r0:
                continue
            dxs, dzs = dx[c0:c1], dz[c0:c1]
            if fidx == 0:
                tt = (val - ez) / dzs  # dz > 0: the camera looks forward
                a = ex + tt * dxs
                ok = tt > NEAR
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    tt = (val - ex) / dxs
                    ok = (tt > NEAR) & (tt < 1e5)
                    a = ez + tt * dzs
            lab_s, col_s = self._sprite(sc, recipe)
            sh, sw = lab_s.shape
            su = (a1 - a) if flip else (a - a0)
            sx = np.where(ok, su * (sw / max(a1 - a0, 1e-6)) - 0.5, -1e4).astype(np.float32)
            tt32 = np.where(ok, tt, 1e9).astype(np.float32)
            scale = sh / (p.y1 - p.y0)
            sy = (
                np.float32((p.y1 - ey) * scale - 0.5)
                - (tt32 * np.float32(scale))[None, :] * self._yc32[r0:r1]
            )
            mxs = np.repeat(sx[None, :], r1 - r0, axis=0)
            lab = cv2.remap(
                lab_s, mxs, sy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=255
            )
            droi = depth[r0:r1, c0:c1]
            mask = (lab != 255) & (tt32 < droi)
            if not mask.any():
                continue
            np.copyto(droi, tt32[None, :], where=mask)
            np.copyto(labels[r0:r1, c0:c1], lab, where=mask)
            np.copyto(lid[r0:r1, c0:c1], np.int16(base_lid + fidx), where=mask)
            if image is not None:
                col = cv2.remap(col_s, mxs, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                np.copyto(image[r0:r1, c0:c1], col, where=mask[:, :, None])
            drew = True
        return drew

    def _post(self, sc: _Scene, t: int, tau: int, image: U8) -> U8:
        """Camera effects: slight blur, exposure flicker, sensor noise (seeded by frame)."""
        out = cv2.GaussianBlur(image, (0, 0), sc.blur)
        s = tau / self.fps
        gain = sc.gain * (1.0 + 0.04 * math.sin(2 * math.pi * s / 3.7 + sc.index))
        out = cv2.convertScaleAbs(out, alpha=gain, beta=0.0)
        if self.noise:
            bank = self._bank()
            pos, neg = bank[sc.noise_level]
            hh = _hash_unit(_key(self.seed, 5, t), np.array([0, 1, 2]))
            oy, ox = int(hh[0] * 32), int(hh[1] * 32)
            H, W = self.height, self.width
            i = int(hh[2] * 2)
            a, b = (pos, neg) if i == 0 else (neg, pos)
            out = cv2.add(out, a[oy : oy + H, ox : ox + W])
            out = cv2.subtract(out, b[oy : oy + H, ox : ox + W])
        return np.ascontiguousarray(out)

    def _bank(self) -> list[tuple[U8, U8]]:
        """Three banks of (positive, negative) Gaussian sensor noise; frames take seeded windows."""
        if self._noise_bank is None:
            rng = _rng(self.seed, 9, 9)
            shape = (self.height + 32, self.width + 32, 3)
            bank = []
            for sigma in (1.5, 3.0, 5.0):
                n = rng.standard_normal(shape, dtype=np.float32) * sigma
                bank.append((np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)))
            self._noise_bank = bank
        return self._noise_bank

    def _geometry(self, t: int) -> _Geom:
        g = self._geoms.get(t)
        if g is None:
            g, _ = self._render(t, color=False)
            self._remember(g)
        return g

    def _remember(self, g: _Geom) -> None:
        self._geoms[g.t] = g
        self._geoms.move_to_end(g.t)
        while len(self._geoms) > 4:
            self._geoms.popitem(last=False)

    # --- public API -----------------------------------------------------------------------------
    def frame(self, t: int) -> SyntheticFrame:
        """Render frame ``t`` (random access; same bytes whatever was rendered before)."""
        t = int(t)
        g, image = self._render(t, color=True)
        self._remember(g)
        assert image is not None
        _, start = self._scene_index(t)
        return SyntheticFrame(index=t, image=image, labels=g.labels.copy(), cut=(t == start and t > 0))

    def flow(self, t_key: int, t_cur: int) -> tuple[F32, BoolArr]:
        """
        Backward GT flow (2, H, W) from frame t_cur to t_key and its validity mask (H, W).

        Content at (x, y) of t_cur was at (x + dx, y + dy) in t_key; valid = same surface visible there
        and inside the key frame. All invalid (and zero) when a scene cut separates the frames.
        """
        H, W = self.height, self.width
        if self.scene_of(t_key) != self.scene_of(t_cur):
            return np.zeros((2, H, W), np.float32), np.zeros((H, W), bool)
        gc = self._geometry(int(t_cur))
        gk = self._geometry(int(t_key))
        sc = self._scene(gc.scene)
        ex, ey, ez, yaw = gc.pose
        kx, ky, kz, kyaw = gk.pose
        cs, sn = math.cos(yaw), math.sin(yaw)
        dxc = (self._xc * cs + sn).astype(np.float32)
        dzc = (-self._xc * sn + cs).astype(np.float32)
        d = gc.depth
        # world point relative to the key camera, per pixel (float32, small numbers)
        px = np.float32(ex - kx) + d * dxc[None, :]
        py = np.float32(ey - ky) + d * self._yc.astype(np.float32)[:, None]
        pz = np.float32(ez - kz) + d * dzc[None, :]
        if gc.parts:
            n = N_STATIC + 2 * len(gc.parts)
            mvx = np.zeros(n, np.float32)
            mvz = np.zeros(n, np.float32)
            for i, p in enumerate(gc.parts):
                cx0, cz0 = sc.offset(p, gc.tau)
                kx0, kz0 = sc.offset(p, gk.tau)
                mvx[N_STATIC + 2 * i : N_STATIC + 2 * i + 2] = cx0 - kx0
                mvz[N_STATIC + 2 * i : N_STATIC + 2 * i + 2] = cz0 - kz0
            if np.any(mvx) or np.any(mvz):
                px -= mvx[gc.lid]
                pz -= mvz[gc.lid]
        kc, ks = math.cos(kyaw), math.sin(kyaw)
        xk = px * np.float32(kc) - pz * np.float32(ks)
        zk = px * np.float32(ks) + pz * np.float32(kc)
        front = zk > NEAR
        zs = np.where(front, zk, np.float32(1.0))
        u = np.float32(self.cx) + np.float32(self.f) * xk / zs
        v = np.float32(self.cy) - np.float32(self.f) * py / zs
        flow = np.empty((2, H, W), np.float32)
        flow[0] = u - np.arange(W, dtype=np.float32)[None, :]
        flow[1] = v - self._rows
        ui = np.floor(u + 0.5)
        vi = np.floor(v + 0.5)
        inside = front & (ui >= 0) & (ui <= W - 1) & (vi >= 0) & (vi <= H - 1)
        uii = np.where(inside, ui, 0).astype(np.intp)
        vii = np.where(inside, vi, 0).astype(np.intp)
        key_gid = gk.gids[gk.lid[vii, uii]]
        cur_gid = gc.gids[gc.lid]
        valid = inside & (key_gid == cur_gid)
        flow[:, ~front] = 0.0
        return flow, valid

    def frames(self, n: int, start: int = 0) -> Iterator[SyntheticFrame]:
        """Frames start .. start+n-1 in order."""
        for t in range(start, start + n):
            yield self.frame(t)

    def __iter__(self) -> Iterator[SyntheticFrame]:
        t = 0
        while self.length is None or t < self.length:
            yield self.frame(t)
            t += 1

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError("endless SyntheticVideo has no length (pass length=...)")
        return self.length


def default_sample(n_frames: int = 300, width: int = 1024, height: int = 512) -> SyntheticVideo:
    """The embedded default demo video: seed DEFAULT_SEED, ``n_frames`` long (iterable, random access)."""
    return SyntheticVideo(seed=DEFAULT_SEED, width=width, height=height, length=n_frames)
