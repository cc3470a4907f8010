"""rosbag2 in and out (rosbags, no ROS): bag source, --topic, --record; the written bag reads back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags")
from cluster_support import make_random_models  # noqa: E402
from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402

from dvs_cluster.cli import main  # noqa: E402
from dvs_cluster.io.sources import SourceError, open_source  # noqa: E402
from dvs_cluster.transport.messages import TYPESTORE  # noqa: E402

FRAMES = 5
H, W = 96, 160  # not the processing size: outputs must come back at the input size
STAMPS = [(1_700_000_000 + i, 123_456_789 + i) for i in range(FRAMES)]


def _write_input(path: Path, storage: StoragePlugin) -> Path:
    T = TYPESTORE.types
    rng = np.random.default_rng(0)
    with Writer(path, version=8, storage_plugin=storage) as w:
        cam = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=TYPESTORE)
        other = w.add_connection("/chatter", "std_msgs/msg/String", typestore=TYPESTORE)
        for i, (sec, nsec) in enumerate(STAMPS):
            bgr = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            header = T["std_msgs/msg/Header"](
                stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id="cam_front"
            )
            msg = T["sensor_msgs/msg/Image"](
                header=header,
                height=H,
                width=W,
                encoding="bgr8",
                is_bigendian=0,
                step=3 * W,
                data=bgr.reshape(-1),
            )
            t = sec * 10**9 + nsec
            w.write(cam, t, TYPESTORE.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            w.write(
                other,
                t,
                TYPESTORE.serialize_cdr(T["std_msgs/msg/String"](data=f"x{i}"), "std_msgs/msg/String"),
            )
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_random_models(tmp_path_factory.mktemp("models"))


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP], ids=["sqlite3", "mcap"])
def test_bag_source_reads_frames_and_headers(tmp_path: Path, storage: StoragePlugin) -> None:
    bag = _write_input(tmp_path / "in", storage)
    with open_source(str(bag), 256, 128, topic="/camera/image_raw") as src:
        frames = list(src)
        assert src.length == FRAMES
        assert [src.header(f.index) for f in frames] == [(s, n, "cam_front") for s, n in STAMPS]  # type: ignore[attr-defined]
    assert frames[0].raw.shape == (H, W, 3) and frames[0].image.shape == (128, 256, 3)
    # only one image topic: --topic is optional; a wrong one is refused with the topics listed
    with open_source(str(bag)) as src:
        assert src.name.endswith("#/camera/image_raw")
    with pytest.raises(SourceError, match="/camera/image_raw"):
        open_source(str(bag), topic="/front/image")


def _read(bag: Path) -> dict[str, list[tuple[int, object]]]:
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([bag]) as r:
        types = {c.topic: c.msgtype for c in r.connections}
        assert types == {
            "/segmentation": "sensor_msgs/msg/Image",
            "/segmentation_color": "sensor_msgs/msg/Image",
            "/overlay": "sensor_msgs/msg/Image",
            "/stats": "std_msgs/msg/String",
        }
        for conn, t, raw in r.messages():
            out.setdefault(conn.topic, []).append((t, r.deserialize(raw, conn.msgtype)))
    return out


def _check_record(out: Path, frames_key: str) -> None:
    assert (out / "metadata.yaml").is_file() and list(out.glob("*.mcap"))
    msgs = _read(out)
    for topic, enc, ch in (
        ("/segmentation", "mono8", 1),
        ("/segmentation_color", "rgb8", 3),
        ("/overlay", "rgb8", 3),
    ):
        got = msgs[topic]
        assert len(got) == FRAMES, topic
        for (t, m), (sec, nsec) in zip(got, STAMPS, strict=True):
            assert (m.header.stamp.sec, m.header.stamp.nanosec, m.header.frame_id) == (sec, nsec, "cam_front")
            assert t == sec * 10**9 + nsec  # log time = capture time: bag time lines up with the input
            assert (m.encoding, m.height, m.width, m.step) == (enc, H, W, W * ch)
    labels = np.asarray(msgs["/segmentation"][0][1].data)  # type: ignore[attr-defined]
    assert set(np.unique(labels)) <= set(range(19)) | {255}
    ((_, stats),) = msgs["/stats"]
    assert json.loads(stats.data)[frames_key] == FRAMES  # type: ignore[attr-defined]


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP], ids=["sqlite3", "mcap"])
def test_segment_record(tmp_path: Path, models: Path, storage: StoragePlugin) -> None:
    bag = _write_input(tmp_path / "in", storage)
    out = tmp_path / "out"
    rc = main(
        [
            "segment",
            "--source",
            str(bag),
            "--topic",
            "/camera/image_raw",
            "--record",
            str(out),
            "--models",
            str(models),
            "--width",
            "256",
            "--height",
            "128",
            "-q",
        ]
    )
    assert rc == 0
    _check_record(out, "frames")


def test_record_refuses_existing_dir(tmp_path: Path, models: Path) -> None:
    bag = _write_input(tmp_path / "in", StoragePlugin.MCAP)
    rc = main(["segment", "--source", str(bag), "--record", str(bag), "--models", str(models), "-q"])
    assert rc == 2


@pytest.mark.slow
def test_cluster_run_record(tmp_path: Path, models: Path) -> None:
    """`dvs-cluster run --slaves 1 --source BAG --topic ... --record OUT`."""
    bag = _write_input(tmp_path / "in", StoragePlugin.MCAP)
    out = tmp_path / "out"
    rc = main(
        [
            "run",
            "--slaves",
            "1",
            "--source",
            str(bag),
            "--topic",
            "/camera/image_raw",
            "--record",
            str(out),
            "--models",
            str(models),
            "--width",
            "256",
            "--height",
            "128",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    _check_record(out, "frames_out")
