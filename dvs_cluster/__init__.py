"""dvs_cluster: distributed dynamic video segmentation (DVSNet) over a small cluster of boards."""

__version__ = "0.1.0"
