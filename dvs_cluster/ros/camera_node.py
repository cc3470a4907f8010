"""
``camera`` node: publishes the synthetic driving video, a video file or an image folder as a camera.

So ``ros2 launch dvs_cluster cluster.launch.py`` shows something with no camera attached, and tests have
a deterministic input. Publishes ``image`` (``sensor_msgs/Image``, ``encoding`` rgb8 or bgr8 like most
camera drivers) at ``rate`` Hz with the node clock's stamp and ``frame_id``, reliable keep-last 10 as
REP 2003 asks of sensor drivers. With ``wait_for_subscribers`` it starts only when that many
subscribers are matched, so a test sees every frame; after ``frames`` images (0: endless) it stays up
idle, so a launch is not torn down.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import cv2
import numpy as np
from rclpy.node import Node

from dvs_cluster.io.sources import SourceError, open_source
from dvs_cluster.ros.common import ImageCodec, output_qos, run_node
from dvs_cluster.ros.params import ParameterError, Spec, declare

CAMERA_SPECS = [
    Spec("source", "synthetic", "synthetic[:SEED], a video file or an image folder"),
    Spec("width", 1024, "published width (video/image sources are letterboxed to it)", lo=16, hi=8192),
    Spec("height", 512, "published height", lo=16, hi=8192),
    Spec("rate", 10.0, "frames per second", lo=0.1, hi=240.0),
    Spec(
        "frames", 0, "frames to publish, 0 = endless (video files: until the end unless loop)", lo=0, hi=10**9
    ),
    Spec("loop", True, "start a finite source again at its end (while frames allows)"),
    Spec("frame_id", "camera", "header.frame_id of every image"),
    Spec("encoding", "rgb8", "published encoding", choices=("rgb8", "bgr8")),
    Spec("wait_for_subscribers", 0, "start publishing once this many subscribers are matched", lo=0, hi=64),
    Spec("use_cv_bridge", True, "convert images with cv_bridge (else the identical pure numpy code)"),
]


class CameraRos(Node):
    """A stand-in camera driver."""

    def __init__(self, node_name: str = "camera", **kwargs: Any) -> None:
        """Declare parameters, open the source (errors name ``source``), start the timer."""
        super().__init__(node_name, **kwargs)
        p = self.p = declare(self, CAMERA_SPECS)
        try:
            self._source = open_source(p["source"], p["width"], p["height"], "letterbox", None)
        except SourceError as exc:
            raise ParameterError(f"parameter 'source': {exc}") from None
        if p["source"].startswith("synthetic"):
            self._source.length = None  # endless; `frames` bounds it
        self.codec = ImageCodec(p["use_cv_bridge"])
        from sensor_msgs.msg import Image

        self.pub = self.create_publisher(Image, "image", output_qos())
        self.sent = 0
        self._frames: Iterator[Any] = iter(self._source)
        self._started = p["wait_for_subscribers"] == 0
        self._timer = self.create_timer(1.0 / p["rate"], self._tick)

    def _next_image(self) -> np.ndarray | None:
        for _ in range(2):  # at most one restart per tick
            try:
                return np.asarray(next(self._frames).image, dtype=np.uint8)
            except StopIteration:
                if not self.p["loop"]:
                    return None
                self._frames = iter(self._source)
        return None

    def _tick(self) -> None:
        if not self._started:
            if self.pub.get_subscription_count() < self.p["wait_for_subscribers"]:
                return
            self._started = True
            self.get_logger().info(f"{self.pub.get_subscription_count()} subscriber(s): publishing")
        if self.p["frames"] and self.sent >= self.p["frames"]:
            self._done()
            return
        rgb = self._next_image()
        if rgb is None:
            self._done()
            return
        from std_msgs.msg import Header

        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.p["frame_id"])
        msg = self.codec.to_msg(rgb, header)
        if self.p["encoding"] == "bgr8":
            msg = self.codec.to_msg(np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)), header)
            msg.encoding = "bgr8"
        self.pub.publish(msg)
        self.sent += 1

    def _done(self) -> None:
        self.get_logger().info(f"published {self.sent} frame(s); idle")
        self._timer.cancel()

    def close(self) -> None:
        """Release the source."""
        self._source.close()


def main(args: Sequence[str] | None = None) -> int:
    """``ros2 run dvs_cluster camera``."""
    return run_node(CameraRos, args, threads=1)


if __name__ == "__main__":
    raise SystemExit(main())
