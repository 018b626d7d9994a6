"""Render a model version's lineage chain for people."""
from __future__ import annotations

from steps.lifecycle.manifest import ModelManifest
from steps.lifecycle.model_registry import alias_history
from steps.lifecycle.training_reuse import identity_of
from steps.store import ArtifactStore


def lineage_lines(store: ArtifactStore, manifest: ModelManifest) -> list[str]:
    d, m, v = manifest.dataset, manifest.metrics, manifest.validation
    aliases = [a for a in alias_history(store, manifest.model_name) if a.version == manifest.version]
    study = (
        [f"  study             : trial {manifest.study.trial_number} of {manifest.study.study_id} (trainyard study)"]
        if manifest.study
        else []
    )
    identity = identity_of(manifest)
    suite = f", suite {v.suite_sha256[:12]}, Great Expectations {v.gx_version}" if v.suite_sha256 else ""
    return [
        f"{manifest.model_name}@{manifest.version}",
        f"  source partitions : {', '.join(d.partitions) or '(unpartitioned)'} from {d.source}"
        + (f" as of {d.as_of}" if d.as_of else ""),
        f"  snapshot hash     : {d.name}@{d.dataset_hash}",
        f"  validation        : {'passed' if v.success else 'FAILED'} ({v.expectations_evaluated} expectations{suite}) "
        f"{v.report_key}" + (f", reused from run {v.reused_from}" if v.reused_from else ""),
        f"  training identity : {identity.sha256}"
        + ("" if manifest.training_identity else " (derived: a v1 manifest does not record it)"),
        f"                      {identity.describe()}",
        f"  trainer           : {manifest.trainer.pinned_reference} ({manifest.trainer.image_reference}, {manifest.executor})",
        f"  processes         : {manifest.shape.describe()}, backend {manifest.backend}, {manifest.num_threads} thread(s) each",
        f"  run               : {manifest.airflow.dag_id} / {manifest.airflow.run_id} "
        f"(logical date {manifest.airflow.logical_date or '-'}) seed={manifest.seed} split_seed={manifest.split_seed}",
        f"  metrics           : accuracy={m.accuracy:.4f} macro_f1={m.macro_f1:.4f} loss={m.loss:.4f} "
        f"on eval set {d.eval_set_hash[:12]}",
        *study,
        f"  weights           : sha256 {manifest.weights_sha256}",
        "  alias history     : "
        + (", ".join(f"{a.alias} at {a.set_at[:19]}" for a in aliases) or "never an alias"),
    ]
