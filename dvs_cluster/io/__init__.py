"""io layer of dvs_cluster."""
