"""Content-based train/test split: an example's side depends only on its content and
the split seed, so it keeps its side across dataset versions."""
from __future__ import annotations

from collections.abc import Sequence

from steps.hashing import canonical_json, sha256_bytes

_SCALE = float(16**15)


def example_content_hash(features: Sequence, label: int) -> str:
    return sha256_bytes(canonical_json({"features": list(features), "label": int(label)}))


def is_test_example(content_hash: str, split_seed: int, test_fraction: float) -> bool:
    bucket = sha256_bytes(f"{split_seed}:{content_hash}".encode())
    return int(bucket[:15], 16) / _SCALE < test_fraction


def eval_set_hash(test_content_hashes: Sequence[str]) -> str:
    """Identifies the eval set by content, independent of row order and example ids."""
    return sha256_bytes(canonical_json(sorted(test_content_hashes)))
