"""
Discrete-event cluster simulator, its calibration from the real components, board profiles and planner.

The simulator exists because a 2-core machine cannot hold a 1+6 cluster of one-core boards: it replays
the real scheduler (:mod:`dvs_cluster.core.scheduler`) and the real key policy over costs measured from
the real models, serialiser and transport, and is validated against every real run the machine can do.
"""
