"""dataset_snapshots (Airflow DAG): snapshot every catalog dataset daily; a new snapshot emits its
dataset's asset event (extra: dataset_hash), which starts that model's retraining."""
from __future__ import annotations

from operators.snapshot_dag import build_dataset_snapshots_dag

dataset_snapshots = build_dataset_snapshots_dag()
