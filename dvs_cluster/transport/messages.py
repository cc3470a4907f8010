"""
Cluster messages: ROS 2 types from ``msg/*.msg``, serialised as CDR with ``rosbags``, numpy in and out.

The ``.msg`` files are the single source of truth: they are parsed and registered in a ``rosbags`` type
store at import, so the Zenoh backend (no ROS installed) and a ROS 2 backend put the same bytes on the
wire. The type names use the package ``dvs_cluster_interfaces`` because a colcon build puts generated
interfaces into their own package (a package cannot hold both generated interfaces and a Python package
of the same name on Humble).

Nodes never touch rosbags objects: they build and read the plain dataclasses below (:class:`Task`,
:class:`Result`, :class:`Status`). ``encode_*`` serialise them; ``decode_*`` parse *and validate*, and
raise :class:`MessageError` (one error type) for anything malformed, so a node can count and drop it.
Arrays are shared with the message buffers where possible (``uint8[]`` fields are numpy views), so
decoded arrays are read-only views of the received payload.
"""

from __future__ import annotations

import math
import os
import site
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

PACKAGE = "dvs_cluster_interfaces"
TYPE_PREFIX = f"{PACKAGE}/msg/"
TENSOR = TYPE_PREFIX + "Tensor"
STAGE_TIMINGS = TYPE_PREFIX + "StageTimings"
REGION_TASK = TYPE_PREFIX + "RegionTask"
REGION_RESULT = TYPE_PREFIX + "RegionResult"
SLAVE_STATUS = TYPE_PREFIX + "SlaveStatus"
MESSAGE_NAMES = ("Tensor", "StageTimings", "RegionTask", "RegionResult", "SlaveStatus")

PATH_SEG = 0
PATH_FLOW = 1
PATH_NAMES = {PATH_SEG: "seg", PATH_FLOW: "flow"}

# Sanity bounds for decoded geometry: anything beyond is malformed, not a big frame.
MAX_SIDE = 16384
MAX_REGIONS = 255
MAX_TENSOR_DIMS = 4
TENSOR_DTYPES = ("float32", "float16", "uint8")
IMAGE_CHANNELS = {"rgb8": 3, "mono8": 1}

UInt8Array = npt.NDArray[np.uint8]
FloatArray = npt.NDArray[np.float32]


class MessageError(ValueError):
    """Bytes that do not decode into a valid cluster message (truncated, random, inconsistent)."""


def _candidate_msg_dirs() -> Iterator[Path]:
    env = os.environ.get("DVS_CLUSTER_MSG_DIR")
    if env:
        yield Path(env)
    yield Path(__file__).resolve().parents[2] / "msg"  # source tree / editable install
    prefixes = [sys.prefix, sysconfig.get_path("data"), getattr(site, "USER_BASE", None) or ""]
    prefixes += os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)  # colcon / ROS 2 install
    for prefix in prefixes:
        if prefix:
            yield Path(prefix) / "share" / "dvs_cluster" / "msg"


def msg_dir() -> Path:
    """Directory holding the ``.msg`` files: ``$DVS_CLUSTER_MSG_DIR``, the source tree, or an install."""
    for cand in _candidate_msg_dirs():
        if all((cand / f"{n}.msg").is_file() for n in MESSAGE_NAMES):
            return cand
    raise FileNotFoundError(
        "dvs_cluster .msg files not found (source tree msg/, <prefix>/share/dvs_cluster/msg, "
        "or $DVS_CLUSTER_MSG_DIR)"
    )


def _build_typestore() -> Any:
    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    directory = msg_dir()
    for name in MESSAGE_NAMES:
        types.update(get_types_from_msg((directory / f"{name}.msg").read_text(), TYPE_PREFIX + name))
    store.register(types)
    return store


TYPESTORE = _build_typestore()
_T = TYPESTORE.types
_Time = _T["builtin_interfaces/msg/Time"]
_Header = _T["std_msgs/msg/Header"]
_Image = _T["sensor_msgs/msg/Image"]
_Roi = _T["sensor_msgs/msg/RegionOfInterest"]
_Tensor = _T[TENSOR]
_Timings = _T[STAGE_TIMINGS]
_RegionTask = _T[REGION_TASK]
_RegionResult = _T[REGION_RESULT]
_SlaveStatus = _T[SLAVE_STATUS]
_EMPTY_U8: UInt8Array = np.zeros(0, dtype=np.uint8)


# ----------------------------------------------------------------------------------------------------
# Plain dataclasses the nodes use


@dataclass
class KeyPayload:
    """A key forwarded from the master's global key buffer: region image + logits at timestep ``sequence``."""

    sequence: int
    image: UInt8Array  # (h, w, 3) RGB
    logits: FloatArray  # (C, h/4, w/4)


@dataclass
class Task:
    """One region of one frame for one slave."""

    cluster_id: str
    slave_id: str
    sequence: int
    region: int
    num_regions: int
    rect: tuple[int, int, int, int]  # x, y, width, height in the frame
    image: UInt8Array  # (h, w, 3) RGB
    threshold: float
    policy: str = "dvsnet"
    want_confidence: bool = False
    run_id: str = ""
    attempt: int = 0
    stamp: float = 0.0  # capture time, seconds since the epoch
    frame_id: str = ""
    key: KeyPayload | None = None


@dataclass
class Timings:
    """Slave stage times in seconds (see ``msg/StageTimings.msg``)."""

    deserialize: float = 0.0
    key_update: float = 0.0
    dn: float = 0.0
    flow: float = 0.0
    warp: float = 0.0
    seg: float = 0.0
    labels: float = 0.0
    serialize_prev: float = 0.0
    total: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """Field name -> seconds, in definition order."""
        return {k: float(getattr(self, k)) for k in TIMING_FIELDS}


TIMING_FIELDS = tuple(Timings.__dataclass_fields__)


@dataclass
class Result:
    """The segmentation of one region, slave -> master."""

    cluster_id: str
    slave_id: str
    sequence: int
    region: int
    path: int  # PATH_SEG or PATH_FLOW
    score: float
    key_sequence: int
    labels: UInt8Array  # (h, w) trainIds at region resolution
    logits: FloatArray | None = None  # segmentation path only
    confidence: FloatArray | None = None  # (h, w) max logit, when the task asked for it
    run_id: str = ""
    attempt: int = 0
    stamp: float = 0.0
    frame_id: str = ""
    timings: Timings = field(default_factory=Timings)


@dataclass
class Status:
    """Slave heartbeat."""

    cluster_id: str
    slave_id: str
    incarnation: str
    in_flight: int = 0
    tasks_done: int = 0
    seg_count: int = 0
    flow_count: int = 0
    malformed: int = 0
    key_sequences: tuple[int, ...] = ()
    stamp: float = 0.0


# ----------------------------------------------------------------------------------------------------
# numpy <-> message parts


def _stamp_to_time(stamp: float) -> Any:
    sec = math.floor(stamp)
    return _Time(sec=int(sec), nanosec=min(int(round((stamp - sec) * 1e9)), 999_999_999))


def _header(stamp: float, frame_id: str) -> Any:
    return _Header(stamp=_stamp_to_time(stamp), frame_id=frame_id)


def _stamp(header: Any) -> float:
    return float(header.stamp.sec) + float(header.stamp.nanosec) * 1e-9


def _bytes_view(arr: npt.NDArray[Any]) -> UInt8Array:
    """Flat uint8 view of an array (no copy when it is already C-contiguous)."""
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8)


def image_to_msg(image: UInt8Array | None, stamp: float = 0.0, frame_id: str = "") -> Any:
    """(h, w, 3) RGB or (h, w) label map -> ``sensor_msgs/Image`` (rgb8 / mono8); None -> empty image."""
    if image is None:
        return _Image(
            header=_header(stamp, frame_id),
            height=0,
            width=0,
            encoding="",
            is_bigendian=0,
            step=0,
            data=_EMPTY_U8,
        )
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image must be uint8 (h, w) or (h, w, 3), got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    channels = 1 if image.ndim == 2 else 3
    return _Image(
        header=_header(stamp, frame_id),
        height=h,
        width=w,
        encoding="mono8" if channels == 1 else "rgb8",
        is_bigendian=0,
        step=w * channels,
        data=_bytes_view(image),
    )


def msg_to_image(msg: Any, encoding: str) -> UInt8Array:
    """``sensor_msgs/Image`` -> numpy view; checks encoding and sizes (MessageError otherwise)."""
    if msg.encoding != encoding:
        raise MessageError(f"image encoding {msg.encoding!r}, expected {encoding!r}")
    channels = IMAGE_CHANNELS[encoding]
    h, w = int(msg.height), int(msg.width)
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise MessageError(f"image size {w}x{h} out of range")
    if msg.step != w * channels or len(msg.data) != h * w * channels:
        raise MessageError(f"image step {msg.step} / {len(msg.data)} bytes do not match {w}x{h}x{channels}")
    data = np.asarray(msg.data, dtype=np.uint8)
    return data.reshape((h, w, channels) if channels == 3 else (h, w))


def tensor_to_msg(arr: npt.NDArray[Any] | None, quantize: str = "float32") -> Any:
    """Array -> ``Tensor``; ``quantize``: float32 (as is), float16 (half the bytes) or uint8 (affine)."""
    if arr is None:
        return _Tensor(dtype="", shape=np.zeros(0, dtype=np.uint32), scale=1.0, offset=0.0, data=_EMPTY_U8)
    scale, offset = 1.0, 0.0
    if quantize == "float32":
        stored: npt.NDArray[Any] = np.ascontiguousarray(arr, dtype="<f4")
    elif quantize == "float16":
        stored = np.ascontiguousarray(arr, dtype="<f2")
    elif quantize == "uint8":
        lo, hi = float(np.min(arr)), float(np.max(arr))
        scale = (hi - lo) / 255.0 if hi > lo else 1.0
        offset = lo
        stored = np.clip(np.rint((np.asarray(arr, dtype=np.float32) - lo) / scale), 0, 255).astype(np.uint8)
    else:
        raise ValueError(f"unknown quantisation {quantize!r} (float32, float16, uint8)")
    return _Tensor(
        dtype=quantize,
        shape=np.asarray(arr.shape, dtype=np.uint32),
        scale=scale,
        offset=offset,
        data=_bytes_view(stored),
    )


def msg_to_tensor(msg: Any) -> FloatArray:
    """``Tensor`` -> float32 array (a read-only view for float32, a converted copy otherwise)."""
    if msg.dtype not in TENSOR_DTYPES:
        raise MessageError(f"tensor dtype {msg.dtype!r} not one of {TENSOR_DTYPES}")
    shape = tuple(int(s) for s in msg.shape)
    if not 1 <= len(shape) <= MAX_TENSOR_DIMS or any(s <= 0 or s > MAX_SIDE for s in shape):
        raise MessageError(f"tensor shape {shape} out of range")
    dtype = np.dtype(msg.dtype).newbyteorder("<")
    if len(msg.data) != math.prod(shape) * dtype.itemsize:
        raise MessageError(f"tensor of shape {shape} {msg.dtype} cannot hold {len(msg.data)} bytes")
    if not (math.isfinite(msg.scale) and math.isfinite(msg.offset)):
        raise MessageError("tensor scale/offset not finite")
    stored = np.asarray(msg.data, dtype=np.uint8).view(dtype).reshape(shape)
    out: FloatArray
    if msg.dtype == "float32" and msg.scale == 1.0 and msg.offset == 0.0:
        out = stored
    elif msg.dtype == "float32":
        out = (stored * np.float32(msg.scale) + np.float32(msg.offset)).astype(np.float32)
    else:
        out = (stored.astype(np.float32) * np.float32(msg.scale) + np.float32(msg.offset)).astype(np.float32)
    if not np.isfinite(out).all():  # NaN/inf logits would spread through keys and every warp from them
        raise MessageError("tensor values not finite")
    return out


def _timings_to_msg(t: Timings) -> Any:
    return _Timings(**t.as_dict())


def _msg_to_timings(msg: Any) -> Timings:
    values = {k: float(getattr(msg, k)) for k in TIMING_FIELDS}
    if not all(math.isfinite(v) for v in values.values()):
        raise MessageError("timings not finite")
    return Timings(**values)


# ----------------------------------------------------------------------------------------------------
# encode / decode


def _serialize(msg: Any, typename: str) -> memoryview:
    out: memoryview = TYPESTORE.serialize_cdr(msg, typename)
    return out


def _deserialize(data: bytes | bytearray | memoryview, typename: str) -> Any:
    """CDR bytes -> rosbags message; every parse failure becomes MessageError."""
    try:
        # A memoryview keeps rosbags' slicing zero-copy: uint8[] fields become views of the payload.
        return TYPESTORE.deserialize_cdr(memoryview(data), typename)
    except MessageError:
        raise
    except Exception as exc:  # rosbags raises SerdeError, struct/Index/Unicode/Value errors ...
        raise MessageError(f"cannot decode {typename.rsplit('/', 1)[-1]}: {exc}") from exc


def _check_int(value: int, lo: int, hi: int, what: str) -> int:
    if not lo <= int(value) <= hi:
        raise MessageError(f"{what} {value} out of range [{lo}, {hi}]")
    return int(value)


def encode_task(task: Task, quantize: str = "float32") -> memoryview:
    """Task -> CDR bytes; ``quantize`` applies to forwarded key logits."""
    x, y, w, h = task.rect
    key = task.key
    msg = _RegionTask(
        header=_header(task.stamp, task.frame_id),
        cluster_id=task.cluster_id,
        slave_id=task.slave_id,
        run_id=task.run_id,
        sequence=task.sequence,
        attempt=task.attempt,
        region=task.region,
        num_regions=task.num_regions,
        roi=_Roi(x_offset=x, y_offset=y, height=h, width=w, do_rectify=False),
        image=image_to_msg(task.image),
        policy=task.policy,
        threshold=task.threshold,
        want_confidence=task.want_confidence,
        has_key=key is not None,
        key_sequence=key.sequence if key is not None else 0,
        key_image=image_to_msg(key.image if key is not None else None),
        key_logits=tensor_to_msg(key.logits if key is not None else None, quantize),
    )
    return _serialize(msg, REGION_TASK)


def decode_task(data: bytes | bytearray | memoryview) -> Task:
    """CDR bytes -> validated Task (MessageError when malformed)."""
    msg = _deserialize(data, REGION_TASK)
    num_regions = _check_int(msg.num_regions, 1, MAX_REGIONS, "num_regions")
    region = _check_int(msg.region, 0, num_regions - 1, "region")
    image = msg_to_image(msg.image, "rgb8")
    roi = msg.roi
    if (int(roi.width), int(roi.height)) != (image.shape[1], image.shape[0]):
        size = f"{image.shape[1]}x{image.shape[0]}"
        raise MessageError(f"roi {roi.width}x{roi.height} differs from image {size}")
    if not math.isfinite(msg.threshold):
        raise MessageError("threshold not finite")
    key = None
    if msg.has_key:
        key_image = msg_to_image(msg.key_image, "rgb8")
        if key_image.shape != image.shape:
            raise MessageError(f"key image {key_image.shape} differs from region {image.shape}")
        logits = msg_to_tensor(msg.key_logits)
        if logits.ndim != 3:
            raise MessageError(f"key logits must be (C, h, w), got {logits.shape}")
        key = KeyPayload(sequence=int(msg.key_sequence), image=key_image, logits=logits)
    return Task(
        cluster_id=msg.cluster_id,
        slave_id=msg.slave_id,
        sequence=int(msg.sequence),
        region=region,
        num_regions=num_regions,
        rect=(int(roi.x_offset), int(roi.y_offset), int(roi.width), int(roi.height)),
        image=image,
        threshold=float(msg.threshold),
        policy=msg.policy,
        want_confidence=bool(msg.want_confidence),
        run_id=msg.run_id,
        attempt=int(msg.attempt),
        stamp=_stamp(msg.header),
        frame_id=msg.header.frame_id,
        key=key,
    )


def encode_result(result: Result, quantize: str = "float32") -> memoryview:
    """Result -> CDR bytes; ``quantize`` applies to the seg-path logits and the confidence map."""
    msg = _RegionResult(
        header=_header(result.stamp, result.frame_id),
        cluster_id=result.cluster_id,
        slave_id=result.slave_id,
        run_id=result.run_id,
        sequence=result.sequence,
        attempt=result.attempt,
        region=result.region,
        path=result.path,
        score=result.score,
        key_sequence=result.key_sequence,
        labels=image_to_msg(result.labels),
        logits=tensor_to_msg(result.logits, quantize),
        confidence=tensor_to_msg(result.confidence, quantize),
        timings=_timings_to_msg(result.timings),
    )
    return _serialize(msg, REGION_RESULT)


def decode_result(data: bytes | bytearray | memoryview) -> Result:
    """CDR bytes -> validated Result (MessageError when malformed)."""
    msg = _deserialize(data, REGION_RESULT)
    if msg.path not in PATH_NAMES:
        raise MessageError(f"unknown path {msg.path}")
    labels = msg_to_image(msg.labels, "mono8")
    logits = None
    if msg.path == PATH_SEG:
        logits = msg_to_tensor(msg.logits)
        if logits.ndim != 3:
            raise MessageError(f"logits must be (C, h, w), got {logits.shape}")
    confidence = None
    if msg.confidence.dtype:
        confidence = msg_to_tensor(msg.confidence)
        if confidence.shape != labels.shape:
            raise MessageError(f"confidence {confidence.shape} differs from labels {labels.shape}")
    if not math.isfinite(msg.score):
        raise MessageError("score not finite")
    return Result(
        cluster_id=msg.cluster_id,
        slave_id=msg.slave_id,
        sequence=int(msg.sequence),
        region=int(msg.region),
        path=int(msg.path),
        score=float(msg.score),
        key_sequence=int(msg.key_sequence),
        labels=labels,
        logits=logits,
        confidence=confidence,
        run_id=msg.run_id,
        attempt=int(msg.attempt),
        stamp=_stamp(msg.header),
        frame_id=msg.header.frame_id,
        timings=_msg_to_timings(msg.timings),
    )


def encode_status(status: Status) -> memoryview:
    """Status -> CDR bytes."""
    msg = _SlaveStatus(
        header=_header(status.stamp or time.time(), ""),
        cluster_id=status.cluster_id,
        slave_id=status.slave_id,
        incarnation=status.incarnation,
        in_flight=status.in_flight,
        tasks_done=status.tasks_done,
        seg_count=status.seg_count,
        flow_count=status.flow_count,
        malformed=status.malformed,
        key_sequences=np.asarray(status.key_sequences, dtype=np.int64),
    )
    return _serialize(msg, SLAVE_STATUS)


def decode_status(data: bytes | bytearray | memoryview) -> Status:
    """CDR bytes -> validated Status (MessageError when malformed)."""
    msg = _deserialize(data, SLAVE_STATUS)
    if len(msg.key_sequences) > MAX_REGIONS:
        raise MessageError(f"{len(msg.key_sequences)} key sequences, more than {MAX_REGIONS} regions")
    return Status(
        cluster_id=msg.cluster_id,
        slave_id=msg.slave_id,
        incarnation=msg.incarnation,
        in_flight=int(msg.in_flight),
        tasks_done=int(msg.tasks_done),
        seg_count=int(msg.seg_count),
        flow_count=int(msg.flow_count),
        malformed=int(msg.malformed),
        key_sequences=tuple(int(k) for k in msg.key_sequences),
        stamp=_stamp(msg.header),
    )


def warmup() -> None:
    """Encode and decode one message of each type: rosbags builds its (de)serialisers on first use."""
    img = np.zeros((8, 8, 3), np.uint8)
    key = KeyPayload(0, img, np.zeros((19, 2, 2), np.float32))
    decode_task(encode_task(Task("w", "w", 1, 0, 1, (0, 0, 8, 8), img, 90.0, key=key)))
    labels = np.zeros((8, 8), np.uint8)
    decode_result(encode_result(Result("w", "w", 1, 0, PATH_SEG, 1.0, 1, labels, key.logits, labels * 0.0)))
    decode_status(encode_status(Status("w", "w", "w", key_sequences=(1,))))
