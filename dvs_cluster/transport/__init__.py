"""transport layer of dvs_cluster."""
