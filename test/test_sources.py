import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_support import shipped_model_dir, write_video

from dvs_cluster.cli import main
from dvs_cluster.io.sources import FrameTransform, ImageFolderSource, SourceError, VideoSource, open_source


def test_letterbox_transform_maps_back() -> None:
    tf = FrameTransform(640, 360, 1024, 512)
    ox, oy, cw, ch = tf.content
    assert (cw, ch) == (910, 512) and (ox, oy) == (57, 0)
    img = np.zeros((360, 640, 3), np.uint8)
    img[:, :320] = 200
    out = tf.forward(img)
    assert out.shape == (512, 1024, 3)
    assert (out[:, 0] == 200).all() and (out[:, -1] == 0).all()  # bars replicate the edges
    labels = np.zeros((512, 1024), np.uint8)
    labels[:, 512:] = 7
    back = tf.labels_back(labels)
    assert back.shape == (360, 640)
    assert (back[:, :300] == 0).all() and (back[:, 340:] == 7).all()


def test_stretch_and_identity() -> None:
    tf = FrameTransform(640, 360, 1024, 512, "stretch")
    assert tf.content == (0, 0, 1024, 512)
    assert tf.labels_back(np.zeros((512, 1024), np.uint8)).shape == (360, 640)
    same = FrameTransform(1024, 512, 1024, 512)
    img = np.ones((512, 1024, 3), np.uint8)
    assert same.identity and same.forward(img) is img
    with pytest.raises(ValueError):
        FrameTransform(1, 1, 2, 2, "bogus")  # type: ignore[arg-type]


def test_video_source_reads_all_frames(tmp_path: Path) -> None:
    video = write_video(tmp_path / "v.mp4", frames=5)
    with open_source(str(video), 256, 128) as src:
        assert isinstance(src, VideoSource)
        frames = list(src)
    assert [f.index for f in frames] == list(range(5))
    assert frames[0].image.shape == (128, 256, 3) and frames[0].raw.shape == (180, 320, 3)
    assert frames[0].labels is None
    # RGB order: the box is drawn BGR (30, 200, 60) -> RGB (60, 200, 30)
    assert tuple(frames[0].raw[75, 60]) == pytest.approx((60, 200, 30), abs=12)


def test_image_folder(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), np.full((50, 80, 3), 40 * i, np.uint8))
    src = open_source(str(tmp_path), 128, 64)
    assert isinstance(src, ImageFolderSource) and src.length == 3
    frames = list(src)
    assert [int(f.raw[0, 0, 0]) for f in frames] == [0, 40, 80]
    one = list(open_source(str(tmp_path / "01.png"), 128, 64))
    assert len(one) == 1


def test_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        open_source(str(tmp_path / "missing.mp4"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="bad.mp4"):
        open_source(str(bad))
    d = tmp_path / "imgs"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (d / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match="non-image file: notes.txt"):
        open_source(str(d))
    (d / "notes.txt").unlink()
    (d / "broken.png").write_bytes(b"garbage")
    with pytest.raises(SourceError, match="broken.png is not a readable image"):
        list(open_source(str(d)))
    with pytest.raises(SourceError, match="synthetic"):
        open_source("synthetic:abc")
    with pytest.raises(SourceError, match="camera"):
        open_source("camera:x")


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: p / "missing.mp4", "no such file"),
        (lambda p: (p / "bad.mp4").write_bytes(b"\x00" * 2000) and p / "bad.mp4", "cannot be opened"),
        (lambda p: ((p / "d").mkdir(), (p / "d" / "x.csv").write_text("1"), p / "d")[2], "non-image"),
    ],
)
def test_segment_source_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make, needle
) -> None:  # type: ignore[no-untyped-def]
    shipped_model_dir()
    target = make(tmp_path)
    rc = main(["segment", "--source", str(target), "--width", "256", "--height", "128", "-q"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err and err.startswith("dvs-cluster: error:")
    assert needle in err or "no frame could be decoded" in err


def test_segment_video_other_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped_model_dir()
    video = write_video(tmp_path / "in.mp4", frames=4, width=320, height=180)
    out = tmp_path / "out"
    rc = main(
        [
            "segment",
            "--source",
            str(video),
            "--out",
            str(out),
            "--video",
            str(out / "o.mp4"),
            "--width",
            "256",
            "--height",
            "128",
            "--threads",
            "1",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    labels = sorted((out / "labels").glob("*.png"))
    assert [p.name for p in labels] == [f"{i:06d}.png" for i in range(4)]
    lab = cv2.imread(str(labels[0]), cv2.IMREAD_UNCHANGED)
    assert lab.shape == (180, 320) and lab.dtype == np.uint8 and lab.max() < 19
    ov = cv2.imread(str(out / "overlay" / "000000.png"))
    assert ov.shape == (180, 320, 3)
    assert (out / "o.mp4").stat().st_size > 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["frames"] == 4 and stats["miou"] is None and 0 <= stats["seg_fraction"] <= 1
    assert "4 frames" in capsys.readouterr().out


def test_synthetic_source() -> None:
    pytest.importorskip("dvs_cluster.data.synthetic", reason="synthetic generator not available yet")
    src = open_source("synthetic:3", 256, 128, frames=3)
    assert src.has_labels and src.length == 3
    frames = list(src)
    assert [f.index for f in frames] == [0, 1, 2]
    f = frames[0]
    assert f.image.shape == (128, 256, 3) and f.image.dtype == np.uint8
    assert f.labels is not None and f.labels.shape == (128, 256) and f.labels.dtype == np.uint8
    again = next(iter(open_source("synthetic:3", 256, 128, frames=1)))
    np.testing.assert_array_equal(again.image, f.image)  # deterministic


def test_segment_synthetic_with_gt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("dvs_cluster.data.synthetic", reason="synthetic generator not available yet")
    shipped_model_dir()
    argv = ["segment", "--source", "synthetic:1", "--frames", "3", "--width", "256", "--height", "128"]
    argv += [
        "--save-labels",
        str(tmp_path / "l"),
        "--save-gt",
        str(tmp_path / "g"),
        "--json",
        str(tmp_path / "s.json"),
    ]
    assert main([*argv, "-q", "--threads", "1"]) == 0, capsys.readouterr().err
    gt = cv2.imread(str(tmp_path / "g" / "000002.png"), cv2.IMREAD_UNCHANGED)
    assert gt.shape == (128, 256) and gt.dtype == np.uint8
    assert len(list((tmp_path / "l").glob("*.png"))) == 3
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["miou"] is not None and 0 <= stats["miou"] <= 100 and stats["iou"]


def test_save_gt_needs_ground_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped_model_dir()
    video = write_video(tmp_path / "v.mp4", frames=2)
    rc = main(["segment", "--source", str(video), "--save-gt", str(tmp_path / "g"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "no ground truth" in err and "Traceback" not in err
