"""Render a model version's lineage chain for people."""
from __future__ import annotations

from steps.lifecycle.manifest import LEARNING_CURVE_FILE, TENSORBOARD_EVENTS_FILE, ModelManifest
from steps.lifecycle.model_registry import alias_history, version_key
from steps.lifecycle.run_status import read_run_status, resume_line
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
        *training_lines(store, manifest),
        "  alias history     : "
        + (", ".join(f"{a.alias} at {a.set_at[:19]}" for a in aliases) or "never an alias"),
    ]


def training_lines(store: ArtifactStore, manifest: ModelManifest) -> list[str]:
    """How the weights were trained: epochs, resume, earlier failed tries, and where to watch the curves."""
    epochs = f"{manifest.epochs_completed} epochs" if manifest.epochs_completed is not None else "epochs not recorded"
    lines = [f"  training          : {epochs}; resumed: {resume_line(manifest.resumed)}"]
    for failure in read_run_status(store, manifest.run_key).failures:
        attempt = f" on try {failure.try_number}" if failure.try_number else ""
        lines.append(f"  earlier try failed: {failure.step}{attempt} ({failure.kind}): {failure.reason}")
    ref = f"{manifest.model_name}@{manifest.version}"
    if manifest.has_file(LEARNING_CURVE_FILE):
        lines.append(f"  learning curve    : {version_key(manifest.model_name, manifest.version, LEARNING_CURVE_FILE)}")
    if manifest.has_file(TENSORBOARD_EVENTS_FILE):
        lines.append(
            f"  tensorboard       : {version_key(manifest.model_name, manifest.version, TENSORBOARD_EVENTS_FILE)} "
            f"(trainyard tensorboard {ref})"
        )
    return lines
