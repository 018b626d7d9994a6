"""A TensorBoard log directory made from the store: one sub-directory per run, holding that run's event
file fetched through the store (sha256-verified, and checked against the manifest for a model version),
and a TensorBoard server on it. `refresh` fetches again what changed, so a run that is still
training keeps moving in the browser.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from steps.hashing import sha256_bytes
from steps.store import ArtifactStore, IntegrityError
from steps.training.contract import parse_epochs_jsonl
from steps.training.tensorboard_events import write_event_file

EVENTS_FILE = "events.tfevents"
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]+")


class EventSource(BaseModel):
    """Where one run's scalars come from: its event file, or (for runs trained before trainers wrote
    events) its metrics.jsonl, turned into events here."""

    model_config = ConfigDict(frozen=True)

    label: str  # the run's name in TensorBoard: MODEL@VERSION or a run key
    events_key: str | None = None
    events_sha256: str | None = None  # recorded by a model version's manifest
    metrics_key: str | None = None


def label_dir(logdir: Path, label: str) -> Path:
    return logdir / (_UNSAFE.sub("_", label).strip("._") or "run")


@dataclass
class TensorBoardLogdir:
    store: ArtifactStore
    root: Path
    _fetched: dict[str, str] = field(default_factory=dict, init=False)  # label -> sha256 of what is on disk
    _labels: dict[tuple[str | None, str | None], str] = field(default_factory=dict, init=False)  # source -> its label

    def add(self, sources: list[EventSource]) -> list[str]:
        """Fetch every source whose stored bytes changed since the last call; the labels fetched."""
        fetched = []
        for source in sources:
            self._relabel(source)
            if self._fetch(source):
                fetched.append(source.label)
        return fetched

    def _relabel(self, source: EventSource) -> None:
        """A source whose label changed (a study's trial went from running to completed) leaves its old
        directory: TensorBoard drops a run whose directory is gone, so the trial shows once, renamed."""
        identity = (source.events_key, source.metrics_key)
        old = self._labels.get(identity)
        if old is not None and old != source.label:
            shutil.rmtree(label_dir(self.root, old), ignore_errors=True)
            self._fetched.pop(old, None)
        self._labels[identity] = source.label

    def _fetch(self, source: EventSource) -> bool:
        target = label_dir(self.root, source.label)
        if source.events_key is not None:
            info = self.store.stat(source.events_key)
            if info is not None:
                if self._fetched.get(source.label) == info.sha256:
                    return False
                got = self.store.get_file(source.events_key, target / EVENTS_FILE)  # verified against its sha256
                if source.events_sha256 is not None and got.sha256 != source.events_sha256:
                    (target / EVENTS_FILE).unlink()
                    raise IntegrityError(
                        f"{source.events_key} has sha256 {got.sha256}, but {source.label}'s manifest records "
                        f"{source.events_sha256}"
                    )
                self._fetched[source.label] = got.sha256
                return True
        if source.metrics_key is not None and self.store.exists(source.metrics_key):
            data = self.store.get_bytes(source.metrics_key)
            digest = f"metrics:{sha256_bytes(data)}"
            if self._fetched.get(source.label) == digest:
                return False
            for old in target.glob("*tfevents*"):
                old.unlink()
            write_event_file(parse_epochs_jsonl(data), target)
            self._fetched[source.label] = digest
            return True
        if source.label not in self._fetched:
            raise LookupError(f"{source.label} has no TensorBoard events and no metrics.jsonl in {self.store.location}")
        return False


def start_tensorboard(logdir: Path, *, host: str = "127.0.0.1", port: int | None = None, reload_interval_s: int = 5) -> str:
    """Serve `logdir` in this process (a daemon thread); the URL it listens on.

    port None: TensorBoard's own choice (6006, or the next free one); 0: any free port."""
    from tensorboard import program

    argv = [
        "tensorboard",
        "--logdir", str(logdir),
        "--host", host,
        "--reload_interval", str(reload_interval_s),
        # The pure-Python loader re-reads a file the store fetch replaced; the Rust one cannot.
        "--load_fast", "false",
        "--detect_file_replacement", "true",
    ]
    if port is not None:
        argv += ["--port", str(port)]
    board = program.TensorBoard()
    board.configure(argv=argv)
    return board.launch()
