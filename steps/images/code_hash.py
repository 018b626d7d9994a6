"""A content hash of a trainer's code, pinning the embedded executor as a digest pins an image."""
from __future__ import annotations

from pathlib import Path

from steps.hashing import sha256_file, sha256_json
from steps.project_root import PROJECT_ROOT

# Everything a trainer process imports from this project (besides its own directory).
TRAINER_SHARED_CODE = (
    "steps/__init__.py",
    "steps/hashing.py",
    "steps/data/__init__.py",
    "steps/data/snapshot.py",
    "steps/data/stat_cache.py",
    "steps/data/schemas.py",
    "steps/data/dataset_reader.py",
    "steps/data/source_tree.py",
    "steps/store",
    "steps/training",
)


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def trainer_code_sha256(algorithm_dir: Path, root: Path = PROJECT_ROOT) -> str:
    paths = _files(root / algorithm_dir)
    for shared in TRAINER_SHARED_CODE:
        paths.extend(_files(root / shared))
    return sha256_json({p.relative_to(root).as_posix(): sha256_file(p) for p in paths})
