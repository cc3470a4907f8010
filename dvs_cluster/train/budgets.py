"""
Training budgets (``--budget``): data sizes and loop lengths of each stage.

Their own module, so the stage scripts (``dn2``, ``camvid_train``) read them without importing the
pipeline in ``train/cli.py`` that runs those stages (which was an import cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

from dvs_cluster.train.loops import LoopConfig


@dataclass(frozen=True)
class Budget:
    """Everything that sets the cost of a training run."""

    seg_seeds: int
    seg_frames: int
    seg_stride: int
    seg: LoopConfig
    flow_seeds: int
    flow_pairs: int
    flow_max_gap: int
    flow: LoopConfig
    dn_seeds: int
    dn_frames: int
    dn_gaps: int
    dn_max_gap: int
    dn_cross: int
    dn: LoopConfig


BUDGETS: dict[str, Budget] = {
    # CI: whole pipeline in about a minute on 2 cores; the models are untrained.
    "tiny": Budget(
        seg_seeds=1,
        seg_frames=2,
        seg_stride=5,
        seg=LoopConfig(2, 2, 128, 128, 1e-3, log_every=1),
        flow_seeds=1,
        flow_pairs=2,
        flow_max_gap=3,
        flow=LoopConfig(2, 2, 128, 128, 1e-3, log_every=1),
        dn_seeds=2,
        dn_frames=3,
        dn_gaps=1,
        dn_max_gap=2,
        dn_cross=1,
        dn=LoopConfig(5, 8, 0, 0, 1e-3, log_every=1),
    ),
    # The shipped models: ~60 min on 2 shared CPU cores (seg 40, flow 19, DN 2, incl. data); the loops
    # anneal by steps or wall clock, whichever runs out first, so a slower machine takes fewer steps.
    "full": Budget(
        # Many short scenes beat a few long ones: appearance is randomised per scene.
        seg_seeds=48,
        seg_frames=12,
        seg_stride=11,
        seg=LoopConfig(9000, 8, 256, 256, 3e-3, max_seconds=2280),
        # The flow net bounds the fast path's quality: 6 min left it barely better than zero flow at
        # interval 1 (EPE 3.5 vs 4.3), so it gets 25 min and 3x the pairs.
        flow_seeds=24,
        flow_pairs=40,
        flow_max_gap=20,
        flow=LoopConfig(20000, 6, 256, 384, 2e-3, max_seconds=1500),
        dn_seeds=8,
        dn_frames=60,
        dn_gaps=3,
        dn_max_gap=20,
        dn_cross=30,
        dn=LoopConfig(3000, 128, 0, 0, 1e-3, max_seconds=120, log_every=250),
    ),
}
