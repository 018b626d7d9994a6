"""Where a run's artifacts live in the store. Every `runs/...` key is built here and nowhere else
(docs/storage.md shows the same tree).

    runs/<run_key>/validation.json      the validate step's full report
    runs/<run_key>/train/               the trainer's outputs (TrainerOutputs)
    runs/<run_key>/champion-eval/       the champion re-scored on this run's eval set (TrainerOutputs)
    runs/<run_key>/evaluation.json      the champion gate's verdict
    runs/<run_key>/registered.json      what register made of the run
    runs/<run_key>/reproduction.json    an exact replay's weights comparison
    runs/<run_key>/failures/<step>.json why a step failed, in one line (steps/lifecycle/run_failure.py)
"""
from __future__ import annotations

from dataclasses import dataclass

from steps.store.keys import validate_key


@dataclass(frozen=True)
class TrainerOutputs:
    """What one trainer invocation writes under its output prefix: files first, result.json last."""

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


@dataclass(frozen=True)
class RunLayout:
    """The keys of one run, from its store-safe run key."""

    run_key: str

    def __post_init__(self) -> None:
        validate_key(self.prefix)

    @property
    def prefix(self) -> str:
        return f"runs/{self.run_key}"

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
