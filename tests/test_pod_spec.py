"""The trainer pod as Kubernetes would receive it, rendered by TrainerPodOperator's own
build_pod_request_obj / dry_run. These tests mock nothing and talk to no cluster: a
Kubernetes API server cannot run on this machine, and rendering does not need one."""
from __future__ import annotations

import json

import pytest
from kubernetes.client import ApiClient

from steps.catalog.catalog import AlgorithmEntry
from steps.catalog.teams import load_teams
from steps.images.trainer_image import TrainerImage
from steps.lifecycle.plan import RunPlan

DIGEST = "sha256:" + "ab12" * 16
DATASET_HASH = "cd34" * 16
ACCESS_KEY = "AKIA-never-in-a-pod-spec"
SECRET_KEY = "s3cr3t-never-in-a-pod-spec-9f8e7d"
RUN_KEY = "training_pipeline-manual__2026-11-24T08-00-00-00-00-4f2a9c0d1e"


def make_plan(*, team: str = "default", image_digest: str | None = DIGEST, image_reference: str | None = None) -> dict:
    image = TrainerImage(
        algorithm="digits-cnn",
        image_reference=image_reference or "127.0.0.1:5000/trainyard/digits-cnn:1.0.0",
        image_digest=image_digest,
        code_sha256=None if image_digest else "ee" * 32,
        entrypoint="images/digits-cnn/train.py",
    )
    plan = RunPlan(
        run_key=RUN_KEY,
        dag_id="training_pipeline",
        airflow_run_id="manual__2026-11-24T08:00:00+00:00",
        logical_date=None,
        model_name="digits-digits-cnn",
        dataset="digits",
        dataset_source="/data/digits",
        schema_name="digits",
        as_of=None,
        algorithm="digits-cnn",
        image=image,
        hyperparameters={"epochs": 2, "learning_rate": 0.005, "batch_size": 64},
        seed=42,
        split_seed=20260101,
        test_fraction=0.2,
        num_threads=1,
        deadline_s=3600,
        team=team,
        promote=True,
        replay="none",
        executor="kubernetes",
    )
    return plan.model_dump(mode="json")


SNAPSHOT = {"dataset": "digits", "dataset_hash": DATASET_HASH}


@pytest.fixture
def minio_env(monkeypatch):
    """The worker's store settings: MinIO, with credentials the pod must never carry inline."""
    monkeypatch.setenv("TRAINYARD_STORE", "minio")
    monkeypatch.setenv("TRAINYARD_MINIO_ENDPOINT", "minio.trainyard.svc:9000")
    monkeypatch.setenv("TRAINYARD_MINIO_ACCESS_KEY", ACCESS_KEY)
    monkeypatch.setenv("TRAINYARD_MINIO_SECRET_KEY", SECRET_KEY)
    monkeypatch.delenv("TRAINYARD_EXECUTOR", raising=False)
    # Each team's pods are created through its own connection (config/teams.yaml kubernetes_conn_id).
    for team in ("vision", "nlp"):
        monkeypatch.setenv(f"AIRFLOW_CONN_KUBERNETES_{team.upper()}", '{"conn_type": "kubernetes"}')


def operator(**kwargs):
    from operators.train_pod import TrainerPodOperator

    kwargs.setdefault("plan", make_plan(team=kwargs.get("team", "default")))
    kwargs.setdefault("snapshot", SNAPSHOT)
    return TrainerPodOperator(**kwargs)


def rendered(**kwargs) -> dict:
    """The pod as the API server would receive it (camelCase JSON)."""
    pod = operator(**kwargs).build_pod_request_obj(dry_run=True)
    return ApiClient().sanitize_for_serialization(pod)


def trainer(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "base")


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


def test_pod_runs_the_trainer_image_by_digest(minio_env):
    pod = rendered()
    assert trainer(pod)["image"] == f"127.0.0.1:5000/trainyard/digits-cnn@{DIGEST}"
    assert pod["metadata"]["annotations"]["trainyard.io/image"] == f"127.0.0.1:5000/trainyard/digits-cnn@{DIGEST}"


@pytest.mark.parametrize(
    "plan_kwargs, words",
    [
        ({"image_digest": None}, "has no digest"),
        ({"image_digest": "sha256:abc"}, "repo@sha256:<64 hex>"),
    ],
)
def test_image_without_a_full_digest_is_refused(minio_env, plan_kwargs, words):
    from steps.kubernetes.pod_spec import UnpinnedImage

    with pytest.raises(UnpinnedImage, match="digits-cnn") as refused:
        operator(plan=make_plan(**plan_kwargs)).build_pod_request_obj(dry_run=True)
    assert words in str(refused.value)


def test_trainer_contract_arrives_as_plain_env_and_credentials_as_secret_refs(minio_env):
    from steps.training.contract import TrainingJob

    env = env_of(trainer(rendered()))
    job = TrainingJob.from_env({name: e["value"] for name, e in env.items() if "value" in e})
    assert job.run_id == RUN_KEY and job.dataset_hash == DATASET_HASH and job.hyperparameters["epochs"] == 2
    assert env["TRAINYARD_STORE"]["value"] == "minio"
    assert env["TRAINYARD_MINIO_ENDPOINT"]["value"] == "minio.trainyard.svc:9000"
    for name in ("TRAINYARD_MINIO_ACCESS_KEY", "TRAINYARD_MINIO_SECRET_KEY"):
        assert "value" not in env[name]
        assert env[name]["valueFrom"] == {"secretKeyRef": {"name": "trainyard-store", "key": name}}


def test_no_secret_value_appears_anywhere_in_the_rendered_pod(minio_env, capsys):
    whole_pod = json.dumps(rendered())
    assert ACCESS_KEY not in whole_pod and SECRET_KEY not in whole_pod
    operator().dry_run()  # what `airflow tasks test`-style dry runs print
    printed = capsys.readouterr().out
    assert "TRAINYARD_MINIO_SECRET_KEY" in printed
    assert ACCESS_KEY not in printed and SECRET_KEY not in printed


def test_scratch_is_an_empty_dir_on_a_read_only_root(minio_env):
    pod = rendered()
    base = trainer(pod)
    assert env_of(base)["TRAINYARD_SCRATCH_DIR"]["value"] == "/scratch"
    mount = next(m for m in base["volumeMounts"] if m["mountPath"] == "/scratch")
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["emptyDir"] == {}
    assert base["securityContext"]["readOnlyRootFilesystem"] is True


def test_trainer_runs_unprivileged(minio_env):
    pod = rendered()
    context = trainer(pod)["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True  # covers the XCom sidecar too
    assert pod["spec"]["automountServiceAccountToken"] is False
    sidecar = next(c for c in pod["spec"]["containers"] if c["name"] == "airflow-xcom-sidecar")
    assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_resources_come_from_the_algorithm(minio_env):
    resources = trainer(rendered())["resources"]
    assert resources == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}


def test_gpu_run_asks_for_nvidia_gpus_and_lands_on_the_team_gpu_pool(minio_env):
    pod = rendered(team="vision", resource_overrides={"gpu_count": 2, "memory_limit": "16Gi"})
    assert pod["metadata"]["namespace"] == "trainyard-vision"
    assert trainer(pod)["resources"]["limits"] == {"cpu": "2", "memory": "16Gi", "nvidia.com/gpu": "2"}
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true", "trainyard.io/node-pool": "vision-gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert {"key": "trainyard.io/team", "operator": "Equal", "value": "vision", "effect": "NoSchedule"} in spec["tolerations"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["key"] == "nvidia.com/gpu.product"


def test_resource_overrides_arrive_as_json_text_from_a_template(minio_env):
    pod = rendered(team="nlp", resource_overrides='{"cpu_limit": "6", "cpu_request": "3"}')
    assert trainer(pod)["resources"]["limits"]["cpu"] == "6"
    assert trainer(pod)["resources"]["requests"]["cpu"] == "3"


@pytest.mark.parametrize(
    "team, overrides, bound",
    [
        ("default", {"gpu_count": 1}, "max_overrides.gpu=0"),
        ("default", {"cpu_limit": "16"}, "max_overrides.cpu=4"),
        ("nlp", {"memory_limit": "64Gi"}, "max_overrides.memory=16Gi"),
    ],
)
def test_overrides_beyond_the_team_bound_are_refused_naming_the_bound(minio_env, team, overrides, bound):
    from steps.kubernetes.pod_spec import PlacementError

    with pytest.raises(PlacementError) as refused:
        rendered(team=team, resource_overrides=overrides)
    assert bound in str(refused.value) and repr(team) in str(refused.value)


def test_request_above_limit_is_refused_before_the_api_server_sees_it():
    from steps.kubernetes.pod_spec import PlacementError, ResourceOverrides, placement_for

    algorithm = AlgorithmEntry(name="a", schema="digits", entrypoint="x", repository="r", defaults={}, history=[])
    with pytest.raises(PlacementError, match="cpu_request=3 is more than cpu_limit=2"):
        placement_for(algorithm, load_teams().team("default"), ResourceOverrides(cpu_request="3"))


def test_lifecycle_deadline_restart_policy_and_labels(minio_env):
    pod = rendered()
    assert pod["spec"]["activeDeadlineSeconds"] == 3600
    assert pod["spec"]["restartPolicy"] == "Never"
    labels = pod["metadata"]["labels"]
    assert labels["trainyard.io/run-id"] == RUN_KEY
    assert labels["trainyard.io/dataset-hash"] == DATASET_HASH[:12]
    assert labels["trainyard.io/image-digest"] == DIGEST.removeprefix("sha256:")[:12]
    assert labels["trainyard.io/algorithm"] == "digits-cnn"
    assert labels["trainyard.io/team"] == "default"


def test_label_values_are_valid_even_for_long_run_ids():
    import re

    from steps.kubernetes.pod_spec import label_value

    long_run = "backfill__2026-01-05T00:00:00+00:00-" + "x" * 80
    value = label_value(long_run)
    assert re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?", value)
    assert value != label_value(long_run + "y")  # still tells runs apart


def test_result_comes_back_through_the_xcom_sidecar(minio_env):
    pod = rendered()
    assert any(m["mountPath"] == "/airflow/xcom" for m in trainer(pod)["volumeMounts"])
    assert [c["name"] for c in pod["spec"]["containers"]] == ["base", "airflow-xcom-sidecar"]


def test_team_picks_namespace_pool_connection_and_whether_failed_pods_are_kept(minio_env):
    default, vision = operator(), operator(team="vision")
    assert (default.pool, default.on_finish_action.value) == ("trainyard-default", "delete_pod")
    assert (vision.pool, vision.on_finish_action.value) == ("trainyard-vision", "delete_succeeded_pod")
    assert (default.kubernetes_conn_id, vision.kubernetes_conn_id) == ("kubernetes_default", "kubernetes_vision")
    assert operator(keep_failed_pods=True).on_finish_action.value == "delete_succeeded_pod"
    assert vision.build_pod_request_obj(dry_run=True).metadata.namespace == "trainyard-vision"


def test_plan_for_another_team_is_refused(minio_env):
    with pytest.raises(Exception, match="run is for team 'nlp', but this task trains for team 'default'"):
        operator(plan=make_plan(team="nlp")).build_pod_request_obj(dry_run=True)


def test_local_store_is_refused_on_kubernetes(monkeypatch):
    monkeypatch.setenv("TRAINYARD_STORE", "local")
    with pytest.raises(Exception, match="needs TRAINYARD_STORE=minio"):
        operator().build_pod_request_obj(dry_run=True)


def test_unknown_team_is_refused_naming_the_configured_ones():
    from steps.catalog.catalog import UnknownName

    with pytest.raises(UnknownName, match="team 'visoin' is not configured; configured: default, nlp, vision"):
        load_teams().team("visoin")


def test_deploy_manifests_cover_every_configured_team():
    """A team added to config/teams.yaml without its namespace, quota, RBAC and Secret would fail at run time."""
    from pathlib import Path

    import yaml

    deploy = Path(__file__).resolve().parent.parent / "deploy"
    documents = [d for f in sorted(deploy.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d and "metadata" in d]
    by_kind: dict[str, set[str]] = {}
    for d in documents:
        by_kind.setdefault(d["kind"], set()).add(d["metadata"].get("namespace") or d["metadata"].get("name", ""))
    namespaces = {team.namespace for team in load_teams().teams.values()}
    for kind in ("Namespace", "ResourceQuota", "LimitRange", "Role", "RoleBinding", "Secret"):
        assert by_kind[kind] == namespaces, kind
    for role in (d for d in documents if d["kind"] == "Role"):
        verbs = {resource: set(rule["verbs"]) for rule in role["rules"] for resource in rule["resources"]}
        assert {"create", "get", "list", "watch", "delete"} <= verbs["pods"]
        assert verbs["pods/log"] == {"get"}
    for secret in (d for d in documents if d["kind"] == "Secret"):
        assert set(secret["stringData"].values()) == {"REPLACE_ME"}  # a template, never real values
