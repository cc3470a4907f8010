"""
Frame sources: the synthetic driving video (with ground truth), video files / cameras, image folders.

Every source yields :class:`Frame` objects at the *processing size* (default 1024x512, what the region
grid expects) together with the :class:`FrameTransform` that maps results back to the input size.

Resize policy ("letterbox", the default): scale the input by one factor so it fits inside the
processing size keeping its aspect ratio, centre it, and fill the bars by replicating the edge pixels
(no hard black border for the nets to segment). Labels are mapped back by cropping the bars and
resizing (nearest) to the input size, so saved outputs always have the input's size. ``stretch``
resizes to the processing size ignoring the aspect ratio. The synthetic source renders directly at
the processing size (identity transform).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from dvs_cluster.io.frame import (
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    Frame,
    ResizeMode,
    Source,
    SourceError,
    UInt8Array,
    _u8,
)
from dvs_cluster.io.frame import (
    RESIZE_MODES as RESIZE_MODES,  # re-exported: the frame types lived here
)
from dvs_cluster.io.frame import (
    FrameTransform as FrameTransform,
)

#: Frames of the synthetic source when no --frames is given (it is endless).
DEFAULT_SYNTHETIC_FRAMES = 100
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm", ".jp2"}
)


class SyntheticSource(Source):
    """The procedural driving video (``dvs_cluster.data.synthetic``) rendered at the processing size."""

    has_labels = True

    def __init__(
        self,
        seed: int = 0,
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
        frames: int | None = DEFAULT_SYNTHETIC_FRAMES,
        fps: float | None = None,
    ) -> None:
        super().__init__(width, height, "stretch")
        try:
            from dvs_cluster.data.synthetic import DEFAULT_FPS, SyntheticVideo
        except ModuleNotFoundError as e:  # pragma: no cover - the generator ships with the package
            raise SourceError(f"synthetic source unavailable: {e}") from e
        self.seed = seed
        self.name = f"synthetic:{seed}" + (f"@{fps:g}" if fps is not None else "")
        # The camera's frame rate sets the motion between frames: a 30 fps camera moves 17/30 as far.
        self.fps = float(fps if fps is not None else DEFAULT_FPS)
        self.video = SyntheticVideo(seed=seed, width=width, height=height, fps=self.fps)
        self.length = frames

    def __iter__(self) -> Iterator[Frame]:
        t = 0
        while self.length is None or t < self.length:
            f = self.video.frame(t)
            image = np.ascontiguousarray(f.image, dtype=np.uint8)
            labels = np.ascontiguousarray(f.labels, dtype=np.uint8)
            tf = self.transform_for(self.width, self.height)
            yield Frame(t, image, labels, t / self.fps, tf, image)
            t += 1


@contextlib.contextmanager
def _opencv_errors_only() -> Iterator[None]:
    """OpenCV's log level at ERROR for a while: a camera that is not there is our error to report."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:  # a build without the logging API
        yield
        return
    level = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        log.setLogLevel(level)


class VideoSource(Source):
    """Anything OpenCV's VideoCapture opens: a video file, or a camera index."""

    def __init__(
        self,
        target: str | int,
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
        resize: ResizeMode = "letterbox",
    ) -> None:
        super().__init__(width, height, resize)
        self.camera = isinstance(target, int)
        self.name = f"camera:{target}" if self.camera else str(target)
        with _opencv_errors_only():  # its WARN lines would come before our one-line error
            self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            self.cap.release()
            what = f"camera {target}" if self.camera else f"video {target}"
            raise SourceError(f"{what} cannot be opened (unreadable or unsupported format)")
        ok, first = self.cap.read()
        if not ok or first is None:
            self.cap.release()
            raise SourceError(f"{self.name}: no frame could be decoded (unreadable or unsupported video)")
        self._first: UInt8Array | None = _u8(first)
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else 30.0
        count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.length = count if (count > 0 and not self.camera) else None
        self.input_size = (first.shape[1], first.shape[0])

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            if self._first is not None:
                bgr, self._first = self._first, None
            else:
                ok, raw = self.cap.read()
                if not ok or raw is None:
                    return
                bgr = _u8(raw)
            stamp = time.time() if self.camera else index / self.fps
            yield self._frame(index, _u8(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), stamp)
            index += 1

    def close(self) -> None:
        self.cap.release()


def _read_image(path: Path) -> UInt8Array:
    data = np.fromfile(str(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise SourceError(f"{path} is not a readable image")
    return _u8(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


class ImageFolderSource(Source):
    """Images of a directory in name order (or one image file); every file must be an image."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int = DEFAULT_WIDTH,
        height: int = DEFAULT_HEIGHT,
        resize: ResizeMode = "letterbox",
    ) -> None:
        super().__init__(width, height, resize)
        p = Path(path)
        self.name = str(p)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if not f.name.startswith(".") and f.is_file())
            bad = [f.name for f in files if f.suffix.lower() not in IMAGE_EXTENSIONS]
            if bad:
                more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
                raise SourceError(f"image directory {p} contains a non-image file: {bad[0]}{more}")
            if not files:
                raise SourceError(f"image directory {p} contains no images")
        else:
            files = [p]
        self.files = files
        self.length = len(files)

    def __iter__(self) -> Iterator[Frame]:
        for i, f in enumerate(self.files):
            yield self._frame(i, _read_image(f), i / self.fps)


def is_synthetic(spec: str | None) -> bool:
    """Whether a ``--source`` spec is the procedural video (the default when none is given)."""
    s = (spec or "synthetic").strip()
    return s == "synthetic" or s.startswith(("synthetic:", "synthetic@"))


def open_source(
    spec: str | None,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    resize: ResizeMode = "letterbox",
    frames: int | None = None,
    topic: str | None = None,
) -> Source:
    """
    Source from a CLI spec.

    ``synthetic`` (default: the embedded sample, seed ``DEFAULT_SEED``) / ``synthetic:SEED`` /
    ``synthetic:SEED@FPS`` (the camera's frame rate, default 17 as Cityscapes; ``frames`` or 100
    frames), ``camera:N``, an image
    directory or image file, a rosbag2 bag directory (``topic``: its image topic), or any video file
    OpenCV decodes.
    """
    s = (spec or "synthetic").strip()
    if is_synthetic(s):
        from dvs_cluster.data.synthetic import DEFAULT_SEED

        body, at, fps_txt = s.partition(":")[2].partition("@")
        if s.startswith("synthetic@"):
            body, at, fps_txt = "", "@", s.partition("@")[2]
        seed_txt = body or str(DEFAULT_SEED)
        try:
            seed = int(seed_txt)
        except ValueError:
            raise SourceError(f"bad synthetic seed {seed_txt!r} (use synthetic[:SEED][@FPS])") from None
        fps: float | None = None
        if at:
            try:
                fps = float(fps_txt)
            except ValueError:
                fps = -1.0
            if not 1.0 <= fps <= 240.0:
                raise SourceError(f"bad synthetic frame rate {fps_txt!r} (use synthetic[:SEED]@FPS, 1..240)")
        return SyntheticSource(
            seed, width, height, frames if frames is not None else DEFAULT_SYNTHETIC_FRAMES, fps
        )
    if s.startswith("camera:"):
        try:
            cam = int(s.partition(":")[2])
        except ValueError:
            raise SourceError(f"bad camera index in {s!r} (use camera:N)") from None
        return VideoSource(cam, width, height, resize)
    p = Path(s)
    if not p.exists():
        raise SourceError(f"source {s}: no such file or directory")
    if (p / "metadata.yaml").is_file():  # rosbag2 (sqlite3 or MCAP): dvs_cluster.io.bag
        from dvs_cluster.io.bag import BagSource

        return BagSource(p, topic, width, height, resize)
    if topic is not None:
        raise SourceError(f"--topic {topic}: {s} is not a rosbag2 bag (a directory with metadata.yaml)")
    if p.is_dir() or p.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageFolderSource(p, width, height, resize)
    return VideoSource(str(p), width, height, resize)
