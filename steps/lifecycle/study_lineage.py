"""Which hyperparameter study a run was a trial of: carried by the trial's RunPlan and written into
the manifest of the trial a study registers. Its own module because the plan and the manifest both
name it, and the manifest already depends on the plan (through the training identity)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StudyLineage(BaseModel):
    """The hyperparameter study a run was a trial of (steps/tuning)."""

    model_config = ConfigDict(frozen=True)

    study_id: str  # the run key of the study's DAG run: `trainyard study STUDY_ID`
    trial_number: int
