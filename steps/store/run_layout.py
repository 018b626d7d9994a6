"""Where a run's artifacts live in the store. Every `runs/...` key is built here and nowhere else
(docs/storage.md shows the same tree).

    runs/<run_key>/validation.json      the validate step's full report
    runs/<run_key>/train/               the trainer's outputs (TrainerOutputs), its checkpoints, curve, events
    runs/<run_key>/champion-eval/       the champion re-scored on this run's eval set (TrainerOutputs)
    runs/<run_key>/evaluation.json      the champion gate's verdict
    runs/<run_key>/registered.json      what register made of the run
    runs/<run_key>/reproduction.json    an exact replay's weights comparison
    runs/<run_key>/failures/<step>.json why a step failed, in one line (steps/lifecycle/run_failure.py)
    runs/<run_key>/study/               a hyperparameter study run by this run (StudyLayout)
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from steps.store.keys import validate_key

RUNS_PREFIX = "runs/"
CHECKPOINT_MARKER = "checkpoint.json"
_CHECKPOINT_DIR_RE = re.compile(r"/checkpoints/epoch-(\d{4,})/")


@dataclass(frozen=True)
class TrainerOutputs:
    """What one trainer invocation writes under its output prefix: files first, result.json last.

        weights.safetensors, metrics.jsonl, result.json, trainer.log
        events.tfevents                          per-epoch scalars for TensorBoard (rewritten every epoch)
        learning-curve.png                       loss and the objective per epoch (the train step draws it)
        checkpoints/epoch-NNNN/<file>            one checkpoint's files, then its marker checkpoint.json last
    """

    prefix: str

    @property
    def weights(self) -> str:
        return f"{self.prefix}/weights.safetensors"

    @property
    def metrics(self) -> str:
        return f"{self.prefix}/metrics.jsonl"

    @property
    def result(self) -> str:
        return f"{self.prefix}/result.json"

    @property
    def trainer_log(self) -> str:
        return f"{self.prefix}/trainer.log"

    @property
    def tensorboard_events(self) -> str:
        # TensorBoard reads any file whose name contains "tfevents".
        return f"{self.prefix}/events.tfevents"

    @property
    def learning_curve(self) -> str:
        return f"{self.prefix}/learning-curve.png"

    @property
    def checkpoints_prefix(self) -> str:
        return f"{self.prefix}/checkpoints/"

    def checkpoint_prefix(self, epoch: int) -> str:
        return f"{self.checkpoints_prefix}epoch-{epoch:04d}/"

    def checkpoint_file(self, epoch: int, name: str) -> str:
        return validate_key(f"{self.checkpoint_prefix(epoch)}{name}")

    def checkpoint_marker(self, epoch: int) -> str:
        return self.checkpoint_file(epoch, CHECKPOINT_MARKER)

    def checkpoint_epoch(self, key: str) -> int | None:
        """The epoch a checkpoint key belongs to, or None for a key outside the checkpoints."""
        match = _CHECKPOINT_DIR_RE.search(key[len(self.prefix) :]) if key.startswith(self.checkpoints_prefix) else None
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class RunLayout:
    """The keys of one run, from its store-safe run key."""

    run_key: str

    def __post_init__(self) -> None:
        validate_key(self.prefix)

    @property
    def prefix(self) -> str:
        return f"{RUNS_PREFIX}{self.run_key}"

    @property
    def train(self) -> TrainerOutputs:
        return TrainerOutputs(f"{self.prefix}/train")

    @property
    def champion_eval(self) -> TrainerOutputs:
        return TrainerOutputs(f"{self.prefix}/champion-eval")

    @property
    def validation_report(self) -> str:
        return f"{self.prefix}/validation.json"

    @property
    def evaluation(self) -> str:
        return f"{self.prefix}/evaluation.json"

    @property
    def registered(self) -> str:
        return f"{self.prefix}/registered.json"

    @property
    def reproduction(self) -> str:
        return f"{self.prefix}/reproduction.json"

    @property
    def failures_prefix(self) -> str:
        return f"{self.prefix}/failures/"

    def failure(self, step: str) -> str:
        return validate_key(f"{self.failures_prefix}{step}.json")

    @property
    def study(self) -> StudyLayout:
        return StudyLayout(self.run_key)


@dataclass(frozen=True)
class StudyLayout:
    """A hyperparameter study's keys. The study id is the run key of the DAG run that runs it; each
    trial is an ordinary run of its own (trial_run_key), so its outputs sit in its own RunLayout.

    runs/<study_id>/study/spec.json                  the validated study plan (create-only)
    runs/<study_id>/study/journal/<seq>.json         Optuna's journal: one create-only object per record
    runs/<study_id>/study/waves/<wave>.json          the trials a wave proposed (create-only: the commit point)
    runs/<study_id>/study/trials/<number>.json       a finished trial's outcome (create-only)
    runs/<study_id>/study/record.json                the study record: every trial, best first
    runs/<study_id>/study/optimization-history.png   objective per trial and best so far
    runs/<study_id>/study/parameters.png             each parameter against the objective
    """

    study_id: str

    def __post_init__(self) -> None:
        validate_key(self.prefix)

    @property
    def prefix(self) -> str:
        return f"runs/{self.study_id}/study"

    @property
    def spec(self) -> str:
        return f"{self.prefix}/spec.json"

    @property
    def journal_prefix(self) -> str:
        return f"{self.prefix}/journal/"

    def journal_record(self, sequence: int) -> str:
        return f"{self.journal_prefix}{sequence:010d}.json"

    @property
    def waves_prefix(self) -> str:
        return f"{self.prefix}/waves/"

    def wave(self, wave: int) -> str:
        return f"{self.waves_prefix}{wave:03d}.json"

    @property
    def trials_prefix(self) -> str:
        return f"{self.prefix}/trials/"

    def trial(self, number: int) -> str:
        return f"{self.trials_prefix}{number:04d}.json"

    @property
    def record(self) -> str:
        return f"{self.prefix}/record.json"

    @property
    def history_plot(self) -> str:
        return f"{self.prefix}/optimization-history.png"

    @property
    def parameters_plot(self) -> str:
        return f"{self.prefix}/parameters.png"

    def trial_run_key(self, number: int) -> str:
        """The run key of trial `number`: an ordinary run, with its own runs/<key>/ tree."""
        return f"{self.study_id}-trial-{number:03d}"


def runs_with_events(keys: Iterable[str]) -> list[str]:
    """Run keys whose trainer wrote TensorBoard events, from a listing of RUNS_PREFIX."""
    found = []
    for key in keys:
        parts = key.split("/")
        if len(parts) > 2 and parts[0] == "runs" and key == RunLayout(parts[1]).train.tensorboard_events:
            found.append(parts[1])
    return sorted(set(found))
