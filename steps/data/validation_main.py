"""Validate a dataset directory in a process of its own and write the report:

    python steps/data/validation_main.py DATA_DIR SCHEMA DATASET REPORT_JSON

Exit 0 when the report is written (passed or failed: the report says which); a crash exits 1 with
its traceback. Run by steps/data/validation_process.py in a warm interpreter."""
from __future__ import annotations

import sys
from pathlib import Path

from steps.data.validate import validate_dataset_dir


def main(argv: list[str]) -> int:
    data_dir, schema, dataset, report_path = argv
    report = validate_dataset_dir(Path(data_dir), schema, dataset=dataset)
    Path(report_path).write_bytes(report.to_json_bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
