import pytest

from dvs_cluster.core.policy import DVSNetPolicy, FixedIntervalPolicy, SegPathPolicy, make_policy


def test_dvsnet_threshold() -> None:
    p = DVSNetPolicy(threshold=90)
    assert p.uses_score
    assert p.decide(0, 1, 89.9) == "seg"
    assert p.decide(0, 1, 90.0) == "flow"
    with pytest.raises(ValueError):
        p.decide(0, 1, None)
    p.observe(0, "seg")  # static: no change
    assert p.threshold_for(0) == 90


def test_dvsnet_dynamic_per_region() -> None:
    p = DVSNetPolicy(threshold=90, dynamic=True)
    p.observe(0, "seg")
    p.observe(0, "seg")
    p.observe(1, "flow")
    assert p.threshold_for(0) == pytest.approx(88.0)
    assert p.threshold_for(1) == pytest.approx(90.1)
    assert p.threshold_for(2) == 90.0
    assert p.decide(0, 3, 89.0) == "flow"
    assert p.decide(1, 3, 90.05) == "seg"
    q = DVSNetPolicy(threshold=0.5, dynamic=True)
    q.observe(0, "seg")
    assert q.threshold_for(0) == 0.0


def test_fixed_interval() -> None:
    p = FixedIntervalPolicy(5)
    assert not p.uses_score
    assert [p.decide(0, age, None) for age in range(1, 7)] == ["flow"] * 4 + ["seg"] * 2
    with pytest.raises(ValueError):
        FixedIntervalPolicy(0)


def test_segpath_and_factory() -> None:
    assert SegPathPolicy().decide(0, 1, 100.0) == "seg"
    assert isinstance(make_policy("segpath"), SegPathPolicy)
    f = make_policy("fixed3")
    assert isinstance(f, FixedIntervalPolicy) and f.k == 3
    d = make_policy("dvsnet", threshold=70)
    assert isinstance(d, DVSNetPolicy) and d.threshold == 70 and not d.dynamic
    dyn = make_policy("dynamic", threshold=70)
    assert isinstance(dyn, DVSNetPolicy) and dyn.dynamic
    for bad in ("fixed", "fixedx", "nope"):
        with pytest.raises(ValueError, match="unknown policy"):
            make_policy(bad)


def test_max_age_caps_the_dvsnet_rule() -> None:
    from dvs_cluster.core.policy import DVSNetPolicy, make_policy, policy_spec

    p = DVSNetPolicy(50.0, max_age=3)
    assert p.forced(0, 2) is None and p.forced(0, 3) == "seg" and p.forced(0, 9) == "seg"
    assert DVSNetPolicy(50.0).forced(0, 100) is None  # DVSNet's own rule never forces
    q = make_policy("dvsnet:max4", 90.0)
    assert isinstance(q, DVSNetPolicy) and q.max_age == 4 and q.threshold == 90.0
    assert policy_spec("dvsnet", 4) == "dvsnet:max4" and policy_spec("fixed3", 4) == "fixed3"
    assert policy_spec("dvsnet", 0) == "dvsnet"
    with pytest.raises(ValueError, match="dvsnet:maxK"):
        make_policy("dvsnet:4")


def test_a_forced_step_runs_no_flow_and_no_dn() -> None:
    import numpy as np
    from fake_models import FakeModels

    from dvs_cluster.core.keys import KeyBuffer
    from dvs_cluster.core.policy import DVSNetPolicy
    from dvs_cluster.core.processor import RegionProcessor

    m = FakeModels()
    proc = RegionProcessor(m, DVSNetPolicy(0.0, max_age=2))  # the DN alone would never segment
    buf = KeyBuffer(1)
    img = np.zeros((32, 64, 3), np.uint8)
    paths = [proc.step(0, t, img, buf).path for t in range(6)]
    assert paths == ["seg", "flow", "seg", "flow", "seg", "flow"]
    assert m.calls["dn"] == 3 and m.calls["flow"] == 3  # only the steps the cap did not decide
