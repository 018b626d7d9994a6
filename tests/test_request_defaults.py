"""What a run trains with when the request leaves hyperparameters out: the algorithm registry's
defaults (config/algorithms.yaml), not a form's; what it sets overrides only that value. Blank
names are refused like empty ones. Plain functions: no Airflow, no store."""
from __future__ import annotations

import pytest
import yaml

from steps.lifecycle.plan import check_request, parse_request
from steps.store.keys import InvalidName, validate_name
from tests.conftest import PROJECT_ROOT
from tests.pipeline_fixtures import catalog


def registry_defaults(algorithm: str) -> dict:
    return yaml.safe_load((PROJECT_ROOT / "config" / "algorithms.yaml").read_text())[algorithm]["defaults"]


def test_a_request_without_hyperparameters_trains_with_the_registry_defaults():
    *_, hyperparameters = check_request(parse_request({"dataset": "digits", "algorithm": "digits-cnn"}), catalog())
    assert hyperparameters == registry_defaults("digits-cnn")


def test_a_request_overrides_only_what_it_sets():
    request = parse_request({"dataset": "digits", "algorithm": "digits-cnn", "epochs": 2})
    *_, hyperparameters = check_request(request, catalog())
    assert hyperparameters == {**registry_defaults("digits-cnn"), "epochs": 2}


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_a_blank_name_is_refused_as_blank(blank):
    with pytest.raises(InvalidName, match="model name must not be empty or blank"):
        validate_name("model", blank)
