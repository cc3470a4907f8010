"""cv_bridge and the ROS-free conversion (dvs_cluster.io.imgmsg) give identical results."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dvs_cluster.io import imgmsg
from dvs_cluster.ros.common import ImageCodec

RNG = np.random.default_rng(3)


def _msg(encoding: str, h: int = 5, w: int = 7, pad: int = 0):  # type: ignore[no-untyped-def]
    from sensor_msgs.msg import Image

    ch = imgmsg.INPUT_ENCODINGS[encoding]
    rows = RNG.integers(0, 256, (h, w * ch + pad), dtype=np.uint8)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=w * ch + pad)
    msg.data.frombytes(rows.tobytes())
    return msg


@pytest.mark.parametrize("encoding", sorted(imgmsg.INPUT_ENCODINGS))
def test_to_rgb_matches_cv_bridge(encoding: str) -> None:
    from cv_bridge import CvBridge

    msg = _msg(encoding)
    want = CvBridge().imgmsg_to_cv2(msg, desired_encoding="rgb8")
    got = imgmsg.image_to_rgb(msg)
    assert got.shape == (5, 7, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)


def test_row_padding_is_cut() -> None:
    msg = _msg("rgb8", pad=3)
    np.testing.assert_array_equal(
        imgmsg.image_to_rgb(msg),
        np.frombuffer(bytes(msg.data), np.uint8).reshape(5, 24)[:, :21].reshape(5, 7, 3),
    )


@pytest.mark.parametrize("shape", [(6, 9), (6, 9, 3)])
def test_to_msg_matches_cv_bridge(shape: tuple[int, ...]) -> None:
    from std_msgs.msg import Header

    arr = RNG.integers(0, 256, shape, dtype=np.uint8)
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    a = ImageCodec(use_cv_bridge=True)
    b = ImageCodec(use_cv_bridge=False)
    assert a.name == "cv_bridge" and b.name == "dvs_cluster.io.imgmsg"
    ma, mb = a.to_msg(arr, header), b.to_msg(arr, header)
    for f in ("height", "width", "encoding", "is_bigendian", "step", "header"):
        assert getattr(ma, f) == getattr(mb, f), f
    assert bytes(ma.data) == bytes(mb.data)
    np.testing.assert_array_equal(a.to_rgb(mb) if arr.ndim == 3 else imgmsg.image_to_array(ma), arr)


def test_compressed() -> None:
    from sensor_msgs.msg import CompressedImage

    rgb = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    msg = CompressedImage(format="png")
    msg.data.frombytes(png.tobytes())
    np.testing.assert_array_equal(imgmsg.compressed_to_rgb(msg), rgb)


@pytest.mark.parametrize("encoding", ["16UC1", "8UC3", "8UC1", "yuv422"])
def test_unsupported_encoding_is_refused_by_both(encoding: str) -> None:
    msg = _msg("rgb8")
    msg.encoding = encoding
    with pytest.raises(imgmsg.ImageEncodingError, match=encoding):
        imgmsg.image_to_rgb(msg)
    with pytest.raises(ValueError, match=encoding):
        ImageCodec(use_cv_bridge=True).to_rgb(msg)


@pytest.mark.chaos
@pytest.mark.parametrize("use_cv_bridge", [True, False])
def test_bad_camera_images_raise_encoding_error(use_cv_bridge: bool) -> None:
    """Zero size, short data, a step too small, unsupported encodings: one error type, both converters."""
    from sensor_msgs.msg import Image

    codec = ImageCodec(use_cv_bridge)
    bad = [
        Image(height=0, width=0, encoding="rgb8", step=0),
        Image(height=4, width=4, encoding="rgb8", step=12),  # no data
        Image(height=4, width=4, encoding="rgb8", step=5),
        Image(height=2, width=2, encoding="32FC1", step=8),
        Image(height=2, width=2, encoding="8UC3", step=6),
    ]
    bad[3].data.frombytes(bytes(16))
    bad[4].data.frombytes(bytes(12))
    for msg in bad:
        with pytest.raises(imgmsg.ImageEncodingError):
            codec.to_rgb(msg)
    assert codec.to_rgb(_msg("bgr8", 6, 9)).shape == (6, 9, 3)  # and the next good one converts
