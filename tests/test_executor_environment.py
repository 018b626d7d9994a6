"""The embedded executor gives the trainer exactly the environment its pod would get."""
from __future__ import annotations

from steps.catalog.teams import load_teams
from steps.executors.subprocess_executor import SubprocessExecutor
from steps.images.trainer_image import TrainerImage
from steps.kubernetes.pod_spec import placement_for, render_trainer_pod
from steps.lifecycle.train import training_job
from steps.store import StoreSettings
from tests.pipeline_fixtures import catalog, make_plan

# Only what a process needs to find Python and scratch space differs between a local
# process and a container; everything the trainer contract says is identical.
PROCESS_ONLY = {"PATH", "PYTHONPATH", "PYTHONHASHSEED", "HOME", "TRAINYARD_SCRATCH_DIR", "TMPDIR"}


def test_subprocess_env_equals_the_pod_env_with_secrets_resolved():
    store = StoreSettings(backend="minio", minio_endpoint="minio:9000", minio_access_key="AK", minio_secret_key="SK")
    plan = make_plan("env-equality")
    job = training_job(plan, "a" * 64)
    local_env = SubprocessExecutor().environment(job, store, "/tmp/scratch")
    image = TrainerImage(algorithm="digits-cnn", image_reference="r/x:1", image_digest="sha256:" + "b" * 64)
    placement = placement_for(catalog().algorithm("digits-cnn"), load_teams().team("default"))
    pod = render_trainer_pod(job, image, store, placement)
    pod_env = {}
    for var in pod.spec.containers[0].env:
        if var.value_from is not None:  # a secretKeyRef: the local process gets the real value
            assert var.value_from.secret_key_ref.key == var.name
            pod_env[var.name] = {"TRAINYARD_MINIO_ACCESS_KEY": "AK", "TRAINYARD_MINIO_SECRET_KEY": "SK"}[var.name]
        else:
            pod_env[var.name] = var.value
    contract = {k: v for k, v in local_env.items() if k not in PROCESS_ONLY}
    assert contract == {k: v for k, v in pod_env.items() if k not in PROCESS_ONLY}
    assert pod_env["TRAINYARD_SCRATCH_DIR"] == pod_env["TMPDIR"] == "/scratch"
    assert local_env["TRAINYARD_SCRATCH_DIR"] == local_env["TMPDIR"] == "/tmp/scratch"
