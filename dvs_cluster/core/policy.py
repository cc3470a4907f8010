"""
Decision policies: which path (segmentation or flow) a region takes at a timestep.

Pure and tiny so Single, the slaves and the benchmarks share them. A policy either needs the decision
network's score (``uses_score``: the flow net and DN run first, as in DVSNet) or decides from the key age
alone (fixed interval, always-seg), which saves the DN / flow net when the answer is seg.
The processor calls :meth:`decide` only when a key exists (no key -> seg), then :meth:`observe` with
the path actually taken.
"""

from __future__ import annotations

from typing import Literal, Protocol

Path = Literal["seg", "flow"]


class DecisionPolicy(Protocol):
    """What the region processor needs from a policy."""

    name: str
    uses_score: bool

    def decide(self, region: int, key_age: int, score: float | None) -> Path:
        """Path for a region whose key is ``key_age`` frames old (``score`` given iff ``uses_score``)."""
        ...

    def observe(self, region: int, path: Path) -> None:
        """Record the path taken (stateful policies adapt here)."""
        ...

    def forced(self, region: int, key_age: int) -> Path | None:
        """A path the key age alone decides (the nets then do not run), else None."""
        ...


class DVSNetPolicy:
    """
    DVSNet's rule: DN score below the threshold -> segmentation path (thresholds on 0..100).

    ``dynamic=True`` adapts a per-region threshold as in DVSNet: -1 after each segmentation step,
    +0.1 after each flow step (clamped to 0..100), starting at ``threshold``.

    ``max_age`` (K > 0): a key K or more frames old is replaced whatever the DN says, without running
    the flow source and the DN. The DN then spends the keys between the regular ones where a region
    needs them (a cut, fast motion); a uniform spread of keys is what the flow path's steady decay
    with age rewards (on the synthetic bench the DN alone spent its keys worse than a fixed interval).
    """

    uses_score = True

    def __init__(self, threshold: float = 90.0, dynamic: bool = False, max_age: int = 0) -> None:
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self.threshold = float(threshold)
        self.dynamic = dynamic
        self.max_age = int(max_age)
        cap = f", max age {self.max_age}" if self.max_age else ""
        self.name = f"DVSNet(t={self.threshold:g}{', dynamic' if dynamic else ''}{cap})"
        self._thresholds: dict[int, float] = {}

    def forced(self, region: int, key_age: int) -> Path | None:
        return "seg" if self.max_age and key_age >= self.max_age else None

    def threshold_for(self, region: int) -> float:
        """Current threshold of a region (the static one unless dynamic)."""
        return self._thresholds.get(region, self.threshold)

    def decide(self, region: int, key_age: int, score: float | None) -> Path:
        if score is None:
            raise ValueError("DVSNetPolicy needs the decision network's score")
        return "seg" if score < self.threshold_for(region) else "flow"

    def observe(self, region: int, path: Path) -> None:
        if not self.dynamic:
            return
        th = self.threshold_for(region) + (-1.0 if path == "seg" else 0.1)
        self._thresholds[region] = min(100.0, max(0.0, th))


class FixedIntervalPolicy:
    """A new key every ``k`` frames (seg when the key is ``k`` or more frames old), no DN."""

    uses_score = False

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"interval must be >= 1, got {k}")
        self.k = k
        self.name = f"Fixed{k}"

    def decide(self, region: int, key_age: int, score: float | None) -> Path:
        return "seg" if key_age >= self.k else "flow"

    def observe(self, region: int, path: Path) -> None:
        return None

    def forced(self, region: int, key_age: int) -> Path | None:
        return self.decide(region, key_age, None)


class SegPathPolicy:
    """Always the segmentation path: the accuracy reference (every region, every frame)."""

    uses_score = False
    name = "SegPath"

    def decide(self, region: int, key_age: int, score: float | None) -> Path:
        return "seg"

    def observe(self, region: int, path: Path) -> None:
        return None

    def forced(self, region: int, key_age: int) -> Path | None:
        return "seg"


#: Key-age cap of the DVSNet rule by default (``--max-age``; 0 = DVSNet's rule alone). From the synthetic
#: bench (120 frames, DIS + DN v2, one interleaved run): cap 4 at threshold 92 lost 3.8 points against
#: SegPath at 2.66x its speed, cap 3 at 90 3.0 points at 2.40x, and cap 3 holds the slower end of the
#: front (94: 2.5 points at 2.12x); without a cap the DN at 90 keyed only 15 % of the regions and lost
#: 9.0 points. README's sweep has both caps.
DEFAULT_MAX_AGE = 4


def policy_spec(policy: str, max_age: int | None = None) -> str:
    """``policy`` with the key-age cap written in (``dvsnet`` + 4 -> ``dvsnet:max4``), as tasks carry it."""
    cap = DEFAULT_MAX_AGE if max_age is None else max_age
    p = policy.strip().lower()
    if cap and p in ("dvsnet", "single", "dynamic"):
        return f"{p}:max{cap}"
    return p


def make_policy(
    spec: str, threshold: float = 90.0, dynamic: bool = False, max_age: int = 0
) -> DecisionPolicy:
    """
    Policy from a CLI name: ``dvsnet`` | ``dynamic`` | ``fixedK`` (e.g. ``fixed5``) | ``segpath``.

    ``dvsnet`` and ``dynamic`` take a key-age cap as ``:maxK`` (``dvsnet:max4``; overrides ``max_age``).
    """
    s = spec.strip().lower()
    head, _, cap = s.partition(":")
    if head in ("dvsnet", "single", "dynamic"):
        if cap:
            if not (cap.startswith("max") and cap[3:].isdigit()):
                raise ValueError(
                    f"unknown policy {spec!r} (a key-age cap is written dvsnet:maxK, e.g. dvsnet:max4)"
                )
            max_age = int(cap[3:])
        return DVSNetPolicy(threshold, dynamic=dynamic or head == "dynamic", max_age=max_age)
    if s in ("segpath", "seg"):
        return SegPathPolicy()
    if s.startswith("fixed"):
        try:
            return FixedIntervalPolicy(int(s[5:]))
        except ValueError:
            pass
    raise ValueError(f"unknown policy {spec!r} (use dvsnet, dynamic, segpath or fixedK, e.g. fixed5)")
