from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from dvs_cluster.transport import messages as m
from dvs_cluster.transport.base import ClusterKeys, check_name

RNG = np.random.default_rng(0)
IMG = RNG.integers(0, 256, (64, 96, 3), dtype=np.uint8)
LOGITS = RNG.standard_normal((19, 16, 24)).astype(np.float32)
LABELS = RNG.integers(0, 19, (64, 96), dtype=np.uint8)


def task(key: bool = True) -> m.Task:
    return m.Task(
        cluster_id="c1",
        slave_id="s0",
        run_id="r1",
        sequence=12,
        region=3,
        num_regions=4,
        rect=(96, 64, 96, 64),
        image=IMG,
        threshold=87.5,
        policy="dvsnet",
        want_confidence=True,
        attempt=2,
        stamp=1234.5,
        frame_id="cam",
        key=m.KeyPayload(9, IMG[::-1].copy(), LOGITS) if key else None,
    )


def result(seg: bool = True) -> m.Result:
    return m.Result(
        cluster_id="c1",
        slave_id="s0",
        sequence=12,
        region=3,
        path=m.PATH_SEG if seg else m.PATH_FLOW,
        score=77.25,
        key_sequence=12 if seg else 9,
        labels=LABELS,
        logits=LOGITS if seg else None,
        confidence=LABELS.astype(np.float32),
        run_id="r1",
        attempt=1,
        stamp=1234.5,
        timings=m.Timings(deserialize=0.001, dn=0.002, flow=0.003, seg=0.004, total=0.01),
    )


def test_msg_files_found_and_registered() -> None:
    d = m.msg_dir()
    assert {p.stem for p in d.glob("*.msg")} >= set(m.MESSAGE_NAMES)
    for name in m.MESSAGE_NAMES:
        assert f"{m.TYPE_PREFIX}{name}" in m.TYPESTORE.types
    assert m.TYPE_PREFIX == "dvs_cluster_interfaces/msg/"


def test_msg_dir_from_env(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    src = m.msg_dir()
    for p in src.glob("*.msg"):
        (tmp_path / p.name).write_text(p.read_text())  # type: ignore[operator]
    monkeypatch.setenv("DVS_CLUSTER_MSG_DIR", str(tmp_path))
    assert m.msg_dir() == tmp_path


@pytest.mark.parametrize("with_key", [True, False])
def test_task_round_trip(with_key: bool) -> None:
    t = task(with_key)
    data = m.encode_task(t)
    back = m.decode_task(data)
    for f in dataclasses.fields(m.Task):
        if f.name not in ("image", "key"):
            assert getattr(back, f.name) == pytest.approx(getattr(t, f.name)), f.name
    assert np.array_equal(back.image, IMG)
    if with_key:
        assert back.key is not None and back.key.sequence == 9
        assert np.array_equal(back.key.image, IMG[::-1])
        assert back.key.logits.dtype == np.float32 and np.array_equal(back.key.logits, LOGITS)
    else:
        assert back.key is None


def test_decoded_arrays_are_views_of_the_payload() -> None:
    payload = bytes(m.encode_task(task()))
    back = m.decode_task(payload)
    buf = np.frombuffer(payload, np.uint8)
    assert np.shares_memory(back.image, buf)
    assert back.key is not None and np.shares_memory(back.key.logits, buf)
    assert not back.image.flags.writeable


@pytest.mark.parametrize(("quantize", "tol", "saved"), [("float16", 5e-3, 0.5), ("uint8", 0.02, 0.75)])
def test_key_quantisation(quantize: str, tol: float, saved: float) -> None:
    full = len(m.encode_task(task()))
    data = m.encode_task(task(), quantize)
    assert full - len(data) >= saved * LOGITS.nbytes - 16
    back = m.decode_task(data)
    assert back.key is not None and back.key.logits.dtype == np.float32
    span = float(LOGITS.max() - LOGITS.min())
    assert np.abs(back.key.logits - LOGITS).max() <= tol * span


@pytest.mark.parametrize("seg", [True, False])
def test_result_round_trip(seg: bool) -> None:
    r = result(seg)
    back = m.decode_result(m.encode_result(r))
    assert (back.sequence, back.region, back.path, back.key_sequence, back.attempt) == (
        12,
        3,
        r.path,
        r.key_sequence,
        1,
    )
    assert back.score == pytest.approx(77.25) and back.slave_id == "s0" and back.cluster_id == "c1"
    assert back.run_id == "r1"
    assert np.array_equal(back.labels, LABELS)
    assert back.confidence is not None and np.allclose(back.confidence, LABELS)
    assert back.timings == r.timings
    if seg:
        assert back.logits is not None and np.array_equal(back.logits, LOGITS)
    else:
        assert back.logits is None


def test_status_round_trip() -> None:
    s = m.Status("c1", "s0", "inc", 2, 10, 7, 3, 1, (5, -1, 4, 4), stamp=99.0)
    assert m.decode_status(m.encode_status(s)) == s


def _payloads() -> list[bytes]:
    return [
        bytes(m.encode_task(task())),
        bytes(m.encode_result(result())),
        bytes(m.encode_status(m.Status("c1", "s0", "inc", key_sequences=(1, 2)))),
    ]


DECODERS = [m.decode_task, m.decode_result, m.decode_status]


@pytest.mark.parametrize("decode", DECODERS)
def test_random_and_empty_bytes_raise_message_error(decode: object) -> None:
    rng = np.random.default_rng(1)
    cases = [b"", b"\x00", b"\x00\x01\x00\x00", b"garbage" * 10]
    cases += [rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(1, 5000, 200)]
    # Valid CDR header, random body.
    cases += [
        b"\x00\x01\x00\x00" + rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in (8, 64, 999)
    ]
    for data in cases:
        with pytest.raises(m.MessageError):
            decode(data)  # type: ignore[operator]


@pytest.mark.parametrize("which", range(3))
def test_truncated_payloads_raise_message_error(which: int) -> None:
    payload = _payloads()[which]
    decode = DECODERS[which]
    cuts = sorted({*range(0, 64), *range(64, len(payload), max(1, len(payload) // 300)), len(payload) - 1})
    for cut in cuts:
        with pytest.raises(m.MessageError):
            decode(payload[:cut])
    with pytest.raises(m.MessageError):
        decode(payload + b"\x00" * 64)  # trailing garbage


def test_wrong_type_raises_message_error() -> None:
    task_b, result_b, status_b = _payloads()
    for data, decode in [(status_b, m.decode_task), (status_b, m.decode_result), (task_b, m.decode_status)]:
        with pytest.raises(m.MessageError):
            decode(data)


def test_bit_flips_never_escape_as_other_errors() -> None:
    rng = np.random.default_rng(2)
    for payload, decode in zip(_payloads(), DECODERS, strict=True):
        arr = np.frombuffer(payload, np.uint8)
        header_end = min(len(arr), 400)  # lengths and scalars live up front
        for _ in range(300):
            flipped = arr.copy()
            i = int(rng.integers(0, header_end))
            flipped[i] ^= np.uint8(1 << int(rng.integers(0, 8)))
            try:
                decode(flipped.tobytes())
            except m.MessageError:
                pass


def test_inconsistent_fields_raise_message_error() -> None:
    bad_region = dataclasses.replace(task(), region=4)  # encodes, but region >= num_regions
    with pytest.raises(m.MessageError, match="region"):
        m.decode_task(m.encode_task(bad_region))
    bad_roi = dataclasses.replace(task(), rect=(0, 0, 10, 10))
    with pytest.raises(m.MessageError, match="roi"):
        m.decode_task(m.encode_task(bad_roi))
    t = task()
    assert t.key is not None
    bad_key = dataclasses.replace(t, key=m.KeyPayload(1, IMG[:32], LOGITS))
    with pytest.raises(m.MessageError, match="key image"):
        m.decode_task(m.encode_task(bad_key))
    flat_key = dataclasses.replace(t, key=m.KeyPayload(1, IMG, LOGITS[0]))
    with pytest.raises(m.MessageError, match="logits"):
        m.decode_task(m.encode_task(flat_key))
    no_logits = dataclasses.replace(result(True), logits=None)  # seg path must carry logits
    with pytest.raises(m.MessageError):
        m.decode_result(m.encode_result(no_logits))
    bad_path = dataclasses.replace(result(False), path=7)
    with pytest.raises(m.MessageError, match="path"):
        m.decode_result(m.encode_result(bad_path))
    bad_conf = dataclasses.replace(result(False), confidence=np.zeros((3, 3), np.float32))
    with pytest.raises(m.MessageError, match="confidence"):
        m.decode_result(m.encode_result(bad_conf))


def test_tensor_and_image_validation() -> None:
    t = m.tensor_to_msg(LOGITS)
    t.dtype = "float64"
    with pytest.raises(m.MessageError):
        m.msg_to_tensor(t)
    t = m.tensor_to_msg(LOGITS)
    t.shape = np.array([19, 16, 25], np.uint32)
    with pytest.raises(m.MessageError):
        m.msg_to_tensor(t)
    im = m.image_to_msg(IMG)
    with pytest.raises(m.MessageError):
        m.msg_to_image(im, "mono8")
    im.step = 5
    with pytest.raises(m.MessageError):
        m.msg_to_image(im, "rgb8")
    with pytest.raises(ValueError):
        m.image_to_msg(IMG.astype(np.float32))
    with pytest.raises(ValueError):
        m.tensor_to_msg(LOGITS, "int4")


def test_key_space() -> None:
    k = ClusterKeys("lab-1")
    assert k.task("slave0") == "dvs_cluster/lab-1/task/slave0"
    assert k.result == "dvs_cluster/lab-1/result"
    assert k.status("s") == "dvs_cluster/lab-1/status/s" and k.status_all.endswith("/status/*")
    assert k.alive_slave("s") == "dvs_cluster/lab-1/alive/slave/s" and k.alive_master.endswith(
        "/alive/master"
    )
    assert k.last_chunk(k.alive_slave("s")) == "s"
    assert ClusterKeys("a").prefix != ClusterKeys("b").prefix
    for bad in ("", "a/b", "*", "a b", "x" * 65, "$x"):
        with pytest.raises(ValueError):
            check_name(bad)
    with pytest.raises(ValueError):
        ClusterKeys("**")


def _reference(data: bytes | bytearray, name: str) -> bytes:
    """The rosbags serialisation of what ``data`` decodes to (the .msg files' reference bytes)."""
    return bytes(
        m.TYPESTORE.serialize_cdr(
            m.TYPESTORE.deserialize_cdr(bytes(data), m.TYPE_PREFIX + name), m.TYPE_PREFIX + name
        )
    )


@pytest.mark.parametrize("quantize", ["float32", "float16", "uint8"])
def test_fast_codec_writes_the_bytes_rosbags_writes(quantize: str) -> None:
    """Hand-laid fields (``transport.cdr``) vs rosbags from the .msg files: byte for byte, every layout."""
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
    for i in range(40):
        y, x = int(rng.integers(0, 32)), int(rng.integers(0, 64))
        crop = frame[y : y + 32, x : x + 64]  # strided view, as the master sends
        key_image = frame[:32, :64][::-1].copy()
        key = m.KeyPayload(int(rng.integers(0, 2**40)), key_image, LOGITS) if i % 3 == 0 else None
        t = m.Task(
            f"c{i % 2}", f"slave{i % 3}", int(rng.integers(0, 2**63)), i % 4, 4, (x, y, 64, 32), crop,
            float(rng.uniform(-2, 100)), ("dvsnet", "fixed5")[i % 2], bool(i % 2), f"run{i % 5}",
            int(rng.integers(0, 2**32)), float(rng.uniform(0, 2e9)), ("", "cam")[i % 2], key,
        )  # fmt: skip
        fast = bytes(m.encode_task(t, quantize))
        assert fast == bytes(m.TYPESTORE.serialize_cdr(m.task_to_msg(t, quantize), m.REGION_TASK)), i
        back = m.decode_task(fast)
        assert (back.sequence, back.attempt, back.stamp) == (t.sequence, t.attempt, pytest.approx(t.stamp))
        assert np.array_equal(back.image, crop)
        seg = i % 2 == 0
        r = m.Result(
            "c1", f"slave{i % 3}", t.sequence, i % 4, m.PATH_SEG if seg else m.PATH_FLOW,
            float(rng.uniform(0, 100)), int(rng.integers(0, 2**63)), LABELS, LOGITS if seg else None,
            LABELS.astype(np.float32) if i % 4 == 1 else None, "r", i, float(i) * 0.5, "cam",
            m.Timings(*rng.uniform(0, 1, 9).tolist()),
        )  # fmt: skip
        fast = bytes(m.encode_result(r, quantize))
        assert fast == bytes(m.TYPESTORE.serialize_cdr(m.result_to_msg(r, quantize), m.REGION_RESULT)), i
        assert _reference(fast, "RegionResult") == fast


def test_big_endian_cdr_is_refused_by_name() -> None:
    """The fast reader reads little-endian CDR only (every ROS 2 platform we target writes it)."""
    payload = bytearray(m.encode_result(result()))
    payload[1] = 0  # encapsulation 0000: CDR big endian
    with pytest.raises(m.MessageError, match="little-endian"):
        m.decode_result(bytes(payload))


def test_values_check_can_be_left_to_the_caller() -> None:
    bad = LOGITS.copy()
    bad[3, 2, 1] = np.inf
    data = bytes(m.encode_result(dataclasses.replace(result(True), logits=bad)))
    with pytest.raises(m.MessageError, match="not finite"):
        m.decode_result(data)
    back = m.decode_result(data, check_logits=False)  # the master checks a key when it forwards it
    assert back.logits is not None and not m.values_finite(back.logits)
    assert m.values_finite(LOGITS)
    huge = np.full(4, 3e38, np.float32)  # finite, but its sum overflows: still finite
    assert m.values_finite(huge)


def test_zenoh_data_queue_holds_a_region_task(tmp_path: Path) -> None:
    """zenoh's TX queue (2 batches of 64 KiB by default) is raised so a 393 kB task does not wait on it."""
    import json

    from dvs_cluster.transport.zenoh import DATA_QUEUE_BATCHES, make_config

    key = "transport/link/tx/queue/size/data"
    assert json.loads(make_config().get_json(key)) == DATA_QUEUE_BATCHES == 16
    assert DATA_QUEUE_BATCHES * 65535 >= 393 * 1024  # a 512x256 RGB region task fits
    low = tmp_path / "low.json5"
    low.write_text("{ transport: { link: { tx: { queue: { size: { data: 4 } } } } } }")
    assert json.loads(make_config(config_file=str(low)).get_json(key)) == DATA_QUEUE_BATCHES


def test_out_of_range_fields_refuse_to_encode() -> None:
    """A region index or count past uint8 is an error at the sender, never a silently wrapped byte."""
    with pytest.raises(ValueError):
        m.encode_task(dataclasses.replace(task(False), region=300, num_regions=400))
    with pytest.raises(ValueError):
        m.encode_result(dataclasses.replace(result(False), region=256))
