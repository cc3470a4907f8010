from __future__ import annotations

import numpy as np
import pytest

from dvs_cluster.core.keys import KeyFrame
from dvs_cluster.core.scheduler import Job, KeyTable, Outcome, WorkloadManager, should_forward


def drain(wm: WorkloadManager, now: float = 0.0) -> list[tuple[int, int, str]]:
    out = []
    while (d := wm.next_dispatch(now)) is not None:
        out.append((d.job.sequence, d.job.region, d.slave))
    return out


def test_oldest_frame_first_and_region_order() -> None:
    wm = WorkloadManager(4, max_in_flight=8)
    wm.add_slave("a")
    wm.submit(1)
    wm.submit(0)
    got = drain(wm)
    assert [(s, r) for s, r, _ in got] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]


def test_bounded_in_flight_and_dynamic_spread() -> None:
    wm = WorkloadManager(4, max_in_flight=1)
    wm.add_slave("a")
    wm.add_slave("b")
    wm.submit(0)
    got = drain(wm)
    assert len(got) == 2 and {s for _, _, s in got} == {"a", "b"}
    assert wm.next_dispatch(0.0) is None and wm.in_flight == 2
    # The slave that answers gets the head of the queue.
    seq, region, slave = got[0]
    assert wm.complete(slave, seq, region, seg=True) is Outcome.ACCEPTED
    d = wm.next_dispatch(0.0)
    assert d is not None and d.slave == slave and (d.job.sequence, d.job.region) == (0, 2)


def test_no_slaves_no_dispatch() -> None:
    wm = WorkloadManager(4)
    wm.submit(0)
    assert wm.next_dispatch(0.0) is None
    assert wm.pending_jobs == 4


def test_drop_policy_newest_frame_wins_and_counts() -> None:
    wm = WorkloadManager(4, max_queued_frames=2)
    wm.add_slave("a")
    assert wm.submit(0) == [] and wm.submit(1) == []
    assert not wm.has_room()
    assert wm.submit(2) == [0]  # oldest untouched frame dropped, the new one queued
    assert wm.open_frames == [1, 2] and wm.dropped == 1 and list(wm.recent_drops) == [0]
    d = wm.next_dispatch(0.0)  # frame 1 partly dispatched: no longer a drop victim
    assert d is not None and d.job.sequence == 1
    assert wm.submit(3) == [2]
    assert wm.open_frames == [1, 3]
    assert wm.dropped == 2 and list(wm.recent_drops) == [0, 2] and wm.submitted == 4


def test_drop_incoming_when_all_waiting_frames_started() -> None:
    wm = WorkloadManager(2, max_queued_frames=1)
    wm.add_slave("a")
    wm.submit(0)
    assert wm.next_dispatch(0.0) is not None  # frame 0 started, region 1 still waiting
    assert wm.submit(1) == [1]
    assert wm.open_frames == [0] and list(wm.recent_drops) == [1]


def test_frames_in_equals_out_plus_dropped() -> None:
    wm = WorkloadManager(4, max_queued_frames=3, max_in_flight=1)
    for name in ("a", "b"):
        wm.add_slave(name)
    done: list[int] = []
    for seq in range(50):
        wm.submit(seq)
        # The cluster answers one task per frame arrival: slower than the camera.
        d = wm.next_dispatch(float(seq))
        if d is not None:
            assert wm.complete(d.slave, d.job.sequence, d.job.region, seg=False) is Outcome.ACCEPTED
            if wm.frame_done(d.job.sequence):
                done.append(d.job.sequence)
    while not wm.idle():
        d = wm.next_dispatch(100.0)
        assert d is not None
        wm.complete(d.slave, d.job.sequence, d.job.region, seg=False)
        if wm.frame_done(d.job.sequence):
            done.append(d.job.sequence)
    assert done == sorted(done)
    assert len(done) + wm.dropped == 50 and wm.dropped > 0
    assert not set(done) & set(wm.recent_drops)


def test_redispatch_on_slave_loss() -> None:
    wm = WorkloadManager(4, max_in_flight=2)
    wm.add_slave("a")
    wm.add_slave("b")
    wm.submit(0)
    got = drain(wm)
    # Two live slaves: one task each, the other regions wait for the first to finish (no second slots).
    assert sorted(name for _, _, name in got) == ["a", "b"]
    lost = [(s, r) for s, r, name in got if name == "a"]
    requeued = wm.remove_slave("a")
    assert [(j.sequence, j.region) for j in requeued] == lost
    assert all(j.attempt == 1 for j in requeued)
    assert wm.redispatched == len(lost)
    # b is the only slave left: its second slot takes the oldest free region, the re-queued one.
    again = drain(wm)
    assert [(s, r, name) for s, r, name in again] == [(*lost[0], "b")]
    assert drain(wm) == []  # b is full (2 in flight)
    answered = 0
    while not wm.idle():
        for s, r, _ in [*got, *again]:
            if wm.complete("b", s, r, seg=False) is Outcome.ACCEPTED:
                answered += 1
        got, again = [], drain(wm)
        assert again and {name for _, _, name in again} == {"b"}
        if answered + len(again) == 4:
            for s, r, _ in again:
                assert wm.complete("b", s, r, seg=False) is Outcome.ACCEPTED
            break
    assert wm.frame_done(0) and wm.idle()


def test_second_slots_carry_only_chained_jobs_unless_one_slave() -> None:
    # Two slaves, two tasks each, four regions: frame 0's regions 0 and 1 go out, one to each slave.
    wm = WorkloadManager(4, max_in_flight=2)
    wm.add_slave("a")
    wm.add_slave("b")
    wm.submit(0)
    wm.submit(1)
    d0, d1 = wm.next_dispatch(0.0), wm.next_dispatch(1.0)
    assert d0 is not None and d1 is not None and {d0.slave, d1.slave} == {"a", "b"}
    # Regions 2 and 3 have nothing in flight, but both slaves are busy: a second slot would make them
    # wait out a task that may be a seg step. Only region 1's next frame queues behind its own job,
    # then region 0's; the free regions wait for the first slave to answer.
    d2, d3 = wm.next_dispatch(2.0), wm.next_dispatch(3.0)
    assert d2 is not None and (d2.job.sequence, d2.job.region, d2.slave) == (1, 1, d1.slave)
    assert d3 is not None and (d3.job.sequence, d3.job.region, d3.slave) == (1, 0, d0.slave)
    assert wm.next_dispatch(4.0) is None
    # A slave that answers and still runs a chained job is busy: the free regions keep waiting, and
    # go to the first slave with nothing in flight.
    wm.complete(d0.slave, 0, 0, seg=False)
    assert wm.next_dispatch(5.0) is None
    wm.complete(d0.slave, 1, 0, seg=False)
    d4 = wm.next_dispatch(6.0)
    assert d4 is not None and (d4.job.sequence, d4.job.region, d4.slave) == (0, 2, d0.slave)
    # One slave: no other to wait for, so its second slot takes the oldest free region.
    lone = WorkloadManager(4, max_in_flight=2)
    lone.add_slave("a")
    lone.submit(0)
    assert [(s, r) for s, r, _ in drain(lone)] == [(0, 0), (0, 1)]


def test_timeout_redispatch_suspect_and_late_duplicate() -> None:
    wm = WorkloadManager(1, max_in_flight=1, timeout_s=1.0)
    wm.add_slave("slow")
    wm.submit(0)
    d = wm.next_dispatch(0.0)
    assert d is not None and d.slave == "slow" and d.job.attempt == 0
    assert wm.next_deadline() == pytest.approx(1.0)
    assert wm.expire(0.5) == []
    expired = wm.expire(1.5)
    assert expired == [Job(0, 0, 1)]
    assert wm.available() == []  # suspect: no new work
    wm.add_slave("fast")
    d2 = wm.next_dispatch(1.5)
    assert d2 is not None and d2.slave == "fast" and d2.job.attempt == 1
    assert wm.complete("fast", 0, 0, seg=False) is Outcome.ACCEPTED
    # The slow slave answers late: discarded, but it is trusted again.
    assert wm.complete("slow", 0, 0, seg=False) is Outcome.UNKNOWN
    assert "slow" in wm.available()


def test_late_first_answer_wins_and_frees_the_other_slave() -> None:
    wm = WorkloadManager(1, max_in_flight=1, timeout_s=1.0)
    wm.add_slave("slow")
    wm.submit(0)
    wm.submit(1)
    assert wm.next_dispatch(0.0) is not None
    wm.expire(2.0)
    wm.add_slave("fast")
    d = wm.next_dispatch(2.0)
    assert d is not None and d.slave == "fast" and d.job == Job(0, 0, 1)
    assert wm.complete("slow", 0, 0, seg=True) is Outcome.ACCEPTED  # the old attempt came first
    assert wm.slaves["fast"].in_flight == {}
    assert wm.complete("fast", 0, 0, seg=True) is Outcome.UNKNOWN
    d = wm.next_dispatch(2.0)
    assert d is not None and d.job.sequence == 1


def test_duplicate_within_open_frame() -> None:
    wm = WorkloadManager(2, max_in_flight=2)
    wm.add_slave("a")
    wm.submit(0)
    drain(wm)
    assert wm.complete("a", 0, 0, seg=False) is Outcome.ACCEPTED
    assert wm.complete("a", 0, 0, seg=False) is Outcome.DUPLICATE
    assert wm.complete("a", 7, 0, seg=False) is Outcome.UNKNOWN
    assert wm.duplicates == 1 and wm.unknown == 1


def test_abandon_counts_as_dropped() -> None:
    wm = WorkloadManager(2)
    wm.add_slave("a")
    wm.submit(0)
    wm.next_dispatch(0.0)
    assert wm.abandon(0) and wm.idle() and wm.dropped == 1 and list(wm.recent_drops) == [0]
    assert wm.slaves["a"].in_flight == {}


def test_should_forward_rule() -> None:
    assert not should_forward(None, None, 5, 0)  # nothing to forward
    assert should_forward(None, 3, 5, 0)  # slave has no key
    assert not should_forward(3, 3, 5, 0)  # already the newest
    assert should_forward(2, 3, 5, 0)
    assert not should_forward(2, 3, 5, 1)  # within the threshold
    assert should_forward(1, 3, 5, 1)
    assert not should_forward(None, 5, 5, 0)  # never a key from the task's own frame or future


def test_key_table_keeps_newest() -> None:
    kt = KeyTable(2)
    kt.note(0, 5)
    kt.note(0, 3)
    assert kt.as_tuple() == (5, None)


def test_forwarding_and_key_tables_through_dispatch() -> None:
    wm = WorkloadManager(1, max_in_flight=1, forward_threshold=0)
    wm.add_slave("a")
    wm.add_slave("b")
    wm.submit(0)
    d = wm.next_dispatch(0.0)
    assert d is not None and d.forward_key is None  # no global key yet
    wm.complete(d.slave, 0, 0, seg=True)
    assert wm.global_keys == [0] and wm.slaves[d.slave].keys.get(0) == 0
    other = "b" if d.slave == "a" else "a"
    wm.submit(1)
    d1 = wm.next_dispatch(1.0)
    assert d1 is not None and d1.slave == other and d1.forward_key == 0  # the other slave has no key
    assert wm.slaves[other].keys.get(0) == 0 and wm.forwarded == 1
    wm.complete(other, 1, 0, seg=False)  # flow path: keys unchanged
    assert wm.global_keys == [0]
    wm.submit(2)
    d2 = wm.next_dispatch(2.0)
    assert d2 is not None and d2.forward_key is None  # both slaves hold key 0 now


def test_drops_are_a_counter_in_bounded_memory() -> None:
    """An endless overloaded stream: the drop count is exact, the kept sequences stay bounded."""
    from dvs_cluster.core.scheduler import RECENT_DROPS

    wm = WorkloadManager(1, max_queued_frames=1)
    for seq in range(10_000):
        wm.submit(seq)  # no slave: every new frame pushes the waiting one out
    assert wm.dropped == 9_999 and wm.open_frames == [9_999]
    assert list(wm.recent_drops) == list(range(9_999 - RECENT_DROPS, 9_999))


def _key(ts: int) -> KeyFrame:
    return KeyFrame(ts, np.zeros((4, 4, 3), np.uint8), np.zeros((19, 1, 1), np.float32))


def test_global_key_buffer_has_one_owner() -> None:
    """The key the forwarding rule decides on is the key frame handed out; an unusable one is gone."""
    wm = WorkloadManager(1, max_in_flight=1)
    wm.add_slave("a")
    wm.add_slave("b")
    wm.submit(0)
    d = wm.next_dispatch(0.0)
    assert d is not None
    k0 = _key(0)
    wm.complete(d.slave, 0, 0, seg=True, key=k0)
    assert wm.global_keys == [0] and wm.global_key(0) is k0
    other = "b" if d.slave == "a" else "a"
    wm.submit(1)
    asked: list[tuple[int, int]] = []

    def refuse(region: int, key: KeyFrame) -> bool:
        asked.append((region, key.timestep))
        return False

    d1 = wm.next_dispatch(1.0, usable=refuse)
    assert d1 is not None and d1.slave == other and d1.forward_key is None and asked == [(0, 0)]
    assert wm.global_keys == [None] and wm.global_key(0) is None  # dropped from the one buffer
    assert wm.slaves[other].keys.get(0) is None and wm.forwarded == 0  # and no key table noted it
    wm.complete(other, 1, 0, seg=True, key=_key(1))
    wm.complete(other, 1, 0, seg=True, key=_key(9))  # a duplicate never replaces the key
    assert wm.global_key(0) is not None and wm.global_key(0).timestep == 1  # type: ignore[union-attr]


def test_affinity_prefers_freshest_key() -> None:
    wm = WorkloadManager(2, max_in_flight=4, affinity=True)
    wm.add_slave("a")
    wm.add_slave("b")
    wm.slaves["b"].keys.note(1, 7)
    wm.slaves["a"].keys.note(0, 7)
    wm.submit(8)
    got = drain(wm)
    assert dict(((r, s) for _, r, s in got)) == {0: "a", 1: "b"}


def three_slaves_two_frames(region_order: str) -> WorkloadManager:
    """Two regions per frame, frames 0 and 1 queued, slaves a, b, c with one task each."""
    wm = WorkloadManager(2, max_in_flight=1, region_order=region_order)
    for name in "abc":
        wm.add_slave(name)
    wm.submit(0)
    wm.submit(1)
    return wm


def test_strict_order_holds_a_region_behind_its_earlier_frame() -> None:
    wm = three_slaves_two_frames("strict")
    got = drain(wm)
    # Two regions in flight; the third slave stays idle rather than start frame 1 on an older key.
    assert [(s, r) for s, r, _ in got] == [(0, 0), (0, 1)]
    assert wm.complete(got[1][2], 0, 1, seg=True) is Outcome.ACCEPTED
    d = wm.next_dispatch(0.0)
    assert d is not None and (d.job.sequence, d.job.region) == (1, 1)
    assert wm.next_dispatch(0.0) is None  # region 0 of frame 1 still waits for frame 0's
    # A slave that leaves gives its job back; the region keeps its order (frame 0 goes first again).
    wm.remove_slave(got[0][2])
    d = wm.next_dispatch(0.0)
    assert d is not None and (d.job.sequence, d.job.region, d.job.attempt) == (0, 0, 1)


def test_fifo_order_fills_every_slave_from_the_head() -> None:
    wm = three_slaves_two_frames("fifo")
    assert [(s, r) for s, r, _ in drain(wm)] == [(0, 0), (0, 1), (1, 0)]


def test_prefer_order_free_regions_first_then_the_latest_started() -> None:
    wm = WorkloadManager(4, max_in_flight=1, region_order="prefer")
    for name in "abcde":
        wm.add_slave(name)
    wm.submit(0)
    wm.submit(1)
    # Frame 0's four regions go out at t = 0, 1, 2, 3 (nothing in flight for any of them).
    got = [wm.next_dispatch(float(t)) for t in range(4)]
    assert [(d.job.sequence, d.job.region) for d in got if d] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    # Region 1 answers: frame 1's region 1 is the only free one and goes first, even after region 0.
    wm.complete(got[1].slave if got[1] else "", 0, 1, seg=False)
    d = wm.next_dispatch(4.0)
    assert d is not None and (d.job.sequence, d.job.region) == (1, 1)
    # Frame 1 still waits with regions 0, 2 and 3, all busy (frame 0's jobs sent at t = 0, 2, 3): the
    # fifth slave takes region 3, whose job started last and so is the least likely on the seg path.
    d = wm.next_dispatch(10.0)
    assert d is not None and (d.job.sequence, d.job.region) == (1, 3)
    # The strict order would have left that slave idle.
    assert WorkloadManager(4, region_order="strict")._head(0.0, []) is None
    with pytest.raises(ValueError):
        WorkloadManager(4, region_order="lifo")


def test_prefer_order_queues_a_busy_region_behind_its_own_job() -> None:
    # Two tasks per slave: with every waiting region busy, a region's next job goes to the slave that
    # runs its newest job (it will start from the key that job leaves), not to the least loaded one.
    wm = WorkloadManager(2, max_in_flight=2, region_order="prefer")
    wm.add_slave("a")
    wm.add_slave("b")
    wm.submit(0)
    wm.submit(1)
    d0, d1 = wm.next_dispatch(0.0), wm.next_dispatch(1.0)
    assert d0 is not None and d1 is not None and d0.slave != d1.slave
    # Region 1's job started last: its next frame first, behind it on the same slave; then region 0.
    d2, d3 = wm.next_dispatch(2.0), wm.next_dispatch(3.0)
    assert d2 is not None and (d2.job.sequence, d2.job.region, d2.slave) == (1, 1, d1.slave)
    assert d3 is not None and (d3.job.sequence, d3.job.region, d3.slave) == (1, 0, d0.slave)


def test_restarted_slave_starts_with_empty_key_table() -> None:
    wm = WorkloadManager(1)
    wm.add_slave("a")
    wm.slaves["a"].keys.note(0, 3)
    wm.remove_slave("a")
    wm.add_slave("a")
    assert wm.slaves["a"].keys.get(0) is None


def test_invalid_config() -> None:
    with pytest.raises(ValueError):
        WorkloadManager(0)
    with pytest.raises(ValueError):
        WorkloadManager(4, timeout_s=0)
    wm = WorkloadManager(1)
    wm.submit(0)
    with pytest.raises(ValueError):
        wm.submit(0)
