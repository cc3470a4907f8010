"""
Where the processes of a local cluster run: the cores to use and which process gets which.

One place for the placement rule that the bench's real runs (:mod:`dvs_cluster.nodes.bench`) and the
simulator's replay of them (:mod:`dvs_cluster.sim.des`, :mod:`dvs_cluster.sim.report`) must share; a
leaf module (standard library only), so both can import it without importing each other.
"""

from __future__ import annotations

import os
from collections.abc import Callable


def all_cores() -> list[int]:
    """Cores the bench may pin to: ``$DVS_BENCH_CORES`` (e.g. ``0,1``) or every online CPU."""
    env = os.environ.get("DVS_BENCH_CORES")
    if env:
        return [int(c) for c in env.split(",") if c.strip()]
    return list(range(os.cpu_count() or 1))


def local_placement(slaves: int, cores: list[int]) -> tuple[int, list[int]]:
    """
    Core of the master and of each slave for a run on this machine.

    Round robin over ``cores`` with the master first: slave ``i`` gets ``cores[(i + 1) % n]``, so a
    process shares a core only when there are more processes than cores.
    """
    if not cores:
        raise ValueError("no cores")
    return cores[0], [cores[(i + 1) % len(cores)] for i in range(slaves)]


def pin_to(core: int) -> Callable[[], None]:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that pins the child to ``core`` (one board)."""

    def pre() -> None:
        os.sched_setaffinity(0, {core})

    return pre
