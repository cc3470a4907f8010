#!/usr/bin/env bash
# Sets up .venv with the training and dev extras and runs the test suite (lint, types, unit, multi-process).
# Extra pytest arguments pass through, e.g. scripts/test.sh -m "not slow".
source "$(dirname "$0")/_venv.sh" train,dev
.venv/bin/ruff check dvs_cluster test
.venv/bin/mypy dvs_cluster
.venv/bin/lint-imports  # layers, training apart, no cycles (.importlinter)
exec .venv/bin/python -m pytest -q -m "not ros" "$@"
