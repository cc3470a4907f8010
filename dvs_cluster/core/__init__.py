"""Pure algorithm: regions, key buffers, decision policy, scheduling, warping, metrics. No I/O."""
