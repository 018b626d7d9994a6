"""The algorithm registry says which image was current on any past date."""
from __future__ import annotations

from datetime import date

import pytest

from steps.catalog.catalog import ImageVersion, UnknownName, register_image_version
from tests.pipeline_fixtures import catalog


def test_image_current_on_a_past_date_comes_from_the_history(local_store):
    register_image_version(local_store, "digits-cnn", ImageVersion(
        effective_from=date(2026, 3, 1), version="1.1.0", image="reg/digits-cnn:1.1.0", image_digest="sha256:" + "1" * 64))
    register_image_version(local_store, "digits-cnn", ImageVersion(
        effective_from=date(2026, 6, 1), version="2.0.0", image="reg/digits-cnn:2.0.0", image_digest="sha256:" + "2" * 64))
    from steps.catalog.catalog import Catalog
    from steps.project_root import PROJECT_ROOT

    entry = Catalog.load(PROJECT_ROOT / "config/datasets.yaml", PROJECT_ROOT / "config/algorithms.yaml", local_store).algorithm("digits-cnn")
    assert entry.image_on(date(2026, 2, 15)).version == "1.0.0"
    assert entry.image_on(date(2026, 3, 1)).version == "1.1.0"
    assert entry.image_on(date(2026, 5, 31)).image_digest == "sha256:" + "1" * 64
    assert entry.current_image().version == "2.0.0"
    with pytest.raises(UnknownName, match="no registered image on 2025-12-31; its history starts 2026-01-01"):
        entry.image_on(date(2025, 12, 31))


def test_registering_the_same_history_entry_twice_keeps_one(local_store):
    version = ImageVersion(effective_from=date(2026, 3, 1), version="1.1.0", image="r/x:1.1.0", image_digest="sha256:" + "1" * 64)
    first = register_image_version(local_store, "digits-cnn", version)
    assert register_image_version(local_store, "digits-cnn", version) == first
    assert len(list(local_store.list_keys("models/_algorithms/digits-cnn/history/"))) == 1


def test_unknown_algorithm_lists_the_registered_ones():
    with pytest.raises(UnknownName, match=r"algorithm 'digit-cnn' is not registered \(did you mean 'digits-cnn'\?\); "
                                          "registered: digits-cnn, intent-classification"):
        catalog().algorithm("digit-cnn")
    with pytest.raises(UnknownName, match="algorithm 'svm' is not registered; registered: digits-cnn"):
        catalog().algorithm("svm")  # nothing close: no suggestion
