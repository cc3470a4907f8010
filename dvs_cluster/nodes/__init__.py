"""nodes layer of dvs_cluster."""
