"""
Little-endian CDR (XCDR1, what ROS 2 puts on the wire) for the two hot messages, without per-field objects.

rosbags (the reference, used for everything else) builds a Python object per nested message and copies
numpy arrays twice on the way out; at four tasks and four results per frame that is most of the master's
own time per frame. :class:`CdrWriter` collects the small fields, leaves room for the big arrays and
copies each array exactly once into the final buffer, straight from a strided view (a region crop of
the frame) and casting on the way (float32 logits into a float16 field). :class:`CdrReader` walks a
payload with bounds checks and hands arrays out as read-only views of it.

The field order is written out in :mod:`messages` beside the rosbags types built from ``msg/*.msg``;
``test/test_messages.py`` checks byte equality with rosbags (and ``test/ros/test_cdr.py`` with rclpy),
so the ``.msg`` files stay the definition.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt

HEADER_LE = b"\x00\x01\x00\x00"  # encapsulation: CDR little endian, no options

U32 = struct.Struct("<I")
I32 = struct.Struct("<i")
U64 = struct.Struct("<Q")
F32 = struct.Struct("<f")


class CdrError(ValueError):
    """Bytes that are not a well-formed little-endian CDR message of the expected layout."""


class CdrWriter:
    """
    Encoder: ``u32``/``string``/``array`` ... in field order, then :meth:`finish` for the payload.

    Alignment is relative to the end of the 4-byte encapsulation header, as in CDR; padding bytes are 0.
    """

    __slots__ = ("_pos", "_small", "_small_at", "_parts")

    def __init__(self) -> None:
        """Start an empty message."""
        self._pos = 0  # offset of the next field, after the encapsulation header
        self._small = bytearray()  # small fields since the last array
        self._small_at = 0  # offset of _small[0]
        self._parts: list[tuple[int, Any]] = []  # (offset, bytes) or (offset, (array, dtype))

    def _align(self, n: int) -> None:
        pad = -self._pos % n
        if pad:
            self._small += bytes(pad)
            self._pos += pad

    def u8(self, value: int) -> None:
        """uint8, bool, byte (ValueError outside 0..255)."""
        self._small.append(value)
        self._pos += 1

    def _put(self, st: struct.Struct, value: float) -> int:
        """One number aligned to its size; returns its offset in the payload."""
        self._align(st.size)
        at = self._pos
        self._small += st.pack(value)
        self._pos += st.size
        return len(HEADER_LE) + at

    def u32(self, value: int) -> int:
        """uint32; returns its offset in the payload."""
        return self._put(U32, value)

    def i32(self, value: int) -> int:
        """int32."""
        return self._put(I32, value)

    def u64(self, value: int) -> int:
        """uint64; returns its offset in the payload."""
        return self._put(U64, value)

    def f32(self, value: float) -> int:
        """float32."""
        return self._put(F32, value)

    def f64s(self, values: tuple[float, ...]) -> None:
        """Consecutive float64 fields (e.g. a struct of them)."""
        self._align(8)
        self._small += struct.pack(f"<{len(values)}d", *values)
        self._pos += 8 * len(values)

    def string(self, value: str) -> None:
        """A string: uint32 length including the NUL, the UTF-8 bytes, NUL."""
        data = value.encode()
        self.u32(len(data) + 1)
        self._small += data
        self._small.append(0)
        self._pos += len(data) + 1

    def u32_seq(self, values: npt.NDArray[Any]) -> None:
        """uint32[] (small: written inline)."""
        self.u32(values.size)
        self._small += np.ascontiguousarray(values, dtype="<u4").tobytes()
        self._pos += 4 * values.size

    def array(self, values: npt.NDArray[Any] | None, dtype: str = "u1") -> None:
        """
        A sequence (``uint8[]`` data field): count of bytes, then ``values`` as ``dtype`` bytes.

        ``values`` may be any shape and stride; it is cast to ``dtype`` and copied at :meth:`finish`
        (once, into the payload). None writes an empty sequence.
        """
        if values is None or values.size == 0:
            self.u32(0)
            return
        dt = np.dtype(dtype).newbyteorder("<")
        nbytes = values.size * dt.itemsize
        self.u32(nbytes)
        self._parts.append((self._small_at, bytes(self._small)))
        self._parts.append((self._pos, (values, dt)))
        self._pos += nbytes
        self._small = bytearray()
        self._small_at = self._pos

    def template(self) -> tuple[bytes, int, bytes]:
        """
        (bytes before the data of the only array, its offset, bytes after it) of a one-array message.

        Lets a sender that repeats a layout (same strings and shapes, other numbers and pixels) fill
        a copy of the small parts and copy the array in, instead of writing every field again.
        """
        arrays = [(at, part) for at, part in self._parts if not isinstance(part, bytes)]
        if len(arrays) != 1:
            raise ValueError(f"a template needs exactly one array, the message has {len(arrays)}")
        before = b"".join(part for at, part in self._parts if isinstance(part, bytes))
        return HEADER_LE + before, len(HEADER_LE) + arrays[0][0], bytes(self._small)

    def finish(self) -> bytearray:
        """The payload: encapsulation header + fields (one allocation, each array copied once)."""
        self._parts.append((self._small_at, bytes(self._small)))
        out = bytearray(len(HEADER_LE) + self._pos)
        out[: len(HEADER_LE)] = HEADER_LE
        base = len(HEADER_LE)
        for at, part in self._parts:
            if isinstance(part, bytes):
                out[base + at : base + at + len(part)] = part
            else:
                values, dt = part
                target = np.frombuffer(out, dtype=dt, count=values.size, offset=base + at)
                np.copyto(target.reshape(values.shape), values, casting="unsafe")
        return out


class CdrReader:
    """Decoder over one payload: read fields in order; every overrun or bad value raises :class:`CdrError`."""

    __slots__ = ("_buf", "_pos", "_end")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        """Check the encapsulation header (little-endian CDR only)."""
        buf = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        if len(buf) < 4:
            raise CdrError(f"{len(buf)} bytes: too short for a CDR message")
        head = bytes(buf[:2])
        if head != HEADER_LE[:2]:
            raise CdrError(f"encapsulation {head.hex()} is not little-endian CDR (0001)")
        self._buf = buf
        self._pos = 4
        self._end = len(buf)

    def _take(self, size: int, align: int) -> int:
        pos = self._pos + (-(self._pos - 4) % align)
        end = pos + size
        if end > self._end:
            raise CdrError(f"truncated: field at byte {pos} needs {size} bytes, {self._end - pos} left")
        self._pos = end
        return pos

    def u8(self) -> int:
        """uint8 / bool."""
        pos = self._take(1, 1)
        return int(self._buf[pos])

    def _get(self, st: struct.Struct) -> Any:
        value = st.unpack_from(self._buf, self._take(st.size, st.size))[0]
        return value

    def u32(self) -> int:
        """uint32."""
        value: int = self._get(U32)
        return value

    def i32(self) -> int:
        """int32."""
        value: int = self._get(I32)
        return value

    def u64(self) -> int:
        """uint64."""
        value: int = self._get(U64)
        return value

    def f32(self) -> float:
        """float32."""
        value: float = self._get(F32)
        return value

    def f64s(self, count: int) -> tuple[float, ...]:
        """``count`` consecutive float64 fields."""
        return struct.unpack_from(f"<{count}d", self._buf, self._take(8 * count, 8))

    def string(self) -> str:
        """A string (its length includes the terminating NUL)."""
        n = self.u32()
        if n == 0:
            return ""
        pos = self._take(n, 1)
        raw = bytes(self._buf[pos : pos + n])
        if raw[-1] != 0:
            raise CdrError(f"string at byte {pos} not NUL-terminated")
        try:
            return raw[:-1].decode()
        except UnicodeDecodeError as exc:
            raise CdrError(f"string at byte {pos} is not UTF-8: {exc}") from None

    def seq(self, dtype: str, max_count: int) -> npt.NDArray[Any]:
        """A sequence of fixed-size numbers as a read-only numpy view of the payload."""
        dt = np.dtype(dtype).newbyteorder("<")
        count = self.u32()
        if count > max_count:
            raise CdrError(f"sequence of {count} elements, more than {max_count}")
        pos = self._take(count * dt.itemsize, dt.itemsize if count else 1)
        arr = np.frombuffer(self._buf, dtype=dt, count=count, offset=pos)
        arr.flags.writeable = False
        return arr

    def done(self) -> None:
        """Refuse trailing bytes beyond CDR's final padding (a different or corrupted message)."""
        if self._end - self._pos > 3:
            raise CdrError(f"{self._end - self._pos} bytes after the last field")
