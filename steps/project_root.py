"""Where this checkout lives: config/, datasets/, dags/ and the trainers' code are found from here."""
from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
