"""A distributed run's checkpoint holds every rank's RNG streams, so a 1×2 run killed in the middle of
epoch 3 resumes on its retry to the weights an uninterrupted 1×2 run trains; and a NaN loss under
torchrun ends the run as `diverged` on every rank (not retried), as it does for one process.

digits-cnn's shipped model draws nothing at random while it trains (the DistributedSampler's order
depends only on the seed and the epoch), so these runs turn on its dropout: each rank draws its own
dropout masks from its own stream (seed + rank), and only restoring each rank's own stream gives the
uninterrupted run's weights."""
from __future__ import annotations

import pytest

from steps.executors.base import TrainerFailed
from steps.executors.rank_failure import RankFailed
from steps.executors.subprocess_executor import SubprocessExecutor
from steps.images.trainer_image import TrainerImage
from steps.lifecycle.train import training_job
from steps.store import StoreSettings
from tests.conftest import PROJECT_ROOT
from tests.pipeline_fixtures import make_plan, snapshot_of
from tests.trainer_kill import kill_mid_epoch

# digits-cnn whose rank 1 alone computes a NaN loss, on its 3rd training batch: the other rank's loss is
# finite there, so only the ranks' agreement can stop rank 0 at that batch.
NAN_ON_RANK_1_TRAINER = '''
import os, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {root!r} + "/images/digits-cnn")
from steps.training.runtime import run_trainer
from train import DigitsCNN

class NanOnRank1(DigitsCNN):
    def build_model(self, hyperparameters, n_classes):
        model = super().build_model(hyperparameters, n_classes)
        calls = [0]
        def poison_third_batch(module, inputs, output):
            if module.training:
                calls[0] += 1
                if calls[0] == 3 and os.environ["RANK"] == "1":
                    return output * float("nan")
            return output
        model.register_forward_hook(poison_third_batch)
        return model

sys.exit(run_trainer(NanOnRank1()))
'''


def _plan(name: str, **hyperparameters):
    plan = make_plan(name, epochs=5, procs_per_node=2)
    return plan.model_copy(update={"hyperparameters": {**plan.hyperparameters, **hyperparameters}})


def _state(rank: int, world_size: int, seed: int):
    import torch

    from steps.training.rng_state import capture_rng
    from steps.training.training_state import new_training_state

    torch.manual_seed(seed)
    state = new_training_state(torch.nn.Linear(2, 2), {"learning_rate": 0.1}, seed=1, device="cpu")
    state.rank, state.world_size = rank, world_size
    state.rng = capture_rng("cpu")
    return state


def test_each_rank_resumes_its_own_rng_stream_and_another_world_size_is_refused(tmp_path):
    import torch

    from steps.training.rng_state import restore_rng

    ranks = [_state(rank, 2, seed=100 + rank) for rank in range(2)]
    for state in ranks:
        state.share_ranks_rng([r.rng for r in ranks])
    saved = tmp_path / "state.pt"
    torch.save(ranks[0].to_payload(), saved)  # rank 0 alone writes the checkpoint
    payload = torch.load(saved, weights_only=True)  # plain tensors and containers only

    def next_draw(state) -> torch.Tensor:
        restore_rng(state.rng)
        return torch.rand(4)

    resumed = _state(1, 2, seed=7)
    resumed.load_payload(payload, [])
    assert torch.equal(next_draw(resumed), next_draw(ranks[1]))  # rank 1 continues its own stream
    assert not torch.equal(next_draw(resumed), next_draw(ranks[0]))

    with pytest.raises(ValueError, match="it was made by 2 processes and holds their RNG streams; this run has 1"):
        _state(0, 1, seed=7).load_payload(payload, [])


@pytest.mark.slow
def test_a_two_process_run_killed_mid_epoch_3_resumes_every_rank_to_an_uninterrupted_runs_weights(local_store, store_root):
    settings = StoreSettings(backend="local", root=str(store_root))
    dataset_hash = snapshot_of(local_store).dataset_hash
    plan = _plan("ddp-resume", dropout=0.3, batch_size=8)
    job = training_job(plan, dataset_hash)

    # Rank 1 dies; torchrun stops rank 0 with it; the try fails as a retryable dead rank.
    kill = kill_mid_epoch(local_store, {"TRAINYARD_RUN_ID": job.run_id, "RANK": "1"}, epoch=3)
    with pytest.raises(RankFailed, match=r"rank 1 of 2 \(local rank 1\) exited with code -9"):
        SubprocessExecutor().run(job, plan.image, settings, deadline_s=900)
    assert kill.done.wait(60) and kill.error is None, kill.error
    assert kill.previous_checkpoint_existed and not kill.own_checkpoint_existed  # killed inside epoch 3

    retried = SubprocessExecutor().run(job, plan.image, settings, deadline_s=900)  # what the task's retry runs
    assert retried.resumed is not None and retried.resumed.from_epoch == 3
    assert retried.resumed.checkpoint_key.endswith("/epoch-0002/checkpoint.json")
    assert (retried.epochs_completed, retried.world_size) == (5, 2)

    uninterrupted_plan = _plan("ddp-uninterrupted", dropout=0.3, batch_size=8)
    uninterrupted = SubprocessExecutor().run(training_job(uninterrupted_plan, dataset_hash), plan.image, settings,
                                             deadline_s=900)
    assert uninterrupted.resumed is None and uninterrupted.epochs_completed == 5
    assert retried.weights_sha256 == uninterrupted.weights_sha256


@pytest.mark.slow
def test_a_nan_loss_under_torchrun_fails_every_rank_as_diverged_and_is_not_retried(local_store, store_root):
    from steps.lifecycle.run_failure import failure_from_exception

    settings = StoreSettings(backend="local", root=str(store_root))
    # Plain SGD at a huge learning rate reaches a non-finite loss within a few batches (test_fail_fast.py).
    plan = make_plan("ddp-diverges", dataset="intents", algorithm="intent-classification", epochs=6, procs_per_node=2)
    plan = plan.model_copy(update={"hyperparameters": {**plan.hyperparameters, "optimizer": "sgd", "learning_rate": 10.0,
                                                       "batch_size": 8}})
    job = training_job(plan, snapshot_of(local_store, "intents").dataset_hash)

    with pytest.raises(TrainerFailed) as failed:
        SubprocessExecutor().run(job, plan.image, settings, deadline_s=900)

    first_line = str(failed.value).splitlines()[0]
    assert failed.value.failure_kind == "diverged", str(failed.value)
    assert first_line.startswith("trainer 'intent-classification' diverged: training loss is ")
    assert "at epoch 1, batch " in first_line
    assert first_line.endswith("(learning rate 10); a retry would repeat it: lower the learning rate")
    assert not failure_from_exception("r", "train", failed.value).retryable
    log = local_store.get_bytes(job.outputs.trainer_log).decode()
    for rank in (0, 1):  # both ranks stopped at the same batch, in the same words: neither lost its peer
        assert f"[rank{rank}]: trainyard-trainer: error: {first_line.split(' ', 2)[2]}" in log
    assert not local_store.exists(job.result_output_key)


@pytest.mark.slow
def test_a_nan_loss_on_one_rank_stops_every_rank_at_that_batch_as_diverged(local_store, store_root, tmp_path):
    script = tmp_path / "images" / "nan-on-rank-1" / "train.py"
    script.parent.mkdir(parents=True)
    script.write_text(NAN_ON_RANK_1_TRAINER.format(root=str(PROJECT_ROOT)))
    image = TrainerImage(algorithm="digits-cnn", image_reference="x", code_sha256="0" * 64,
                         entrypoint="images/nan-on-rank-1/train.py")
    job = training_job(make_plan("ddp-nan-rank-1", procs_per_node=2), snapshot_of(local_store).dataset_hash)

    with pytest.raises(TrainerFailed) as failed:
        SubprocessExecutor(project_root=tmp_path).run(job, image, StoreSettings(backend="local", root=str(store_root)),
                                                      deadline_s=900)

    assert failed.value.failure_kind == "diverged", str(failed.value)
    said = "diverged: training loss is nan at epoch 1, batch 3 of "
    assert str(failed.value).startswith(f"trainer 'digits-cnn' {said}")
    log = local_store.get_bytes(job.outputs.trainer_log).decode()
    assert f"[rank0]: trainyard-trainer: error: {said}" in log  # rank 0's own loss was finite
    assert f"[rank1]: trainyard-trainer: error: {said}" in log
    assert not local_store.exists(job.result_output_key)
