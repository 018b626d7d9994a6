"""The train step's operator, chosen when the DAG is parsed: Airflow pools and operator
types are static, so TRAINYARD_EXECUTOR (or [executor] kind) decides it here."""
from __future__ import annotations

from trainyard.settings import Settings


def train_step(plan, snapshot, validation):
    if Settings.load().executor == "kubernetes":
        from operators.train_pod import TrainerPodOperator

        return TrainerPodOperator(plan=plan, snapshot=snapshot, validation=validation).output
    from operators.train_operator import TrainOperator

    return TrainOperator(plan=plan, snapshot=snapshot, validation=validation).output
