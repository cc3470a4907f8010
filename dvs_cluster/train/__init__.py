"""train layer of dvs_cluster."""
