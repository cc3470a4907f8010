"""Entry point: python -m dvs_cluster.train (see cli.py)."""

from dvs_cluster.train.cli import main

raise SystemExit(main())
