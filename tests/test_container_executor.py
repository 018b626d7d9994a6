"""The container executor: the rendered pod maps to `podman run` faithfully (fast, unmarked),
and the built trainer image trains the same weights as the subprocess executor (containers)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from steps.catalog.catalog import Resources
from steps.executors.base import TrainerFailed, TrainerStopped
from steps.executors.container_executor import ContainerExecutor, podman_args
from steps.hashing import sha256_file
from steps.images.code_hash import TRAINER_SHARED_CODE
from steps.images.trainer_image import TrainerImage
from steps.kubernetes.pod_spec import PodPlacement, render_trainer_pod
from steps.store import StoreSettings
from steps.training.contract import TrainingJob
from steps.training.trainer_env import trainer_public_env

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALGORITHMS = ("digits-cnn", "intent-classification")
DIGEST = "sha256:" + "ab" * 32
ACCESS_KEY = "trainyard-access-7c1e"
SECRET_KEY = "s3cr3t-value-that-must-not-leak-91f0"
# The first marked test builds the images when `make test-containers` has not: ~15 min cold.
COLD_BUILD_TIMEOUT_S = 3600
FAST = {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "seed": 7}


def _job(**overrides) -> TrainingJob:
    values = dict(
        run_id="tests-r1-0123456789",
        algorithm="digits-cnn",
        dataset_name="digits",
        dataset_hash="d" * 64,
        dataset_snapshot_key="datasets/digits/snapshots/" + "d" * 64 + ".json",
        output_prefix="runs/tests-r1-0123456789",
        seed=7,
        split_seed=11,
        test_fraction=0.2,
        hyperparameters={"epochs": 2, "learning_rate": 0.01, "batch_size": 64},
        num_threads=1,
    )
    return TrainingJob(**{**values, **overrides})


def _image() -> TrainerImage:
    return TrainerImage(
        algorithm="digits-cnn",
        image_reference="127.0.0.1:5000/trainyard/digits-cnn:1.0.0",
        image_digest=DIGEST,
        entrypoint="images/digits-cnn/train.py",
    )


def _placement(**overrides) -> PodPlacement:
    values = dict(team="local", namespace="local", resources=Resources(), active_deadline_s=600, secret_name="store-creds")
    return PodPlacement(**{**values, **overrides})


def _minio_settings() -> StoreSettings:
    return StoreSettings(
        backend="minio", minio_endpoint="127.0.0.1:9000", minio_access_key=ACCESS_KEY, minio_secret_key=SECRET_KEY
    )


def _pod(store: StoreSettings | None = None, **placement):
    return render_trainer_pod(_job(), _image(), store or _minio_settings(), _placement(**placement))


def _secrets() -> dict[str, str]:
    return {"TRAINYARD_MINIO_ACCESS_KEY": ACCESS_KEY, "TRAINYARD_MINIO_SECRET_KEY": SECRET_KEY}


def _flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == flag]


def test_container_runs_the_pods_digest_pinned_image_as_uid_10001_with_a_locked_down_root():
    args = podman_args(_pod(), _secrets())
    assert args[0] == "run"
    assert args[-1] == f"127.0.0.1:5000/trainyard/digits-cnn@{DIGEST}"  # the same digest, no tag
    assert _flag_values(args, "--runtime") == ["runc"]
    assert _flag_values(args, "--network") == ["host"]  # reaches a MinIO on the host's loopback
    assert _flag_values(args, "--user") == ["10001:10001"]
    assert "--read-only" in args and "--read-only-tmpfs=false" in args
    assert _flag_values(args, "--cap-drop") == ["ALL"]
    assert _flag_values(args, "--security-opt") == ["no-new-privileges"]
    assert "--rm" in args
    assert _flag_values(args, "--pull") == ["never"]  # the executor pulls by digest first, never a tag


def test_container_gets_exactly_the_pods_public_env():
    args = podman_args(_pod(), _secrets())
    passed = dict(e.split("=", 1) for e in _flag_values(args, "-e") if "=" in e)
    expected = {**trainer_public_env(_job(), _minio_settings()), "TRAINYARD_SCRATCH_DIR": "/scratch", "HOME": "/scratch",
                "TMPDIR": "/scratch"}
    assert passed == expected


def test_secret_values_never_appear_on_the_command_line_only_their_names():
    args = podman_args(_pod(), _secrets())
    assert not any(SECRET_KEY in arg or ACCESS_KEY in arg for arg in args)
    bare = [e for e in _flag_values(args, "-e") if "=" not in e]
    assert bare == ["TRAINYARD_MINIO_ACCESS_KEY", "TRAINYARD_MINIO_SECRET_KEY"]


def test_a_secret_the_store_settings_lack_is_refused_by_name_without_any_value():
    with pytest.raises(ValueError, match="TRAINYARD_MINIO_SECRET_KEY") as raised:
        podman_args(_pod(), {"TRAINYARD_MINIO_ACCESS_KEY": ACCESS_KEY})
    assert ACCESS_KEY not in str(raised.value)


def test_scratch_is_the_given_host_dir_or_else_a_tmpfs():
    bound = podman_args(_pod(), _secrets(), empty_dirs={"scratch": "/var/tmp/scratch-1"})
    assert _flag_values(bound, "-v") == ["/var/tmp/scratch-1:/scratch"]
    assert _flag_values(podman_args(_pod(), _secrets()), "--tmpfs") == ["/scratch:rw,mode=1777"]


def test_a_local_store_is_mounted_at_the_same_path_the_trainer_is_told(tmp_path):
    store = StoreSettings(backend="local", root=str(tmp_path / "store"))
    args = podman_args(_pod(store), {}, empty_dirs={"scratch": "/var/tmp/s"})
    assert f"{tmp_path / 'store'}:{tmp_path / 'store'}" in _flag_values(args, "-v")
    assert f"TRAINYARD_STORE_ROOT={tmp_path / 'store'}" in _flag_values(args, "-e")


def test_resource_limits_become_cpu_and_memory_limits():
    args = podman_args(_pod(resources=Resources(cpu_limit="1500m", memory_limit="3Gi")), _secrets())
    assert _flag_values(args, "--cpus") == ["1.5"]
    assert _flag_values(args, "--memory") == ["3g"]


def test_docker_gets_the_same_run_without_podman_only_flags():
    podman = podman_args(_pod(), _secrets())
    docker = podman_args(_pod(), _secrets(), runtime="docker")
    assert "--runtime" not in docker and "--read-only-tmpfs=false" not in docker
    assert docker[-1] == podman[-1]
    assert _flag_values(docker, "-e") == _flag_values(podman, "-e")


def test_a_distributed_jobs_container_starts_torchrun_in_place_of_the_images_entrypoint():
    pod = render_trainer_pod(_job(procs_per_node=2), _image(), _minio_settings(), _placement())
    args = podman_args(pod, _secrets())
    (entrypoint,) = _flag_values(args, "--entrypoint")
    command = json.loads(entrypoint)
    assert command[:3] == ["/opt/venv/bin/python", "-m", "torch.distributed.run"] and "--standalone" in command
    assert command[-1] == "/app/images/digits-cnn/train.py"
    assert args[-1] == f"127.0.0.1:5000/trainyard/digits-cnn@{DIGEST}"  # nothing after the image: no CMD
    assert not _flag_values(podman_args(_pod(), _secrets()), "--entrypoint")  # one process: the image's own


def test_an_unknown_container_runtime_is_refused_with_the_supported_ones():
    with pytest.raises(ValueError, match="podman or docker"):
        ContainerExecutor(runtime="nerdctl")


def test_a_local_store_the_trainer_cannot_write_is_refused_before_anything_runs(tmp_path):
    root = tmp_path / "store"
    root.mkdir(mode=0o755)
    with pytest.raises(TrainerFailed, match="not writable by the trainer's uid 10001.*TRAINYARD_STORE=minio"):
        ContainerExecutor().run(_job(), _image(), StoreSettings(backend="local", root=str(root)), deadline_s=60)


def _copied_sources(dockerfile: Path) -> list[str]:
    """Source paths of every COPY without --from (joined across line continuations)."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    sources = []
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and not any(p.startswith("--from") for p in parts):
            sources += [p.rstrip("/") for p in parts[1:-1] if not p.startswith("--")]
    return sources


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_image_ships_every_module_the_trainer_imports_and_nothing_else(algorithm):
    dockerfile = PROJECT_ROOT / "images" / algorithm / "Dockerfile"
    copied = set(_copied_sources(dockerfile))
    assert set(TRAINER_SHARED_CODE) <= copied
    assert copied - set(TRAINER_SHARED_CODE) == {f"images/{algorithm}/requirements.lock", f"images/{algorithm}/train.py"}
    allowed = {
        line[1:].rstrip("/")
        for line in (dockerfile.parent / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert allowed == copied  # the build context holds what the image copies, and only that


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_image_runs_the_trainer_as_non_root_from_a_digest_pinned_base(algorithm):
    text = (PROJECT_ROOT / "images" / algorithm / "Dockerfile").read_text()
    assert text.count("FROM ") == 1 and "FROM ${BASE_IMAGE}\n" in text  # one stage on the pinned base
    assert "apt-get purge -y --auto-remove python3-venv" in text  # the venv tooling does not ship
    assert "USER 10001:10001" in text
    assert f'ENTRYPOINT ["/opt/venv/bin/python", "/app/images/{algorithm}/train.py"]' in text
    assert "--require-hashes" in text


# --- the real thing: podman, the built images (tests/trainer_images.py), a registry, MinIO ---


@pytest.mark.containers
@pytest.mark.minio
@pytest.mark.registry
@pytest.mark.timeout(COLD_BUILD_TIMEOUT_S)
@pytest.mark.slow
def test_training_pipeline_in_a_container_registers_the_weights_the_subprocess_run_registers(
    registered_images, airflow_db, monkeypatch
):
    from steps.lifecycle.model_registry import load_manifest
    from steps.lifecycle.plan import run_key_for
    from steps.lifecycle.register import RegisteredVersion
    from steps.store import open_store
    from tests.minio_server import unique_bucket_prefix
    from trainyard.local_airflow import run_dag

    settings, env, pinned = registered_images
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    manifests = {}
    # The container run uses the store build-images.sh registered the digests in; the
    # subprocess run gets buckets of its own so it is a first registration too.
    for executor, bucket_prefix in (("container", settings.bucket_prefix), ("subprocess", unique_bucket_prefix())):
        monkeypatch.setenv("TRAINYARD_EXECUTOR", executor)
        monkeypatch.setenv("TRAINYARD_MINIO_BUCKET_PREFIX", bucket_prefix)
        run = run_dag("training_pipeline", {"dataset": "digits", "algorithm": "digits-cnn", **FAST})
        assert run.state == "success", (executor, run.failed_tasks)
        store = open_store(replace(settings, bucket_prefix=bucket_prefix))
        key = f"runs/{run_key_for(run.dag_id, run.run_id)}/registered.json"
        registered = RegisteredVersion.model_validate_json(store.get_bytes(key))
        manifests[executor] = load_manifest(store, registered.model_name, registered.version)
        if executor == "container":
            log = store.get_bytes(f"runs/{run_key_for(run.dag_id, run.run_id)}/train/trainer.log").decode()

    in_container, in_subprocess = manifests["container"], manifests["subprocess"]
    # The digest build-images.sh pushed is the one the algorithm registry handed the run.
    assert in_container.trainer.pinned_reference == pinned["digits-cnn"]
    assert in_container.executor == "container" and in_subprocess.executor == "subprocess"
    assert in_container.dataset.dataset_hash == in_subprocess.dataset.dataset_hash
    assert in_container.weights_sha256 == in_subprocess.weights_sha256
    assert in_container.metrics == in_subprocess.metrics
    assert in_container.torch_version == in_subprocess.torch_version == "2.15.0"
    assert "trainyard-trainer: train done" in log
    assert settings.minio_secret_key not in log


@pytest.mark.containers
@pytest.mark.minio
@pytest.mark.registry
@pytest.mark.timeout(COLD_BUILD_TIMEOUT_S)
def test_a_local_store_directory_is_shared_with_the_container_at_the_same_path(registered_images, tmp_path):
    from steps.lifecycle.train import training_job
    from steps.store.local import LocalStore
    from tests.pipeline_fixtures import make_plan, snapshot_of

    _, _, pinned = registered_images
    root = tmp_path / "store"
    snapshot = snapshot_of(LocalStore(root), "intents")
    for path in [root, *root.rglob("*")]:  # what a user does to share a store with uid 10001
        os.lchown(path, 10001, 10001)
    repository, digest = pinned["intent-classification"].split("@")
    image = TrainerImage(algorithm="intent-classification", image_reference=repository, image_digest=digest)
    job = training_job(make_plan("local-store", dataset="intents", algorithm="intent-classification"), snapshot.dataset_hash)
    result = ContainerExecutor().run(job, image, StoreSettings(backend="local", root=str(root)), deadline_s=900)
    weights = root / job.weights_output_key
    assert weights.is_file() and result.weights_sha256 == sha256_file(weights)
    assert weights.resolve().stat().st_uid == 10001  # written from inside the container, as the trainer user


@pytest.mark.containers
@pytest.mark.minio
@pytest.mark.registry
@pytest.mark.timeout(COLD_BUILD_TIMEOUT_S)
def test_a_failing_trainer_in_a_container_reports_its_last_log_lines(registered_images):
    settings, _, pinned = registered_images
    repository, digest = pinned["intent-classification"].split("@")
    image = TrainerImage(algorithm="intent-classification", image_reference=repository, image_digest=digest)
    job = _job(algorithm="intent-classification", dataset_name="intents", run_id="tests-missing-snapshot",
               output_prefix="runs/tests-missing-snapshot")  # no such snapshot in the store
    with pytest.raises(TrainerFailed) as raised:
        ContainerExecutor().run(job, image, settings, deadline_s=600)
    message = str(raised.value)
    assert "exited with code 1" in message
    assert "trainyard-trainer: error:" in message
    assert settings.minio_secret_key not in message


# --- distributed: torchrun inside one container, or one container per node ------------------------


@pytest.mark.containers
@pytest.mark.minio
@pytest.mark.registry
@pytest.mark.timeout(COLD_BUILD_TIMEOUT_S)
@pytest.mark.slow
def test_two_node_runs_in_containers_are_bit_identical_and_equal_two_processes_in_one_container(
    registered_images, airflow_db, monkeypatch
):
    """Two 2×1 runs (the DAG's, then `reproduce`'s) and one 1×2 run: the same world size, data and
    seeds give the same weights, however the ranks are spread over nodes (docs/trainer-contract.md)."""
    from steps.lifecycle.model_registry import load_manifest
    from steps.lifecycle.plan import run_key_for
    from steps.lifecycle.register import RegisteredVersion
    from steps.lifecycle.reproduce import reproduce_model, reproduction_job
    from steps.store import open_store
    from tests.minio_server import unique_bucket_prefix
    from trainyard.local_airflow import run_dag

    settings, env, _ = registered_images
    for name, value in {**env, "TRAINYARD_EXECUTOR": "container"}.items():
        monkeypatch.setenv(name, value)
    run = run_dag("training_pipeline", {"dataset": "digits", "algorithm": "digits-cnn", "nodes": 2, **FAST})
    assert run.state == "success", run.failed_tasks
    store = open_store(settings)
    registered = RegisteredVersion.model_validate_json(
        store.get_bytes(f"runs/{run_key_for(run.dag_id, run.run_id)}/registered.json")
    )
    manifest = load_manifest(store, registered.model_name, registered.version)
    assert (manifest.nodes, manifest.procs_per_node, manifest.world_size, manifest.backend) == (2, 1, 2, "gloo")
    assert manifest.executor == "container"

    report, _ = reproduce_model(manifest, ContainerExecutor(), settings, run_key=f"reproduce-{unique_bucket_prefix()}")
    assert report.weights_match and report.shape == "2×1", report.summary()

    one_node = reproduction_job(manifest, f"one-node-{unique_bucket_prefix()}").model_copy(update={"nodes": 1, "procs_per_node": 2})
    result = ContainerExecutor().run(one_node, manifest.trainer, settings, deadline_s=900)
    assert (result.world_size, result.backend) == (2, "gloo")
    assert result.weights_sha256 == manifest.weights_sha256  # 1×2 == 2×1
    assert result.metrics == manifest.metrics


@pytest.mark.containers
@pytest.mark.minio
@pytest.mark.registry
@pytest.mark.timeout(COLD_BUILD_TIMEOUT_S)
@pytest.mark.slow
def test_killing_a_rank_in_one_node_container_fails_every_node_and_removes_the_containers(registered_images):
    import signal
    import time

    from steps.executors.rank_failure import RankFailed
    from steps.lifecycle.train import training_job
    from steps.store import open_store
    from tests.pipeline_fixtures import make_plan, snapshot_of
    from tests.rank_processes import in_thread, pid_of_rank, seeing_log_line

    settings, _, pinned = registered_images
    repository, digest = pinned["digits-cnn"].split("@")
    image = TrainerImage(algorithm="digits-cnn", image_reference=repository, image_digest=digest,
                         entrypoint="images/digits-cnn/train.py")
    store = open_store(settings)
    job = training_job(make_plan("kill-node-rank", epochs=200), snapshot_of(store).dataset_hash).model_copy(update={"nodes": 2})
    with seeing_log_line("epoch 1/200 ") as trained_an_epoch:  # the trainer's progress line
        run, raised = in_thread(lambda: ContainerExecutor().run(job, image, settings, deadline_s=1200))
        assert trained_an_epoch.wait(900), "the two nodes never finished an epoch"
        os.kill(pid_of_rank(job.run_id, 1), signal.SIGKILL)  # rank 1 is node 1's only worker
        killed_at = time.monotonic()
        run.join(180)
    assert not run.is_alive(), "node 0 still runs 180 s after rank 1 died on node 1"
    assert time.monotonic() - killed_at < 180
    assert len(raised) == 1 and isinstance(raised[0], RankFailed), raised
    assert str(raised[0]).startswith("trainer 'digits-cnn': rank 1 of 2 (node 1, local rank 0) exited with code -9 (SIGKILL)")
    assert settings.minio_secret_key not in str(raised[0])
    assert not store.exists(job.result_output_key)
    env = {**os.environ, "CONTAINERS_CONF": str(PROJECT_ROOT / "images" / "containers.conf")}
    left = subprocess.run(["podman", "ps", "--all", "--format", "{{.Names}}"], env=env, capture_output=True, text=True)
    assert not [name for name in left.stdout.split() if job.run_id[-10:] in name]


def _image_from_trainer(registry_host: str, base_reference: str, script: str, name: str, tmp_path: Path) -> TrainerImage:
    """A trainer image whose train.py is `script`, built FROM a real trainer image and pushed
    to the session's registry, so the executor runs it exactly as it runs any pinned trainer."""
    ContainerExecutor().ensure_image(base_reference)
    context = tmp_path / name
    context.mkdir()
    (context / "train.py").write_text(script)
    (context / "Containerfile").write_text(
        f"FROM {base_reference}\nCOPY train.py /app/images/intent-classification/train.py\n"
    )
    env = {**os.environ, "CONTAINERS_CONF": str(PROJECT_ROOT / "images" / "containers.conf")}
    tag = f"{registry_host}/trainyard-tests/{name}:1"
    subprocess.run(["podman", "--runtime", "runc", "build", "-q", "-t", tag, str(context)], env=env, check=True,
                   capture_output=True, timeout=600)
    digest_file = context / "digest"
    subprocess.run(["podman", "push", "--quiet", "--tls-verify=false", "--digestfile", str(digest_file), tag],
                   env=env, check=True, capture_output=True, timeout=600)
    return TrainerImage(algorithm="intent-classification", image_reference=tag.rsplit(":", 1)[0],
                        image_digest=digest_file.read_text().strip())


@pytest.mark.containers
@pytest.mark.minio
@pytest.mark.registry
@pytest.mark.timeout(COLD_BUILD_TIMEOUT_S)
def test_container_executor_redacts_credentials_the_trainer_prints(registered_images, oci_registry, tmp_path, caplog):
    from tests.test_secret_redaction import LEAKY_TRAINER, redacted_everywhere

    settings, _, pinned = registered_images
    image = _image_from_trainer(oci_registry.host, pinned["intent-classification"], LEAKY_TRAINER, "leaky", tmp_path)
    redacted_everywhere(lambda job: ContainerExecutor().run(job, image, settings, deadline_s=600), settings, caplog)


HANGING_TRAINER = "import time\nprint('started, now hanging', flush=True)\ntime.sleep(3600)\n"


@pytest.mark.containers
@pytest.mark.minio
@pytest.mark.registry
@pytest.mark.timeout(COLD_BUILD_TIMEOUT_S)
def test_a_trainer_container_past_its_deadline_is_removed_and_fails_naming_the_deadline(
    registered_images, oci_registry, tmp_path
):
    settings, _, pinned = registered_images
    image = _image_from_trainer(oci_registry.host, pinned["intent-classification"], HANGING_TRAINER, "hangs", tmp_path)
    job = _job(algorithm="intent-classification", dataset_name="intents", run_id="tests-deadline-0123456789",
               output_prefix="runs/tests-deadline-0123456789")
    deadline_s = 30  # container start-up on a loaded machine fits well inside; the trainer never ends
    with pytest.raises(TrainerFailed, match=f"exceeded its deadline \\(deadline {deadline_s}s\\)") as failed:
        ContainerExecutor().run(job, image, settings, deadline_s=deadline_s)
    assert "started, now hanging" in str(failed.value)
    env = {**os.environ, "CONTAINERS_CONF": str(PROJECT_ROOT / "images" / "containers.conf")}
    left = subprocess.run(["podman", "ps", "--all", "--quiet", "--filter", "label=trainyard.io/run-id=tests-deadline-0123456789"],
                          env=env, capture_output=True, text=True, check=True)
    assert left.stdout.strip() == "", "the container outlived its deadline"


@pytest.mark.containers
@pytest.mark.minio
@pytest.mark.registry
@pytest.mark.timeout(COLD_BUILD_TIMEOUT_S)
def test_a_stopped_trainer_container_is_removed_and_the_step_says_it_was_stopped(
    registered_images, oci_registry, tmp_path
):
    """What a cancelled run's train task does on_kill: the container itself goes, not just `podman run`."""
    from steps.executors.trainer_process import stop_running_trainers

    settings, _, pinned = registered_images
    image = _image_from_trainer(oci_registry.host, pinned["intent-classification"], HANGING_TRAINER, "stopped", tmp_path)
    run_id = "tests-stopped-0123456789"
    job = _job(algorithm="intent-classification", dataset_name="intents", run_id=run_id, output_prefix=f"runs/{run_id}")
    env = {**os.environ, "CONTAINERS_CONF": str(PROJECT_ROOT / "images" / "containers.conf")}

    def containers(*status: str) -> list[str]:
        filters = [f"--filter=status={s}" for s in status]
        listed = subprocess.run(["podman", "ps", "--all", "--quiet", f"--filter=label=trainyard.io/run-id={run_id}",
                                 *filters], env=env, capture_output=True, text=True, check=True)
        return listed.stdout.split()

    outcome: dict = {}

    def run() -> None:
        try:
            ContainerExecutor().run(job, image, settings, deadline_s=3600)
        except TrainerFailed as exc:
            outcome["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 600
    while not containers("running"):
        assert runner.is_alive() and time.monotonic() < deadline, f"the trainer container never ran: {outcome}"
        time.sleep(1)

    assert stop_running_trainers() == 1
    runner.join(300)
    assert not runner.is_alive(), "the executor did not return after the stop"
    assert isinstance(outcome.get("error"), TrainerStopped), outcome
    assert containers() == [], "the trainer's container outlived the stop"
