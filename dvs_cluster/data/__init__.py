"""data layer of dvs_cluster."""
