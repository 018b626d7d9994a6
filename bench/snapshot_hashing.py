"""Snapshot hashing throughput and re-snapshot speed, against baselines in the same run.

    .venv/bin/python bench/snapshot_hashing.py [--size-mib 1024] [--files 512] [--repeats 5]

Targets (issue 2): parallel hashing >= 1.8x single-threaded hashlib.sha256 throughput;
re-snapshot of unchanged data >= 10x faster than the first snapshot, while still
detecting a modified file. Reports medians; the machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from targets import Target, times, verdict  # noqa: E402  (bench/, this script's own directory)

from steps.data.snapshot import hash_files, list_dataset_files, snapshot_dataset  # noqa: E402
from steps.data.stat_cache import StatCache  # noqa: E402
from steps.store.local import LocalStore  # noqa: E402


def generate(root: Path, size_mib: int, files: int) -> None:
    per_file = size_mib * 2**20 // files
    block = os.urandom(2**20)
    for i in range(files):
        path = root / f"dt=2026-01-{1 + i % 28:02d}" / f"part-{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            remaining = per_file
            fh.write(i.to_bytes(8, "big"))  # every file distinct
            remaining -= 8
            while remaining > 0:
                fh.write(block[: min(remaining, len(block))])
                remaining -= min(remaining, len(block))


def single_threaded_hashlib(root: Path, rel_paths: list[Path]) -> None:
    for rel in rel_paths:
        with open(root / rel, "rb") as fh:
            digest = hashlib.sha256()
            while chunk := fh.read(2**20):
                digest.update(chunk)


def single_threaded_file_digest(root: Path, rel_paths: list[Path]) -> None:
    """Same single thread, but hashlib's own zero-copy reader: isolates the parallel gain."""
    for rel in rel_paths:
        with open(root / rel, "rb") as fh:
            hashlib.file_digest(fh, "sha256")


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--files", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        generate(data, args.size_mib, args.files)
        rel_paths, _ = list_dataset_files(data)
        total_mib = sum((data / p).stat().st_size for p in rel_paths) / 2**20
        single_threaded_hashlib(data, rel_paths)  # warm the page cache for both contenders

        baseline, file_digest, ours = [], [], []
        for _ in range(args.repeats):  # interleaved, so drift hits all alike
            baseline.append(timed(lambda: single_threaded_hashlib(data, rel_paths)))
            file_digest.append(timed(lambda: single_threaded_file_digest(data, rel_paths)))
            ours.append(timed(lambda: hash_files(data, rel_paths, verify=True)))
        base_mibs = total_mib / statistics.median(baseline)
        file_digest_mibs = total_mib / statistics.median(file_digest)
        ours_mibs = total_mib / statistics.median(ours)

        first, again = [], []
        detected = True
        for i in range(args.repeats):
            store = LocalStore(tmp / f"store-{i}")
            cache = StatCache(tmp / f"cache-{i}.sqlite")
            first.append(timed(lambda store=store, cache=cache: snapshot_dataset(store, "bench", data, cache=cache)))
            outcome = {}
            again.append(timed(lambda store=store, cache=cache, outcome=outcome: outcome.setdefault("o", snapshot_dataset(store, "bench", data, cache=cache))))
            assert outcome["o"].files_hashed == 0 and outcome["o"].bytes_uploaded == 0
            victim = data / rel_paths[i % len(rel_paths)]
            with open(victim, "r+b") as fh:
                fh.seek(100)
                fh.write(os.urandom(8))
            changed = snapshot_dataset(store, "bench", data, cache=cache)
            detected &= changed.files_hashed == 1 and changed.snapshot.dataset_hash != outcome["o"].snapshot.dataset_hash

        results = {
            "dataset_mib": round(total_mib, 1),
            "files": len(rel_paths),
            "cpu_count": os.cpu_count(),
            "repeats": args.repeats,
            "hashlib_single_thread_mib_s": round(base_mibs, 1),
            "parallel_hash_mib_s": round(ours_mibs, 1),
            "hash_speedup_x": round(ours_mibs / base_mibs, 2),
            "file_digest_single_thread_mib_s": round(file_digest_mibs, 1),
            "hash_speedup_vs_file_digest_x": round(ours_mibs / file_digest_mibs, 2),
            "first_snapshot_s": round(statistics.median(first), 3),
            "resnapshot_unchanged_s": round(statistics.median(again), 3),
            "resnapshot_speedup_x": round(statistics.median(first) / statistics.median(again), 1),
            "modified_file_detected": detected,
        }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return verdict("snapshot_hashing", [
        Target("parallel hashing vs single-threaded hashlib", results["hash_speedup_x"], 1.8, at_least=True, show=times),
        Target("re-snapshot of unchanged data vs the first snapshot", results["resnapshot_speedup_x"], 10, at_least=True,
               show=times),
        Target.holds("a modified file is detected", detected),
    ])


if __name__ == "__main__":
    sys.exit(main())
