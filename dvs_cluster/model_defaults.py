"""
The DN threshold a model set asks for, and the sentinels that mean "the slave's model default".

Next to the models rather than in the bench harness: the master, the slave, the CLI and the training
evaluation all resolve thresholds, and none of them should import ``dvs_cluster.bench`` to do it. A
leaf module (no package imports): ``models`` is anything with a ``metadata`` dict
(:class:`~dvs_cluster.inference.OnnxModels`), read duck-typed.
"""

from __future__ import annotations

from typing import Any

#: DVSNet's threshold, used when the DN's metadata records none.
FALLBACK_THRESHOLD = 90.0

#: Threshold sentinels for "the slave's model default" (MasterConfig, RegionTask.threshold): for real
#: cameras and videos, or for the synthetic video (the master knows its source, the slave its models).
MODEL_DEFAULT = -1.0
MODEL_DEFAULT_SYNTHETIC = -2.0


def default_threshold(models: Any, synthetic: bool = False) -> float:
    """
    The DN threshold a model set records in ``dn.onnx`` metadata, else DVSNet's 90.

    ``default_threshold`` is for real cameras and videos (what a robot gets); ``synthetic_threshold``,
    when present, for the procedural video the DN was fitted on. They differ because the DN, trained on
    synthetic pairs, over-predicts the flow path's agreement on real video (``train/threshold.py``).
    """
    meta = getattr(models, "metadata", {}) or {}
    dn = meta.get("dn", {}) if isinstance(meta, dict) else {}
    raw = (dn.get("synthetic_threshold") if synthetic else None) or dn.get("default_threshold")
    try:
        return float(raw) if raw is not None else FALLBACK_THRESHOLD
    except ValueError:
        return FALLBACK_THRESHOLD


def resolve_threshold(models: Any, value: float) -> float:
    """A task's threshold: itself when >= 0, else the model default its sentinel names."""
    if value >= 0:
        return value
    return default_threshold(models, synthetic=value == MODEL_DEFAULT_SYNTHETIC)
