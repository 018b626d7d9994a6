"""Great Expectations in a warm interpreter, for the embedded runner (steps/warm/interpreter.py).

Importing GX takes seconds. When a run that will validate is started by `trainyard run`, the
runner starts an interpreter that imports GX and builds the suites while Airflow itself starts;
the validate step then hands it the materialized snapshot (steps/data/validation_main.py) and
reads back the same report an in-process validation would have made. Without a warm interpreter
(a deployed Airflow, or a run the runner did not expect to validate) the step validates in its
own process, as before."""
from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from steps.data.validation_report import ValidationReport
from steps.warm import interpreter as warm_interpreters

log = logging.getLogger(__name__)

WARM_PURPOSE = "validator"
VALIDATOR_PRELOAD = ("steps.data.validate:warm_up",)
ENTRYPOINT = Path(__file__).resolve().with_name("validation_main.py")
PROJECT_ROOT = ENTRYPOINT.parents[2]
OUTPUT_TAIL_LINES = 20

ValidateDir = Callable[[Path, str, str], ValidationReport]


class ValidationProcessFailed(RuntimeError):
    """The validation process crashed (as opposed to reporting a failed validation)."""


def prewarm_validator(python: str = sys.executable, project_root: Path = PROJECT_ROOT) -> bool:
    return warm_interpreters.prewarm(WARM_PURPOSE, python, project_root, VALIDATOR_PRELOAD)


def warm_validator(python: str = sys.executable, project_root: Path = PROJECT_ROOT) -> ValidateDir | None:
    """validate_dataset_dir, run in the waiting warm interpreter; None when there is none."""
    warm = warm_interpreters.take(WARM_PURPOSE, python, project_root)
    if warm is None:
        return None

    def validate_dir(data_dir: Path, schema: str, dataset: str) -> ValidationReport:
        with tempfile.TemporaryDirectory(prefix="trainyard-validation-") as scratch:
            report_path = Path(scratch) / "report.json"
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "PYTHONPATH": str(project_root),
                "PYTHONHASHSEED": "0",
                "HOME": scratch,
                "TMPDIR": scratch,
            }
            process = warm.start(ENTRYPOINT, env, scratch, [str(data_dir), schema, dataset, str(report_path)])
            assert process.stdout is not None
            output = process.stdout.read().splitlines()
            exit_code = process.wait()
            process.stdout.close()
            if exit_code != 0 or not report_path.exists():
                tail = "\n".join(output[-OUTPUT_TAIL_LINES:])
                raise ValidationProcessFailed(f"validation of {dataset!r} crashed (exit code {exit_code}):\n{tail}")
            log.info("validated %s in a warm interpreter", dataset)
            return ValidationReport.from_json_bytes(report_path.read_bytes())

    return validate_dir
