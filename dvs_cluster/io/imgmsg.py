"""
``sensor_msgs/Image`` <-> numpy without ROS: the same results as ``cv_bridge``, for any message object.

Works on rclpy messages, rosbags messages (bag source and recorder) or anything with the Image fields,
so machines without ROS (the Zenoh path, bags) convert exactly as ``cv_bridge`` does on ROS machines;
``test/ros/test_convert.py`` checks both agree for every encoding here. Only 8-bit encodings: the
cluster runs on RGB and writes trainIds (``mono8``), and the nets take uint8 input.
"""

from __future__ import annotations

import sys
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

UInt8Array = npt.NDArray[np.uint8]

#: Encodings accepted as input -> channels (sensor_msgs/image_encodings names). Like cv_bridge, the
#: channel-order-less ``8UC1``/``8UC3`` are refused: they say nothing about colour.
INPUT_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
}


class ImageEncodingError(ValueError):
    """An Image message whose encoding or sizes cannot be converted."""


def image_to_array(msg: Any) -> UInt8Array:
    """Image message -> (h, w) or (h, w, c) uint8 view in the message's own encoding (row padding cut)."""
    enc = str(msg.encoding)
    channels = INPUT_ENCODINGS.get(enc)
    if channels is None:
        raise ImageEncodingError(
            f"image encoding {enc!r} not supported (use one of {', '.join(sorted(INPUT_ENCODINGS))})"
        )
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0 or step < w * channels:
        raise ImageEncodingError(f"image {w}x{h} with step {step} is not a valid {enc} image")
    buf = np.frombuffer(msg.data, dtype=np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data
    if buf.size < step * h:
        raise ImageEncodingError(f"image {w}x{h} {enc} needs {step * h} bytes, message has {buf.size}")
    rows = buf[: step * h].reshape(h, step)[:, : w * channels]
    return rows.reshape((h, w) if channels == 1 else (h, w, channels))


def image_to_rgb(msg: Any) -> UInt8Array:
    """Image message -> (h, w, 3) RGB, as ``cv_bridge.imgmsg_to_cv2(msg, 'rgb8')`` returns it."""
    arr = image_to_array(msg)
    code = _TO_RGB.get(str(msg.encoding))
    if code is None:
        return np.ascontiguousarray(arr)
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(arr), code), dtype=np.uint8)


def compressed_to_rgb(msg: Any) -> UInt8Array:
    """``sensor_msgs/CompressedImage`` (jpeg/png) -> (h, w, 3) RGB."""
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ImageEncodingError(f"compressed image ({msg.format!r}, {data.size} bytes) does not decode")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def image_fields(array: UInt8Array) -> dict[str, Any]:
    """
    The Image fields of an (h, w) mono8 or (h, w, 3) rgb8 array, as ``cv_bridge.cv2_to_imgmsg`` sets them.

    ``data`` is the packed row bytes; the caller wraps it for its message library.
    """
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ImageEncodingError(f"expected uint8 (h, w) or (h, w, 3), got {array.dtype} {array.shape}")
    h, w = array.shape[:2]
    channels = 1 if array.ndim == 2 else 3
    return {
        "height": h,
        "width": w,
        "encoding": "mono8" if channels == 1 else "rgb8",
        "is_bigendian": int(sys.byteorder == "big"),
        "step": w * channels,
        "data": np.ascontiguousarray(array).tobytes(),
    }
