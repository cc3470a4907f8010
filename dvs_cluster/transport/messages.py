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

The two messages of the hot path (a task and a result per region) are written and read by
:mod:`.cdr` field by field in ``.msg`` order (``task_to_msg``/``result_to_msg`` build the same message
as rosbags objects: the reference the tests compare bytes with); the heartbeat goes through rosbags.
"""

from __future__ import annotations

import math
import os
import site
import struct
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

from .cdr import U32, U64, CdrError, CdrReader, CdrWriter

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
_EMPTY_U32 = np.zeros(0, dtype=np.uint32)
_TIME = struct.Struct("<iI")  # builtin_interfaces/Time: sec, nanosec


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


def _sec_nanosec(stamp: float) -> tuple[int, int]:
    sec = math.floor(stamp)
    return int(sec), min(int(round((stamp - sec) * 1e9)), 999_999_999)


def _stamp_to_time(stamp: float) -> Any:
    sec, nanosec = _sec_nanosec(stamp)
    return _Time(sec=sec, nanosec=nanosec)


def _header(stamp: float, frame_id: str) -> Any:
    return _Header(stamp=_stamp_to_time(stamp), frame_id=frame_id)


def _stamp(header: Any) -> float:
    return float(header.stamp.sec) + float(header.stamp.nanosec) * 1e-9


def _bytes_view(arr: npt.NDArray[Any]) -> UInt8Array:
    """Flat uint8 view of an array (no copy when it is already C-contiguous)."""
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint8)


def _image_encoding(image: UInt8Array) -> str:
    """rgb8 / mono8 for an (h, w, 3) / (h, w) uint8 array; ValueError otherwise."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"image must be uint8 (h, w) or (h, w, 3), got {image.dtype} {image.shape}")
    return "mono8" if image.ndim == 2 else "rgb8"


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
    encoding = _image_encoding(image)
    h, w = image.shape[:2]
    return _Image(
        header=_header(stamp, frame_id),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=w * IMAGE_CHANNELS[encoding],
        data=_bytes_view(image),
    )


def _image_from(encoding: str, height: int, width: int, step: int, data: UInt8Array, want: str) -> UInt8Array:
    """The fields of a ``sensor_msgs/Image`` -> numpy view; checks encoding and sizes."""
    if encoding != want:
        raise MessageError(f"image encoding {encoding!r}, expected {want!r}")
    channels = IMAGE_CHANNELS[want]
    h, w = int(height), int(width)
    if not (0 < h <= MAX_SIDE and 0 < w <= MAX_SIDE):
        raise MessageError(f"image size {w}x{h} out of range")
    if step != w * channels or len(data) != h * w * channels:
        raise MessageError(f"image step {step} / {len(data)} bytes do not match {w}x{h}x{channels}")
    data = np.asarray(data, dtype=np.uint8)
    return data.reshape((h, w, channels) if channels == 3 else (h, w))


def msg_to_image(msg: Any, encoding: str) -> UInt8Array:
    """``sensor_msgs/Image`` -> numpy view; checks encoding and sizes (MessageError otherwise)."""
    return _image_from(msg.encoding, msg.height, msg.width, msg.step, msg.data, encoding)


def _quantized(arr: npt.NDArray[Any], quantize: str) -> tuple[npt.NDArray[Any], str, float, float]:
    """(values to store, their little-endian dtype, scale, offset) of a tensor in wire form ``quantize``."""
    if quantize == "float32":
        return arr, "<f4", 1.0, 0.0
    if quantize == "float16":
        return arr, "<f2", 1.0, 0.0  # cast while copying into the payload
    if quantize == "uint8":
        lo, hi = float(np.min(arr)), float(np.max(arr))
        scale = (hi - lo) / 255.0 if hi > lo else 1.0
        stored = np.clip(np.rint((np.asarray(arr, dtype=np.float32) - lo) / scale), 0, 255).astype(np.uint8)
        return stored, "u1", scale, lo
    raise ValueError(f"unknown quantisation {quantize!r} (float32, float16, uint8)")


def tensor_to_msg(arr: npt.NDArray[Any] | None, quantize: str = "float32") -> Any:
    """Array -> ``Tensor``; ``quantize``: float32 (as is), float16 (half the bytes) or uint8 (affine)."""
    if arr is None:
        return _Tensor(dtype="", shape=np.zeros(0, dtype=np.uint32), scale=1.0, offset=0.0, data=_EMPTY_U8)
    stored, dtype, scale, offset = _quantized(arr, quantize)
    return _Tensor(
        dtype=quantize,
        shape=np.asarray(arr.shape, dtype=np.uint32),
        scale=scale,
        offset=offset,
        data=_bytes_view(np.ascontiguousarray(stored, dtype=dtype)),
    )


def _tensor_from(
    dtype_name: str, shape_field: Any, scale: float, offset: float, data: UInt8Array, check: bool = True
) -> FloatArray:
    """
    The fields of a ``Tensor`` -> float32 array (a read-only view for float32, a converted copy otherwise).

    ``check=False`` skips the NaN/inf scan of the values (the caller scans them before they are used).
    """
    if dtype_name not in TENSOR_DTYPES:
        raise MessageError(f"tensor dtype {dtype_name!r} not one of {TENSOR_DTYPES}")
    shape = tuple(int(s) for s in shape_field)
    if not 1 <= len(shape) <= MAX_TENSOR_DIMS or any(s <= 0 or s > MAX_SIDE for s in shape):
        raise MessageError(f"tensor shape {shape} out of range")
    dtype = np.dtype(dtype_name).newbyteorder("<")
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise MessageError(f"tensor of shape {shape} {dtype_name} cannot hold {len(data)} bytes")
    if not (math.isfinite(scale) and math.isfinite(offset)):
        raise MessageError("tensor scale/offset not finite")
    stored = np.asarray(data, dtype=np.uint8).view(dtype).reshape(shape)
    out: FloatArray
    if dtype_name == "float32" and scale == 1.0 and offset == 0.0:
        out = stored
    elif dtype_name == "float32":
        out = (stored * np.float32(scale) + np.float32(offset)).astype(np.float32)
    else:
        out = (stored.astype(np.float32) * np.float32(scale) + np.float32(offset)).astype(np.float32)
    # NaN/inf logits would spread through keys and every warp from them. uint8 values are finite by
    # construction (scale and offset were checked).
    if check and dtype_name != "uint8" and not values_finite(out):
        raise MessageError("tensor values not finite")
    return out


def values_finite(arr: npt.NDArray[Any]) -> bool:
    """
    Whether every value is finite.

    A sum is NaN/inf when any value is and reads the array once without a temporary; only when it is
    (or when finite values overflowed) look closer.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf and overflow are the point here
        total = float(np.sum(arr, dtype=np.float32))
    return math.isfinite(total) or bool(np.isfinite(arr).all())


def msg_to_tensor(msg: Any) -> FloatArray:
    """``Tensor`` -> float32 array (a read-only view for float32, a converted copy otherwise)."""
    return _tensor_from(msg.dtype, msg.shape, msg.scale, msg.offset, msg.data)


def _timings_to_msg(t: Timings) -> Any:
    return _Timings(**t.as_dict())


def _timings_from(values: tuple[float, ...]) -> Timings:
    if not all(math.isfinite(v) for v in values):
        raise MessageError("timings not finite")
    return Timings(*values)


# ----------------------------------------------------------------------------------------------------
# Fast CDR for the hot messages: fields in the order of msg/*.msg (nested types inline)


def _w_header(w: CdrWriter, stamp: float, frame_id: str) -> None:
    sec, nanosec = _sec_nanosec(stamp)
    w.i32(sec)
    w.u32(nanosec)
    w.string(frame_id)


def _w_image(w: CdrWriter, image: UInt8Array | None) -> None:
    _w_header(w, 0.0, "")
    if image is None:
        for _ in range(2):  # height, width
            w.u32(0)
        w.string("")  # encoding
        w.u8(0)  # is_bigendian
        w.u32(0)  # step
        w.array(None)
        return
    encoding = _image_encoding(image)
    h, width = image.shape[:2]
    w.u32(h)
    w.u32(width)
    w.string(encoding)
    w.u8(0)  # is_bigendian
    w.u32(width * IMAGE_CHANNELS[encoding])
    w.array(image)


def _w_tensor(w: CdrWriter, arr: npt.NDArray[Any] | None, quantize: str) -> None:
    if arr is None:
        w.string("")  # dtype
        w.u32_seq(_EMPTY_U32)  # shape
        w.f32(1.0)  # scale
        w.f32(0.0)  # offset
        w.array(None)
        return
    stored, dtype, scale, offset = _quantized(arr, quantize)
    w.string(quantize)
    w.u32_seq(np.asarray(arr.shape, dtype=np.uint32))
    w.f32(scale)
    w.f32(offset)
    w.array(stored, dtype)


def _r_header(r: CdrReader) -> tuple[float, str]:
    sec, nanosec = r.i32(), r.u32()
    return float(sec) + float(nanosec) * 1e-9, r.string()


def _r_image(r: CdrReader) -> tuple[str, int, int, int, UInt8Array]:
    """(encoding, height, width, step, data) of a ``sensor_msgs/Image``."""
    _r_header(r)
    height, width, encoding = r.u32(), r.u32(), r.string()
    r.u8()  # is_bigendian: irrelevant for 8-bit encodings
    step = r.u32()
    return encoding, height, width, step, r.seq("u1", 1 << 31)


def _r_tensor(r: CdrReader) -> tuple[str, Any, float, float, UInt8Array]:
    """(dtype, shape, scale, offset, data) of a ``Tensor``."""
    dtype = r.string()
    shape = r.seq("u4", MAX_TENSOR_DIMS)
    scale, offset = r.f32(), r.f32()
    return dtype, shape, scale, offset, r.seq("u1", 1 << 31)


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


def _reader(data: bytes | bytearray | memoryview, what: str) -> CdrReader:
    try:
        return CdrReader(data)
    except CdrError as exc:
        raise MessageError(f"cannot decode {what}: {exc}") from None


def _check_int(value: int, lo: int, hi: int, what: str) -> int:
    if not lo <= int(value) <= hi:
        raise MessageError(f"{what} {value} out of range [{lo}, {hi}]")
    return int(value)


def task_to_msg(task: Task, quantize: str = "float32") -> Any:
    """Task -> rosbags ``RegionTask`` (the reference :func:`encode_task` is checked against)."""
    x, y, w, h = task.rect
    key = task.key
    return _RegionTask(
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


@dataclass(frozen=True)
class _TaskTemplate:
    """A task without key as bytes around the image, and where the numbers that change per task go."""

    head: bytes
    image_at: int
    tail: bytes
    sequence_at: int
    attempt_at: int

    def fill(self, task: Task) -> bytearray:
        image = task.image
        image_end = self.image_at + image.size
        out = bytearray(image_end + len(self.tail))
        out[: len(self.head)] = self.head
        _TIME.pack_into(out, 4, *_sec_nanosec(task.stamp))  # header.stamp: the first field
        U64.pack_into(out, self.sequence_at, task.sequence)
        U32.pack_into(out, self.attempt_at, task.attempt)
        pixels = np.frombuffer(out, np.uint8, count=image.size, offset=self.image_at)
        np.copyto(pixels.reshape(image.shape), image)
        out[image_end:] = self.tail
        return out


_TASK_TEMPLATES: dict[tuple[Any, ...], _TaskTemplate] = {}


def encode_task(task: Task, quantize: str = "float32") -> bytearray:
    """
    Task -> CDR bytes; ``quantize`` applies to forwarded key logits.

    The image may be a strided view (a crop of the frame): it is copied once, into the payload. A
    task without key reuses the bytes of an earlier one of the same layout (same slave, region,
    strings and size; a master sends a few dozen layouts), so only stamp, sequence, attempt and
    pixels are written.
    """
    if task.key is not None:
        return _encode_task(task, quantize)
    layout = (
        task.frame_id, task.cluster_id, task.slave_id, task.run_id, task.region, task.num_regions, task.rect,
        task.image.shape, task.image.dtype, task.policy, task.threshold, task.want_confidence,
    )  # fmt: skip
    template = _TASK_TEMPLATES.get(layout)
    if template is None:
        if len(_TASK_TEMPLATES) >= 1024:  # masters come and go in one process (tests): stay bounded
            _TASK_TEMPLATES.clear()
        marks: dict[str, int] = {}
        w = _task_writer(task, quantize, marks)
        head, image_at, tail = w.template()
        template = _TASK_TEMPLATES[layout] = _TaskTemplate(head, image_at, tail, **marks)
    return template.fill(task)


def _encode_task(task: Task, quantize: str) -> bytearray:
    return _task_writer(task, quantize).finish()


def _task_writer(task: Task, quantize: str, marks: dict[str, int] | None = None) -> CdrWriter:
    """The fields of a task in a writer; ``marks`` receives the offsets of sequence and attempt."""
    x, y, width, h = task.rect
    key = task.key
    w = CdrWriter()
    _w_header(w, task.stamp, task.frame_id)
    w.string(task.cluster_id)
    w.string(task.slave_id)
    w.string(task.run_id)
    sequence_at = w.u64(task.sequence)
    attempt_at = w.u32(task.attempt)
    if marks is not None:
        marks.update(sequence_at=sequence_at, attempt_at=attempt_at)
    w.u8(task.region)
    w.u8(task.num_regions)
    for v in (x, y, h, width):  # roi: x_offset, y_offset, height, width
        w.u32(v)
    w.u8(0)  # roi.do_rectify
    _w_image(w, task.image)
    w.string(task.policy)
    w.f32(task.threshold)
    w.u8(task.want_confidence)
    w.u8(key is not None)
    w.u64(key.sequence if key is not None else 0)
    _w_image(w, key.image if key is not None else None)
    _w_tensor(w, key.logits if key is not None else None, quantize)
    return w


def decode_task(data: bytes | bytearray | memoryview) -> Task:
    """CDR bytes -> validated Task (MessageError when malformed)."""
    r = _reader(data, "RegionTask")
    try:
        stamp, frame_id = _r_header(r)
        cluster_id, slave_id, run_id = r.string(), r.string(), r.string()
        sequence, attempt, region_raw, num_regions_raw = r.u64(), r.u32(), r.u8(), r.u8()
        x, y, rh, rw = r.u32(), r.u32(), r.u32(), r.u32()
        r.u8()  # do_rectify
        image_f = _r_image(r)
        policy, threshold = r.string(), r.f32()
        want_confidence, has_key, key_sequence = r.u8(), r.u8(), r.u64()
        key_image_f = _r_image(r)
        key_logits_f = _r_tensor(r)
        r.done()
    except CdrError as exc:
        raise MessageError(f"cannot decode RegionTask: {exc}") from None
    num_regions = _check_int(num_regions_raw, 1, MAX_REGIONS, "num_regions")
    region = _check_int(region_raw, 0, num_regions - 1, "region")
    image = _image_from(*image_f, want="rgb8")
    if (rw, rh) != (image.shape[1], image.shape[0]):
        raise MessageError(f"roi {rw}x{rh} differs from image {image.shape[1]}x{image.shape[0]}")
    if not math.isfinite(threshold):
        raise MessageError("threshold not finite")
    key = None
    if has_key:
        key_image = _image_from(*key_image_f, want="rgb8")
        if key_image.shape != image.shape:
            raise MessageError(f"key image {key_image.shape} differs from region {image.shape}")
        logits = _tensor_from(*key_logits_f)
        if logits.ndim != 3:
            raise MessageError(f"key logits must be (C, h, w), got {logits.shape}")
        key = KeyPayload(sequence=key_sequence, image=key_image, logits=logits)
    return Task(
        cluster_id=cluster_id,
        slave_id=slave_id,
        sequence=sequence,
        region=region,
        num_regions=num_regions,
        rect=(x, y, rw, rh),
        image=image,
        threshold=threshold,
        policy=policy,
        want_confidence=bool(want_confidence),
        run_id=run_id,
        attempt=attempt,
        stamp=stamp,
        frame_id=frame_id,
        key=key,
    )


def result_to_msg(result: Result, quantize: str = "float32") -> Any:
    """Result -> rosbags ``RegionResult`` (the reference :func:`encode_result` is checked against)."""
    return _RegionResult(
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


def encode_result(result: Result, quantize: str = "float32") -> bytearray:
    """Result -> CDR bytes; ``quantize`` applies to the seg-path logits and the confidence map."""
    w = CdrWriter()
    _w_header(w, result.stamp, result.frame_id)
    w.string(result.cluster_id)
    w.string(result.slave_id)
    w.string(result.run_id)
    w.u64(result.sequence)
    w.u32(result.attempt)
    w.u8(result.region)
    w.u8(result.path)
    w.f32(result.score)
    w.u64(result.key_sequence)
    _w_image(w, result.labels)
    _w_tensor(w, result.logits, quantize)
    _w_tensor(w, result.confidence, quantize)
    w.f64s(tuple(result.timings.as_dict().values()))
    return w.finish()


def decode_result(data: bytes | bytearray | memoryview, check_logits: bool = True) -> Result:
    """
    CDR bytes -> validated Result (MessageError when malformed).

    ``check_logits=False`` leaves the NaN/inf scan of the seg-path logits to the caller: the master
    scans a key only when it forwards it (most keys never leave it), see ``messages.values_finite``.
    """
    r = _reader(data, "RegionResult")
    try:
        stamp, frame_id = _r_header(r)
        cluster_id, slave_id, run_id = r.string(), r.string(), r.string()
        sequence, attempt, region, path = r.u64(), r.u32(), r.u8(), r.u8()
        score, key_sequence = r.f32(), r.u64()
        labels_f = _r_image(r)
        logits_f = _r_tensor(r)
        confidence_f = _r_tensor(r)
        timings = r.f64s(len(TIMING_FIELDS))
        r.done()
    except CdrError as exc:
        raise MessageError(f"cannot decode RegionResult: {exc}") from None
    if path not in PATH_NAMES:
        raise MessageError(f"unknown path {path}")
    labels = _image_from(*labels_f, want="mono8")
    logits = None
    if path == PATH_SEG:
        logits = _tensor_from(*logits_f, check=check_logits)
        if logits.ndim != 3:
            raise MessageError(f"logits must be (C, h, w), got {logits.shape}")
    confidence = None
    if confidence_f[0]:
        confidence = _tensor_from(*confidence_f)
        if confidence.shape != labels.shape:
            raise MessageError(f"confidence {confidence.shape} differs from labels {labels.shape}")
    if not math.isfinite(score):
        raise MessageError("score not finite")
    return Result(
        cluster_id=cluster_id,
        slave_id=slave_id,
        sequence=sequence,
        region=region,
        path=path,
        score=score,
        key_sequence=key_sequence,
        labels=labels,
        logits=logits,
        confidence=confidence,
        run_id=run_id,
        attempt=attempt,
        stamp=stamp,
        frame_id=frame_id,
        timings=_timings_from(timings),
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
