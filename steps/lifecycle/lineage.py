"""Render a model version's lineage chain for people."""
from __future__ import annotations

from steps.lifecycle.manifest import ModelManifest
from steps.lifecycle.model_registry import alias_history
from steps.store import ArtifactStore


def lineage_lines(store: ArtifactStore, manifest: ModelManifest) -> list[str]:
    d, m = manifest.dataset, manifest.metrics
    aliases = [a for a in alias_history(store, manifest.model_name) if a.version == manifest.version]
    return [
        f"{manifest.model_name}@{manifest.version}",
        f"  source partitions : {', '.join(d.partitions) or '(unpartitioned)'} from {d.source}"
        + (f" as of {d.as_of}" if d.as_of else ""),
        f"  snapshot hash     : {d.name}@{d.dataset_hash}",
        f"  validation        : {'passed' if manifest.validation.success else 'FAILED'} "
        f"({manifest.validation.expectations_evaluated} expectations) {manifest.validation.report_key}",
        f"  trainer           : {manifest.trainer.pinned_reference} ({manifest.trainer.image_reference}, {manifest.executor})",
        f"  processes         : {manifest.shape.describe()}, backend {manifest.backend}, {manifest.num_threads} thread(s) each",
        f"  run               : {manifest.airflow.dag_id} / {manifest.airflow.run_id} "
        f"(logical date {manifest.airflow.logical_date or '-'}) seed={manifest.seed} split_seed={manifest.split_seed}",
        f"  metrics           : accuracy={m.accuracy:.4f} macro_f1={m.macro_f1:.4f} loss={m.loss:.4f} "
        f"on eval set {d.eval_set_hash[:12]}",
        f"  weights           : sha256 {manifest.weights_sha256}",
        "  alias history     : "
        + (", ".join(f"{a.alias} at {a.set_at[:19]}" for a in aliases) or "never an alias"),
    ]
