"""Optuna's journal storage kept in the artifact store, so a trainer can report to its study and ask
the pruner with nothing but the store's credentials (no database, no server).

The journal is append-only: record N is the object StudyLayout.journal_record(N), written create-only.
An append claims the first free sequence number; when another writer got there first the create-only
write fails and the next number is tried, so concurrent trials never clobber each other and every
reader replays the same records in the same order. There are no gaps: a number is only tried once
every number below it is known to exist.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from steps.store.base import ArtifactStore
from steps.store.errors import ObjectExists, ObjectNotFound
from steps.store.run_layout import StudyLayout

# More concurrent writers than this racing for one record means something is wrong, not busy.
MAX_APPEND_ATTEMPTS = 10_000


class StoreJournalBackend(BaseJournalBackend):
    def __init__(self, store: ArtifactStore, layout: StudyLayout) -> None:
        self.store = store
        self.layout = layout
        self._known_records = 0  # every record below this number exists

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        logs = []
        number = log_number_from
        while True:
            try:
                data = self.store.get_bytes(self.layout.journal_record(number))
            except ObjectNotFound:
                break
            logs.append(json.loads(data))
            number += 1
        self._known_records = max(self._known_records, number)
        return logs

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        for log in logs:
            self._append(json.dumps(log, separators=(",", ":"), sort_keys=True).encode())

    def _append(self, record: bytes) -> None:
        number = self._known_records
        for _ in range(MAX_APPEND_ATTEMPTS):
            try:
                self.store.put_bytes(self.layout.journal_record(number), record, if_absent=True)
            except ObjectExists:
                number += 1
                continue
            self._known_records = number + 1
            return
        raise RuntimeError(f"could not append to the journal {self.layout.journal_prefix} after {MAX_APPEND_ATTEMPTS} tries")


def journal_storage(store: ArtifactStore, layout: StudyLayout) -> JournalStorage:
    """An Optuna storage whose every record is an object under the study's journal prefix."""
    return JournalStorage(StoreJournalBackend(store, layout))
