"""Data-parallel training with torchrun on the subprocess executor: the shape's bounds and defaults,
bit-identical weights for the same world size, a dead rank failing the whole run, and a rendezvous
that never forms. Container and Kubernetes shapes are in test_container_executor.py,
test_indexed_job.py and kubernetes/test_distributed_job.py."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from steps.executors.base import ShapeUnsupported
from steps.executors.node_group import reserved_port
from steps.executors.rank_failure import RankFailed, RendezvousFailed
from steps.executors.subprocess_executor import SubprocessExecutor
from steps.executors.trainer_process import run_trainer_process, trainer_result
from steps.lifecycle.plan import BadRequest, parse_request
from steps.lifecycle.train import training_job
from steps.store import StoreSettings
from steps.training.launch import Rendezvous, torchrun_command
from tests.conftest import run_cli
from tests.pipeline_fixtures import make_plan, snapshot_of
from tests.rank_processes import in_thread, pid_of_rank, seeing_log_line

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DIGITS_TRAINER = PROJECT_ROOT / "images" / "digits-cnn" / "train.py"
# A loaded 2-core machine starts torch slowly; these bound "no hang", not speed.
FAILS_WITHIN_S = 120


# --- bounds, defaults and refusals: the same words everywhere ------------------------------------


def test_shapes_past_the_bounds_are_refused_naming_each_bound():
    with pytest.raises(BadRequest) as err:
        parse_request({"dataset": "digits", "algorithm": "digits-cnn", "epochs": 1, "learning_rate": 0.1,
                       "batch_size": 8, "seed": 1, "nodes": 17, "procs_per_node": 0})
    assert "nodes: Input should be less than or equal to 16" in str(err.value)
    assert "procs_per_node: Input should be greater than or equal to 1" in str(err.value)


def test_the_forms_and_the_clis_shape_bounds_are_the_trainers():
    from steps.lifecycle.bounds import BOUNDS
    from steps.training.shape import MAX_NODES, MAX_PROCS_PER_NODE

    assert (BOUNDS["nodes"]["maximum"], BOUNDS["procs_per_node"]["maximum"]) == (MAX_NODES, MAX_PROCS_PER_NODE)


def test_more_than_one_node_on_the_subprocess_executor_is_refused_naming_the_executors_that_can():
    with pytest.raises(BadRequest, match="nodes=2: the subprocess executor .* needs the container or kubernetes executor"):
        make_plan("two-nodes", nodes=2)
    with pytest.raises(ShapeUnsupported, match="container or kubernetes"):
        SubprocessExecutor().command(training_job(make_plan("x"), "0" * 64).model_copy(update={"nodes": 2}), DIGITS_TRAINER)


def test_the_cli_refuses_a_shape_its_executor_cannot_run_before_airflow_starts(store_root):
    out = run_cli("run", "--dataset", "digits", "--algorithm", "digits-cnn", "--nodes", "3")
    assert out.returncode == 2
    assert out.stderr.strip() == ("trainyard: error: nodes=3: the subprocess executor runs a trainer on this one machine; "
                                  "a 3×1 run needs the container or kubernetes executor (or nodes=1, procs_per_node=3)")


def test_a_run_gets_its_algorithms_registered_shape_unless_it_asks_for_another(tmp_path):
    from steps.catalog.catalog import Catalog
    from steps.lifecycle.plan import plan_run

    registry = yaml.safe_load((PROJECT_ROOT / "config" / "algorithms.yaml").read_text())
    registry["digits-cnn"]["shape"] = {"nodes": 2, "procs_per_node": 4}
    (tmp_path / "algorithms.yaml").write_text(yaml.safe_dump(registry))
    registered = Catalog.load(PROJECT_ROOT / "config" / "datasets.yaml", tmp_path / "algorithms.yaml")
    base = {"dataset": "digits", "algorithm": "digits-cnn", "epochs": 1, "learning_rate": 0.1, "batch_size": 8, "seed": 1}

    def plan(**shape):
        return plan_run(parse_request({**base, **shape}), registered, dag_id="t", airflow_run_id="r", logical_date=None,
                        executor="container", split_seed=1, test_fraction=0.2, num_threads=1,
                        image_resolver=lambda _ref: "sha256:" + "a" * 64)

    assert (plan().nodes, plan().procs_per_node) == (2, 4)
    assert (plan(procs_per_node=1).nodes, plan(procs_per_node=1).procs_per_node) == (2, 1)
    assert make_plan("shipped").shape.world_size == 1  # the shipped registry trains one process


def test_the_params_forms_offer_nodes_and_procs_per_node_with_the_plans_bounds():
    from operators.params import training_params
    from operators.retraining_dag import retraining_params
    from steps.catalog.retraining import load_retraining

    for params in (training_params(), retraining_params(load_retraining()[0])):
        nodes, procs = params["nodes"].schema, params["procs_per_node"].schema
        assert (nodes["minimum"], nodes["maximum"], procs["minimum"], procs["maximum"]) == (1, 16, 1, 8)
        assert params["nodes"].value is None and "null" in nodes["type"]  # empty: the registry's default


def test_torchrun_starts_one_node_standalone_and_several_at_node_zeros_static_rendezvous():
    from steps.training.shape import TrainingShape

    one = torchrun_command("python", "train.py", TrainingShape(procs_per_node=4))
    assert one[:3] == ["python", "-m", "torch.distributed.run"] and "--standalone" in one and one[-1] == "train.py"
    assert one[one.index("--nproc-per-node") + 1] == "4" and one[one.index("--max-restarts") + 1] == "0"
    many = torchrun_command("python", "train.py", TrainingShape(nodes=3, procs_per_node=2),
                            Rendezvous(master_addr="job-0.svc", node_rank="$(JOB_COMPLETION_INDEX)", timeout_s=60))
    flags = dict(zip(many[3:-1:2], many[4:-1:2], strict=True))
    assert flags == {"--nnodes": "3", "--nproc-per-node": "2", "--max-restarts": "0", "--tee": "3",
                     "--log-line-prefix-template": "[rank${rank}]: ", "--rdzv-backend": "static",
                     "--node-rank": "$(JOB_COMPLETION_INDEX)", "--master-addr": "job-0.svc", "--master-port": "29500",
                     "--rdzv-conf": "timeout=60"}


def _manifest(**changes):
    """A registered manifest as an older Trainyard wrote it (no shape keys), with `changes` on top."""
    from steps.lifecycle.manifest import ModelManifest

    plan = make_plan("replayed")
    metrics = {"accuracy": 0.9, "macro_f1": 0.9, "loss": 0.3, "confusion_matrix": [[1]], "n_examples": 1}
    written_before_shapes = {
        "model_name": "digits-digits-cnn", "version": 1, "created_at": "2026-01-12T03:00:00+00:00", "run_key": "r",
        "algorithm": "digits-cnn", "trainer": plan.image.model_dump(mode="json"), "executor": "kubernetes",
        "dataset": {"name": "digits", "dataset_hash": "d" * 64, "partitions": [], "as_of": None, "source": "s",
                    "eval_set_hash": "e" * 64},
        "validation": {"success": True, "report_key": "k"}, "seed": 3, "split_seed": 11, "test_fraction": 0.2,
        "hyperparameters": plan.hyperparameters, "num_threads": 1, "device": "cpu", "torch_version": "2.15.0",
        "metrics": metrics, "weights_sha256": "f" * 64,
        "evaluation": {"primary_metric": "macro_f1", "min_improvement": 0.0, "champion_version": None,
                       "champion_metrics": None, "champion_source": "none", "promote": True, "reason": "first"},
        "airflow": {"dag_id": "scheduled_retraining", "run_id": "x", "logical_date": "2026-01-12T03:00:00+00:00"},
        "files": [],
    }
    return ModelManifest.model_validate({**written_before_shapes, **changes})


def test_a_manifest_written_before_shapes_reads_as_one_plain_process():
    old = _manifest()
    assert (old.nodes, old.procs_per_node, old.world_size, old.backend) == (1, 1, 1, "none")


def test_replays_train_on_the_pinned_shape_and_refuse_an_executor_that_cannot_run_it():
    from steps.lifecycle.replay import ReplayRefused, check_shape_runs_here, current_code_replay_plan, exact_replay_plan

    pinned = _manifest(nodes=2, procs_per_node=3, world_size=6, backend="gloo")
    for replay in (exact_replay_plan(make_plan("b1"), pinned), current_code_replay_plan(make_plan("b2"), pinned)):
        assert (replay.nodes, replay.procs_per_node) == (2, 3)
    check_shape_runs_here(_manifest(procs_per_node=2, world_size=2, backend="gloo"), "subprocess")  # one node runs anywhere
    check_shape_runs_here(pinned, "container")
    with pytest.raises(ReplayRefused, match=r"trained on 2 nodes × 3 processes \(world size 6\), which a replay must use: "
                                            r"nodes=2: the subprocess executor"):
        check_shape_runs_here(pinned, "subprocess")


def test_reproduction_trains_on_the_manifests_shape_on_cpu():
    from steps.lifecycle.reproduce import reproduction_job

    job = reproduction_job(_manifest(nodes=2, procs_per_node=4, world_size=8, backend="nccl"), "again")
    assert (job.nodes, job.procs_per_node, job.device) == (2, 4, "cpu")


# --- torchrun's own failure report, as captured from real runs on this machine -------------------

CAPTURED = Path(__file__).parent / "data" / "torchrun"


def test_a_rank_killed_on_one_node_is_named_with_its_exit_code_and_its_own_log_lines():
    from steps.executors.rank_failure import distributed_failure
    from steps.training.shape import TrainingShape

    lines = (CAPTURED / "one_node_rank1_killed.log").read_text().splitlines()
    failure = distributed_failure("digits-cnn", TrainingShape(procs_per_node=2), lines, 1)
    first, *tail = str(failure).splitlines()
    assert isinstance(failure, RankFailed)
    assert first == ("trainer 'digits-cnn': rank 1 of 2 (local rank 1) exited with code -9 (SIGKILL); "
                     "the whole 1×2 run failed with it; last log lines of rank 1:")
    assert tail and all(line.startswith("[rank1]: ") for line in tail)


def test_ranks_that_diverged_fail_the_run_as_diverged_in_their_own_words_not_as_a_dead_rank():
    from steps.executors.rank_failure import distributed_failure
    from steps.lifecycle.run_failure import RETRYABLE_BY_KIND
    from steps.training.shape import TrainingShape

    # Both ranks of a 1×2 run hit the NaN at the same batch and exited 3 (tests/test_distributed_resume.py).
    lines = (CAPTURED / "one_node_diverged.log").read_text().splitlines()
    failure = distributed_failure("intent-classification", TrainingShape(procs_per_node=2), lines, 1)
    assert not isinstance(failure, RankFailed) and failure.failure_kind == "diverged"
    assert not RETRYABLE_BY_KIND[failure.failure_kind]
    assert str(failure).splitlines()[0] == (
        "trainer 'intent-classification' diverged: training loss is nan at epoch 1, batch 10 of 10 (learning rate 10); "
        "a retry would repeat it: lower the learning rate"
    )


def test_across_nodes_the_first_rank_to_die_is_named_not_the_peer_that_lost_it():
    from steps.executors.rank_failure import distributed_failure
    from steps.training.shape import TrainingShape

    # Node 0's rank 0 failed too, 5 s later, with gloo's "Connection reset by peer": a consequence.
    captured = (CAPTURED / "two_nodes_rank1_killed.log").read_text()
    # torchrun's clock has whole seconds; both nodes often report the same one (as the 1-node log does).
    same_second = captured.replace("2026-11-29_08:26:51", "2026-11-29_08:26:46")
    for text in (captured, same_second):
        message = str(distributed_failure("digits-cnn", TrainingShape(nodes=2), text.splitlines(), 1))
        assert message.startswith("trainer 'digits-cnn': rank 1 of 2 (node 1, local rank 0) exited with code -9 (SIGKILL)")
        assert message.endswith("[rank1]: rank1 about to die")


# --- real runs: two processes on this machine (slow) ---------------------------------------------


@pytest.mark.slow
def test_a_two_process_run_through_the_cli_pins_its_shape_and_reproduces_bit_identical_weights(airflow_db, store_root):
    from steps.lifecycle.model_registry import load_manifest
    from steps.lifecycle.reproduce import reproduce_model
    from steps.store.local import LocalStore

    out = run_cli("run", "--dataset", "intents", "--algorithm", "intent-classification", "--epochs", "2",
                  "--seed", "5", "--procs-per-node", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "trained on 1 node × 2 processes (world size 2), backend gloo" in out.stdout
    manifest = load_manifest(LocalStore(store_root), "intents-intent-classification", 1)
    assert (manifest.nodes, manifest.procs_per_node, manifest.world_size, manifest.backend) == (1, 2, 2, "gloo")
    assert manifest.metrics.n_examples == sum(map(sum, manifest.metrics.confusion_matrix))  # all ranks' shards summed

    # A second 1×2 run, from the manifest alone: what `trainyard reproduce` runs, in this process.
    report, _ = reproduce_model(manifest, SubprocessExecutor(), StoreSettings(backend="local", root=str(store_root)))
    assert report.summary().endswith(f"on 1×2: weights hash matches ({manifest.weights_sha256})")


@pytest.mark.slow
def test_killing_one_rank_fails_the_whole_run_within_bounded_time_naming_the_rank(local_store, store_root):
    settings = StoreSettings(backend="local", root=str(store_root))
    plan = make_plan("kill-rank", epochs=200, procs_per_node=2)
    job = training_job(plan, snapshot_of(local_store).dataset_hash)
    with seeing_log_line("epoch 1/200 ") as trained_an_epoch:
        run, raised = in_thread(lambda: SubprocessExecutor().run(job, plan.image, settings, deadline_s=900))
        assert trained_an_epoch.wait(600), "the two ranks never finished an epoch"
        os.kill(pid_of_rank(job.run_id, 1), signal.SIGKILL)
        killed_at = time.monotonic()
        run.join(FAILS_WITHIN_S)
    assert not run.is_alive(), f"the run still hangs {FAILS_WITHIN_S}s after rank 1 died"
    assert time.monotonic() - killed_at < FAILS_WITHIN_S
    assert len(raised) == 1 and isinstance(raised[0], RankFailed), raised
    message = str(raised[0])
    assert "rank 1 of 2 (local rank 1) exited with code -9 (SIGKILL)" in message.splitlines()[0]
    assert "[rank1]: trainyard-trainer: rank 1 verified dataset" in message
    assert not local_store.exists(job.result_output_key) and not list(local_store.list_keys("models/"))
    assert local_store.exists(job.outputs.trainer_log)  # the whole log is kept for whoever debugs it


@pytest.mark.slow
def test_a_rendezvous_whose_other_node_never_comes_fails_within_its_timeout_with_a_clear_message(local_store, store_root):
    """Node 0 of a 2-node run, alone: the real trainer under torchrun's static rendezvous."""
    settings = StoreSettings(backend="local", root=str(store_root))
    job = training_job(make_plan("lonely"), "0" * 64).model_copy(update={"nodes": 2})
    executor = SubprocessExecutor()
    started = time.monotonic()
    with reserved_port() as port:
        command = torchrun_command(sys.executable, str(DIGITS_TRAINER), job.shape,
                                   Rendezvous(master_addr="127.0.0.1", master_port=port, node_rank="0", timeout_s=5))
        outcome = run_trainer_process(command, env=executor.environment(job, settings, str(store_root.parent)),
                                      deadline_s=600, secrets={})
    with pytest.raises(RendezvousFailed) as err:
        trainer_result(job, outcome, settings)
    assert time.monotonic() - started < FAILS_WITHIN_S
    assert str(err.value).startswith("trainer 'digits-cnn': the 2 nodes of a 2×1 run did not meet; node 0: ")
    assert "1/2 clients joined" in str(err.value)


@pytest.mark.slow
def test_a_scheduled_two_process_run_is_replayed_by_a_backfill_on_its_pinned_shape_to_the_same_weights(
    airflow_db, tmp_path, monkeypatch
):
    from datetime import UTC, date, datetime

    from steps.lifecycle.model_registry import load_manifest
    from steps.lifecycle.replay import backfill_plan, verify_reproduction
    from steps.lifecycle.train import run_training
    from steps.store.local import LocalStore
    from trainyard.local_airflow import run_dag

    root = tmp_path / "store"
    monkeypatch.setenv("TRAINYARD_STORE", "local")
    monkeypatch.setenv("TRAINYARD_STORE_ROOT", str(root))
    run = run_dag("scheduled_retraining", {"epochs": 1, "procs_per_node": 2}, logical_date=datetime(2026, 1, 12, 3, tzinfo=UTC))
    assert run.state == "success", run.failed_tasks
    store = LocalStore(root)
    manifest = load_manifest(store, "digits-digits-cnn", 1)
    assert (manifest.nodes, manifest.procs_per_node, manifest.world_size, manifest.backend) == (1, 2, 2, "gloo")

    replay = backfill_plan(store, make_plan("backfill-ddp"), date(2026, 1, 12), "exact")  # asks for 1×1; the pin wins
    assert (replay.replay, replay.nodes, replay.procs_per_node) == ("exact", 1, 2)
    result = run_training(replay, replay.pinned_dataset_hash, SubprocessExecutor(), StoreSettings(backend="local", root=str(root)))
    assert (result.world_size, result.backend) == (2, "gloo")
    assert verify_reproduction(store, replay, result.weights_sha256).weights_match


def test_the_training_identity_tells_world_sizes_apart_but_not_how_ranks_are_spread_over_nodes():
    from steps.lifecycle.training_identity import identity_for

    one = identity_for(make_plan("identity"), "a" * 64)
    by_shape = {
        shape: identity_for(make_plan("identity").model_copy(update=dict(zip(("nodes", "procs_per_node"), shape, strict=True))), "a" * 64)
        for shape in ((1, 2), (2, 1), (1, 1))
    }
    assert by_shape[(1, 1)].sha256 == one.sha256  # a one-process identity hashes as it did before world_size existed
    assert by_shape[(1, 2)].sha256 == by_shape[(2, 1)].sha256 != one.sha256
