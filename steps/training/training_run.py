"""One trainer try's training: resume from the run's newest usable checkpoint, then run the loop with
its epoch-end hooks (checkpoint, metrics.jsonl, TensorBoard events, the progress line and, for a
study's trial, the pruner) under the stall watchdog. In a torchrun group every rank trains and
resumes from the same checkpoint; rank 0 alone runs the hooks that write (steps/training/distributed.py)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from steps.store import ArtifactStore
from steps.training.checkpoint import CheckpointHook, CheckpointStore, job_fingerprint
from steps.training.contract import EpochRecord, ResumeInfo, StopRecord, TrainingJob
from steps.training.distributed import TrainingProcess, seed_this_rank
from steps.training.epoch_reports import MetricsLogHook, ProgressLineHook
from steps.training.loop import ALONE, EpochHook, FitOutcome, evaluate, fit
from steps.training.prepared_data import PreparedData, TrainerAlgorithm
from steps.training.rng_state import capture_rng, restore_rng
from steps.training.tensorboard_events import TensorBoardHook
from steps.training.training_state import TrainingState, new_training_state
from steps.training.watchdog import StallWatchdog


def say(line: str) -> None:
    print(line, flush=True)  # stdout is a pipe to the executor: unflushed lines would arrive late


@dataclass(frozen=True)
class TrainingOutcome:
    state: TrainingState
    fit: FitOutcome
    resumed: ResumeInfo | None


@dataclass
class _Watched:
    """A hook whose run counts as progress, and names what the trainer is doing if it hangs there."""

    hook: EpochHook
    activity: str
    watchdog: StallWatchdog

    def on_epoch_end(self, state: TrainingState, record: EpochRecord) -> StopRecord | None:
        self.watchdog.doing(f"{self.activity} after epoch {record.epoch}")
        return self.hook.on_epoch_end(state, record)


def train_model(
    job: TrainingJob,
    algorithm: TrainerAlgorithm,
    data: PreparedData,
    store: ArtifactStore,
    *,
    device: str,
    work: Path,
    extra_hooks: Sequence[EpochHook] = (),
    emit: Callable[[str], None] = say,
    process: TrainingProcess = ALONE,
) -> TrainingOutcome:
    hp = job.hyperparameters
    epochs = int(hp["epochs"])
    initial_rng = capture_rng(device)

    def fresh_state() -> TrainingState:
        # The same initial weights however many candidate checkpoints were tried before.
        restore_rng(initial_rng)
        state = new_training_state(algorithm.build_model(hp, data.n_classes), hp, seed=job.seed, device=device)
        if process.in_group:  # the model is identical on every rank; from here each rank draws its own stream
            seed_this_rank(job.seed, process)
            state.rng = capture_rng(device)
            state.rank, state.world_size = process.rank, process.world_size
        return state

    # Every rank reads the same checkpoint: the fingerprint names the device kind, not this rank's "cuda:N".
    checkpoints = CheckpointStore(
        store, job.outputs, job.run_id, job_fingerprint(job, device.split(":")[0]), work, keep=job.checkpoints_kept,
        report=lambda line: emit(f"trainyard-trainer: {line}"),
    )
    state, resumed = checkpoints.resume(fresh_state)
    if resumed is not None:
        emit(f"trainyard-trainer: resuming at epoch {resumed.from_epoch} of {epochs} from {resumed.checkpoint_key}")
    watchdog = StallWatchdog(job.stall_timeout_s)
    checkpointing = CheckpointHook(checkpoints, job.checkpoint_every, epochs)
    tensorboard = None
    hooks: list[EpochHook] = []
    if process.is_main:  # one copy of the checkpoint, metrics and events: the other ranks hold the same state
        tensorboard = TensorBoardHook(store, job.outputs.tensorboard_events, work / "tensorboard").start(state.history)
        hooks = [
            _Watched(checkpointing, "saving the checkpoint", watchdog),
            _Watched(MetricsLogHook(store, job.metrics_output_key), "storing metrics.jsonl", watchdog),
            _Watched(tensorboard, "storing TensorBoard events", watchdog),
            ProgressLineHook(epochs, emit),
            *(_Watched(hook, type(hook).__name__, watchdog) for hook in extra_hooks),
        ]
        if job.pruning is not None:
            from steps.training.pruning import PruningHook  # optuna: only a study's trial needs it

            # Last: the epoch's checkpoint is taken and its metrics stored before the pruner may end the trial.
            hooks.append(_Watched(PruningHook(job.pruning, store), PruningHook.activity, watchdog))

    def evaluate_epoch():
        watchdog.doing(f"evaluating epoch {state.epochs_completed + 1}")
        return evaluate(state.model, data.test_x, data.test_y, n_classes=data.n_classes, device=device, process=process,
                        on_progress=lambda: watchdog.doing(f"evaluating epoch {state.epochs_completed + 1}"))

    try:
        with watchdog:
            outcome = fit(
                state,
                data.train_x,
                data.train_y,
                epochs=epochs,
                batch_size=int(hp["batch_size"]),
                hooks=hooks,
                evaluate_each_epoch=evaluate_epoch,
                on_progress=watchdog.batch_done,
                seed=job.seed,
                process=process,
            )
            watchdog.doing(f"storing the checkpoint of epoch {state.epochs_completed}")
            checkpointing.wait()
    finally:
        if tensorboard is not None:
            tensorboard.close()
    return TrainingOutcome(state=state, fit=outcome, resumed=resumed)
