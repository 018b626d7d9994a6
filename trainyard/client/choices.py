"""The words the client's verbs accept, kept free of imports so the CLI can build its --help fast."""
from __future__ import annotations

RUN_STATES = ("queued", "running", "success", "failed")  # Airflow's DAG run states
# What a backfill does with dates that already have a run (Airflow's reprocess_behavior), and how
# Trainyard's retraining DAGs replay a date with a registered model (their `replay` param).
REPROCESS_BEHAVIORS = ("none", "failed", "completed")
REPLAY_MODES = ("exact", "current-code")
