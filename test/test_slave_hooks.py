"""The slave's documented hooks, as the bench's variants use them (no patching of the slave module)."""

from __future__ import annotations

import numpy as np
from fake_models import FakeModels

from dvs_cluster.core.processor import RegionOutcome
from dvs_cluster.nodes.bench import EchoHooks, FlowLogitsHooks
from dvs_cluster.nodes.slave import SlaveHooks, SlaveNode
from dvs_cluster.transport.loopback import LoopbackTransport
from dvs_cluster.transport.messages import PATH_FLOW, PATH_SEG, Result, Task, decode_result, encode_task

H, W = 128, 256


def _task(seq: int, region: int = 0) -> bytes:
    img = np.full((H, W, 3), 40 + seq, np.uint8)
    t = Task("c", "s0", seq, region, 4, (0, 0, W, H), img, threshold=50.0, run_id="run1")
    return bytes(encode_task(t))


SENT: list[bytes] = []


def _serve(hooks: SlaveHooks | None, models: FakeModels, seqs: range) -> list[Result]:
    bus = LoopbackTransport()
    SENT.clear()
    bus.subscribe("dvs_cluster/c/result", lambda k, p: SENT.append(p))
    node = SlaveNode("s0", bus, models, cluster_id="c", hooks=hooks)
    for seq in seqs:
        node.handle(_task(seq))
    node.close()
    return [decode_result(p) for p in SENT]


def test_default_hooks_are_the_plain_slave() -> None:
    plain = _serve(None, FakeModels(), range(3))
    hooked = _serve(SlaveHooks(), FakeModels(), range(3))
    assert [(r.path, r.labels.tobytes()) for r in plain] == [(r.path, r.labels.tobytes()) for r in hooked]
    assert plain[0].path == PATH_SEG and plain[1].path == PATH_FLOW and plain[1].logits is None


def test_flow_logits_hooks_ship_the_warped_logits() -> None:
    """The paper's scheme: a flow result carries its logits on the wire (the master ignores them)."""
    plain = _serve(None, FakeModels(), range(3))
    plain_bytes = [len(p) for p in SENT]
    res = _serve(FlowLogitsHooks(), FakeModels(), range(3))
    hooked_bytes = [len(p) for p in SENT]
    assert res[1].path == PATH_FLOW and plain[1].path == PATH_FLOW
    assert plain[0].logits is not None and hooked_bytes[0] == plain_bytes[0]  # seg results unchanged
    extra = hooked_bytes[1] - plain_bytes[1]
    assert plain[0].logits.nbytes <= extra < plain[0].logits.nbytes + 64  # the region's logits (+ shape)


def test_echo_hooks_never_run_the_nets() -> None:
    models = FakeModels()
    res = _serve(EchoHooks(), models, range(5))
    assert models.calls == {"seg": 0, "flow": 0, "dn": 0}
    assert len(res) == 5 and all(not r.labels.any() for r in res)
    assert {r.path for r in res} == {PATH_SEG, PATH_FLOW}


def test_a_hook_sees_the_real_step() -> None:
    seen: list[str] = []

    class Spy(SlaveHooks):
        def process(self, task: Task, run: object) -> RegionOutcome:
            out = run()  # type: ignore[operator]
            seen.append(out.path)
            return out  # type: ignore[no-any-return]

    res = _serve(Spy(), FakeModels(), range(2))
    assert seen == ["seg", "flow"] and [r.path for r in res] == [PATH_SEG, PATH_FLOW]
