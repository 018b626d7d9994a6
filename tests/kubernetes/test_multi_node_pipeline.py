"""training_pipeline at 2 nodes x 1 process on the real cluster, through the DAG: `train_on` branches
to `train_nodes`, TrainerJobOperator (the cncf provider's KubernetesJobOperator) runs the Indexed Job
and its headless Service in the team namespace, the ranks meet over CoreDNS, and the registered model
has the weights the subprocess executor trains at 1 node x 2 processes, its shape in the manifest, and
a learning curve.

tests/kubernetes/test_distributed_job.py runs the rendered Job directly; this is the Airflow path.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from steps.lifecycle.model_registry import load_manifest
from steps.lifecycle.plan import run_key_for
from steps.lifecycle.register import RegisteredVersion
from steps.store import open_store
from steps.store.run_layout import RunLayout
from tests.kubernetes.pipeline_tier import KubernetesPipelineTier
from tests.minio_server import unique_bucket_prefix

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUN = {"dataset": "digits", "algorithm": "digits-cnn", "epochs": 2, "batch_size": 64, "learning_rate": 0.01, "seed": 7}
# Two pods' start-up, the rendezvous and 2 epochs over gloo on a loaded 2-core node; plus the
# subprocess run it is compared with.
RUN_TIMEOUT_S = 1800


def _catalog_with_small_cpu_requests(tmp_path: Path) -> Path:
    """Both nodes' pods share the tier's one 2-core node: a full core each (the default request)
    would leave the second Pending behind the XCom sidecars and the cluster's own pods."""
    catalog = yaml.safe_load((PROJECT_ROOT / "config" / "algorithms.yaml").read_text())
    catalog["digits-cnn"]["resources"]["cpu_request"] = "250m"
    path = tmp_path / "algorithms.yaml"
    path.write_text(yaml.safe_dump(catalog))
    return path


@pytest.mark.kubernetes
@pytest.mark.timeout(RUN_TIMEOUT_S)
def test_a_two_node_run_goes_through_the_job_operator_and_registers_the_one_node_two_process_weights(
    kubernetes_pipeline: KubernetesPipelineTier, airflow_db, monkeypatch, tmp_path
):
    from trainyard.local_airflow import run_dag

    tier = kubernetes_pipeline
    monkeypatch.setenv("TRAINYARD_ALGORITHMS_CATALOG", str(_catalog_with_small_cpu_requests(tmp_path)))

    def registered(prefix: str, run):
        store = open_store(replace(tier.store, bucket_prefix=prefix))
        version = RegisteredVersion.model_validate_json(store.get_bytes(RunLayout(run_key_for(run.dag_id, run.run_id)).registered))
        return store, load_manifest(store, version.model_name, version.version)

    def run_with(executor: str, shape: dict):
        prefix = unique_bucket_prefix()
        for name, value in {**tier.env(executor), "TRAINYARD_MINIO_BUCKET_PREFIX": prefix}.items():
            monkeypatch.setenv(name, value)
        run = run_dag("training_pipeline", {**RUN, **shape})
        assert run.state == "success", (run.failed_tasks, run.upstream_failed_tasks)
        return prefix, run

    prefix, two_nodes = run_with("kubernetes", {"nodes": 2, "procs_per_node": 1})
    # The branch took the Indexed Job; the one-pod task never ran.
    assert "train" in two_nodes.skipped_tasks and "train_nodes" not in two_nodes.skipped_tasks
    store, manifest = registered(prefix, two_nodes)
    assert manifest.executor == "kubernetes" and (manifest.nodes, manifest.procs_per_node, manifest.world_size) == (2, 1, 2)
    assert manifest.backend == "gloo"
    curve = store.get_bytes(RunLayout(run_key_for(two_nodes.dag_id, two_nodes.run_id)).train.learning_curve)
    assert curve.startswith(b"\x89PNG")

    reference_prefix, one_node = run_with("subprocess", {"nodes": 1, "procs_per_node": 2})
    _, reference = registered(reference_prefix, one_node)
    assert reference.world_size == 2
    # Same ranks, same shards, same all-reduced gradients: where the processes ran does not matter.
    assert manifest.weights_sha256 == reference.weights_sha256
