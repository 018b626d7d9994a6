"""scheduled_retraining: one Airflow DAG per configured model (config/retraining.yaml).

Runs weekly and whenever a new snapshot of the model's dataset lands (asset event).
Backfills replay: a date with a registered model is re-trained from its manifest and
must reproduce its weights hash; a date without one gets a historical version.
"""
from __future__ import annotations

from operators.retraining_dag import build_retraining_dag
from steps.catalog.retraining import load_retraining

for _entry in load_retraining():
    globals()[_entry.dag_id] = build_retraining_dag(_entry)
