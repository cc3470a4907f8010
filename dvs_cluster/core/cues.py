"""
Decision cues: what the DN v2 reads, computable from any flow source (issue 18).

DVSNet's DN reads the flow net's deepest features, so it can judge only that net. These cues need
only the two regions and a backward flow on the 1/4 grid, so one small net can be trained per flow
source (FlowNet-S or DIS) on the same target: the flow path's agreement with the seg net. The strongest
single cue is the photometric residual, |current - key warped by the flow|: where the flow is wrong or
content appears (occlusion), the warped key does not match the current region, and neither will the
warped labels. Key age comes separately (it is not spatial).

All on the 1/4 grid (64 x 128 for a 512 x 256 region), pooled to the 4 x 8 cells of :data:`CUE_GRID`;
about 0.3 ms per region on one core.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from dvs_cluster.core.warp import sampling_maps

UInt8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]

CUE_NAMES = (
    "residual",  # mean |current - warped key| / 32 (gray levels)
    "residual>12",  # share of cells' pixels whose residual exceeds 12 gray levels
    "residual>32",
    "change",  # mean |current - key| / 32, no warp: a scene cut or a lighting change
    "motion",  # mean |flow| / 8 (pixels of the 1/4 grid)
    "flow_edges",  # mean |grad flow| / 2: motion boundaries, where occlusions are
    "outside",  # share sampled from outside the key region (content that entered)
    "texture",  # mean |grad current| / 32: textured cells have larger residuals for equal quality
)
CUE_CHANNELS = len(CUE_NAMES)
CUE_GRID = (4, 8)
#: Ages above this are all "old" to the DN (it is trained on 0..20).
AGE_CAP = 30


def _pool(x: FloatArray) -> FloatArray:
    """Cell means on the 4 x 8 grid (area interpolation is an exact mean when the sizes divide)."""
    gh, gw = CUE_GRID
    return np.asarray(cv2.resize(x, (gw, gh), interpolation=cv2.INTER_AREA), np.float32)


def _grad(x: FloatArray) -> FloatArray:
    """|d/dx| + |d/dy| by forward differences, same shape (last row/column repeated)."""
    gx = np.abs(np.diff(x, axis=1, append=x[:, -1:]))
    gy = np.abs(np.diff(x, axis=0, append=x[-1:, :]))
    out: FloatArray = gx + gy
    return out


def decision_cues(key_gray: UInt8Array, cur_gray: UInt8Array, flow: FloatArray) -> FloatArray:
    """
    (CUE_CHANNELS, 4, 8) float32 cues of one region pair.

    ``key_gray``, ``cur_gray``: gray regions (h, w) uint8; ``flow``: backward flow (2, gh, gw) on their
    1/4 grid, in pixels of that grid (the convention of :mod:`dvs_cluster.core.warp`).
    """
    if key_gray.shape != cur_gray.shape:
        raise ValueError(f"key is {key_gray.shape}, current is {cur_gray.shape}")
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"flow must have shape (2, h, w), got {flow.shape}")
    gh, gw = flow.shape[1:]
    size = (gw, gh)
    key = np.asarray(cv2.resize(key_gray, size, interpolation=cv2.INTER_AREA), np.float32)
    cur = np.asarray(cv2.resize(cur_gray, size, interpolation=cv2.INTER_AREA), np.float32)
    map_x, map_y = sampling_maps(flow)
    warped = cv2.remap(key, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    res = np.abs(cur - warped)
    outside = ((map_x < 0) | (map_x > gw - 1) | (map_y < 0) | (map_y > gh - 1)).astype(np.float32)
    motion = np.sqrt(flow[0] * flow[0] + flow[1] * flow[1])
    cues = np.stack(
        [
            _pool(res) / 32.0,
            _pool((res > 12.0).astype(np.float32)),
            _pool((res > 32.0).astype(np.float32)),
            _pool(np.abs(cur - key)) / 32.0,
            _pool(motion) / 8.0,
            _pool(_grad(flow[0]) + _grad(flow[1])) / 2.0,
            _pool(outside),
            _pool(_grad(cur)) / 32.0,
        ]
    )
    return np.ascontiguousarray(cues, dtype=np.float32)


def age_input(key_age: int) -> FloatArray:
    """The DN v2's second input: key age in frames, capped and scaled to 0..1, shape (1,)."""
    return np.array([min(max(int(key_age), 0), AGE_CAP) / AGE_CAP], np.float32)
