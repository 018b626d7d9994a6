"""Throughput and memory of MinioStore against MinIO's own `mc`, on one local server.

Generates a dataset of many files, then per repeat uploads and downloads it with
MinioStore (put_files/get_files) and with `mc cp --recursive`, each in a child process
whose peak RSS (VmHWM) is sampled from /proc. Reports medians (MiB/s), the ratio to mc
and peak RSS. MinioStore is timed around put_files/get_files (as in a long-lived worker)
and also from spawn to exit (Python start-up and imports included); mc from spawn to
exit. Speed lives here, never in tests.

    .venv/bin/python bench/minio_throughput.py                      # 1 GiB, 3 repeats
    .venv/bin/python bench/minio_throughput.py --size-mib 256 --repeats 3 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from targets import Target, times, verdict  # noqa: E402  (bench/, this script's own directory)

from steps.hashing import sha256_file  # noqa: E402
from tests.minio_server import MinioServer, start_minio_server  # noqa: E402

MiB = 1024 * 1024

# The child that runs one MinioStore transfer; its peak RSS is the number we report.
CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from steps.store.settings import StoreSettings
from steps.store.minio_store import MinioStore
job = json.loads(sys.stdin.read())
store = MinioStore(StoreSettings(**job["settings"]), part_size_bytes=job["part_size_bytes"],
                   parallel_parts=job["parallel_parts"], max_buffered_bytes=job["max_buffered_bytes"])
root = Path(job["root"])
files = sorted(p for p in root.rglob("*") if p.is_file()) if job["mode"] == "upload" else None
started = time.perf_counter()
if job["mode"] == "upload":
    store.put_files([(job["key_prefix"] + p.relative_to(root).as_posix(), p) for p in files],
                    max_workers=job["workers"])
    moved = store.bytes_uploaded
else:
    keys = list(store.list_keys(job["key_prefix"]))
    got = store.get_files([(k, root / k[len(job["key_prefix"]):]) for k in keys], max_workers=job["workers"])
    moved = sum(g.size_bytes for g in got)
seconds = time.perf_counter() - started
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"seconds": seconds, "bytes": moved, "vm_hwm_kib": int(hwm)}))
"""


@dataclass
class Sample:
    tool: str
    direction: str
    seconds: float  # the transfer itself: put_files/get_files (with listing) or the whole mc run
    wall_seconds: float  # spawn to exit, interpreter start-up and imports included
    size_bytes: int
    peak_rss_bytes: int
    cpu_seconds: float  # user + system of the client process, start-up included

    @property
    def mib_per_s(self) -> float:
        return self.size_bytes / MiB / self.seconds

    @property
    def wall_mib_per_s(self) -> float:
        return self.size_bytes / MiB / self.wall_seconds


def run_measured(cmd: list[str], *, stdin: str | None = None, env: dict | None = None) -> tuple[float, str, int, float]:
    """Run a child; return wall seconds, its stdout, its peak RSS in bytes and its CPU seconds.

    Peak RSS is the child's VmHWM, sampled from /proc while it runs. wait4()'s ru_maxrss
    would not do: Linux carries the forking parent's high-water mark across exec, so
    every child would report at least this benchmark's own RSS. CPU time (user + system,
    from wait4) is the number that holds still on a busy shared machine.
    """
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out_file, stderr=err_file, env=env)
        peak_kib = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak_kib
            status = Path(f"/proc/{proc.pid}/status")
            while not stop.is_set():
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            peak_kib = max(peak_kib, int(line.split()[1]))
                except (FileNotFoundError, ProcessLookupError, ValueError):
                    pass
                stop.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        if stdin is not None:
            proc.stdin.write(stdin.encode())
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
        out_file.seek(0)
        err_file.seek(0)
        out_text, err_text = out_file.read().decode(), err_file.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err_text[-2000:]}")
    # A Python child also reports its own VmHWM at exit (the last moments a sampler can miss).
    try:
        peak_kib = max(peak_kib, int(json.loads(out_text.strip().splitlines()[-1]).get("vm_hwm_kib", 0)))
    except (ValueError, IndexError, AttributeError):
        pass
    return seconds, out_text, peak_kib * 1024, usage.ru_utime + usage.ru_stime


def generate_dataset(root: Path, size_bytes: int, file_count: int, seed: int) -> int:
    """Files of varied sizes (0.25x to 1.75x the mean) in a few subdirectories."""
    rng = random.Random(seed)
    mean = size_bytes / file_count
    sizes = [max(1, int(mean * rng.uniform(0.25, 1.75))) for _ in range(file_count)]
    scale = size_bytes / sum(sizes)
    sizes = [max(1, int(s * scale)) for s in sizes]
    block = os.urandom(4 * MiB)
    total = 0
    for i, size in enumerate(sizes):
        path = root / f"shard-{i % 16:02d}" / f"file-{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            # A unique header keeps every file's sha256 distinct; the rest is shared noise.
            header = i.to_bytes(8, "big") + os.urandom(56)
            out.write(header[:size])
            remaining = size - min(size, len(header))
            offset = rng.randrange(len(block))
            while remaining:
                chunk = block[offset: offset + remaining]
                out.write(chunk)
                remaining -= len(chunk)
                offset = 0
        total += size
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024, help="dataset size (default 1024 = 1 GiB)")
    parser.add_argument("--files", type=int, default=400, help="number of files (default 400, mean 2.56 MiB at 1 GiB)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16, help="MinioStore concurrent files")
    parser.add_argument("--part-size-mib", type=int, default=16)
    parser.add_argument("--parallel-parts", type=int, default=4)
    parser.add_argument("--max-buffered-mib", type=int, default=128, help="MinioStore upload buffer budget")
    parser.add_argument("--workdir", type=Path, default=None, help="where data and the server live (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="trainyard-bench-", dir=args.workdir))
    server: MinioServer | None = None
    samples: list[Sample] = []
    load_at_start = os.getloadavg()
    try:
        source = workdir / "dataset"
        size_bytes = generate_dataset(source, args.size_mib * MiB, args.files, seed=7)
        print(f"dataset: {args.files} files, {size_bytes / MiB:.0f} MiB in {source}", flush=True)
        # What verification alone costs here: MinioStore hashes every byte it downloads
        # (and, for multipart, twice on upload); mc verifies nothing on download.
        hash_cpu_started = time.process_time()
        for path in sorted(source.rglob("*")):
            if path.is_file():
                sha256_file(path)
        sha256_cpu_s_per_gib = (time.process_time() - hash_cpu_started) / (size_bytes / (1024 * MiB))
        print(f"sha256 on this machine: {sha256_cpu_s_per_gib:.2f} CPU-s per GiB", flush=True)
        # Started as the tests start theirs: another port if this one is taken before MinIO binds it.
        server = start_minio_server(workdir / "minio")
        prefix = "bench"
        settings = asdict(server.settings(bucket_prefix=prefix))
        bucket = f"{prefix}-datasets"
        server.mc("mb", "--ignore-existing", f"test/{bucket}")
        job_base = {
            "settings": settings, "part_size_bytes": args.part_size_mib * MiB, "parallel_parts": args.parallel_parts,
            "max_buffered_bytes": args.max_buffered_mib * MiB, "workers": args.workers,
        }
        python = sys.executable
        for repeat in range(args.repeats):
            # Alternate who goes first so neither tool always meets a warmer server.
            order = ["minio_store", "mc"] if repeat % 2 == 0 else ["mc", "minio_store"]
            for tool in order:
                run_prefix = f"{tool}-{repeat}"
                down = workdir / f"download-{run_prefix}"
                if tool == "minio_store":
                    job = {**job_base, "mode": "upload", "root": str(source), "key_prefix": f"datasets/{run_prefix}/"}
                    seconds, out, rss, cpu = run_measured([python, "-c", CHILD, str(REPO_ROOT)], stdin=json.dumps(job))
                    result = json.loads(out)
                    samples.append(Sample(tool, "upload", result["seconds"], seconds, result["bytes"], rss, cpu))
                    job = {**job, "mode": "download", "root": str(down)}
                    seconds, out, rss, cpu = run_measured([python, "-c", CHILD, str(REPO_ROOT)], stdin=json.dumps(job))
                    result = json.loads(out)
                    samples.append(Sample(tool, "download", result["seconds"], seconds, result["bytes"], rss, cpu))
                else:
                    mc = [str(server.mc_binary), "--quiet", "--no-color"]
                    seconds, _, rss, cpu = run_measured(
                        mc + ["cp", "--recursive", f"{source}/", f"test/{bucket}/{run_prefix}/"], env=server.env()
                    )
                    samples.append(Sample(tool, "upload", seconds, seconds, size_bytes, rss, cpu))
                    down.mkdir(parents=True)
                    seconds, _, rss, cpu = run_measured(
                        mc + ["cp", "--recursive", f"test/{bucket}/{run_prefix}/", f"{down}/"], env=server.env()
                    )
                    samples.append(Sample(tool, "download", seconds, seconds, size_bytes, rss, cpu))
                moved = sum(p.stat().st_size for p in down.rglob("*") if p.is_file())
                if moved != size_bytes:
                    raise RuntimeError(f"{tool} downloaded {moved} bytes of {size_bytes}")
                shutil.rmtree(down)
                server.mc("rm", "--recursive", "--force", f"test/{bucket}/{run_prefix}/")
                last = samples[-2:]
                print(f"repeat {repeat + 1}/{args.repeats} {tool:12s} up {last[0].mib_per_s:7.1f} MiB/s "
                      f"(peak RSS {last[0].peak_rss_bytes / MiB:.0f} MiB)  down {last[1].mib_per_s:7.1f} MiB/s "
                      f"(peak RSS {last[1].peak_rss_bytes / MiB:.0f} MiB)", flush=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    def median(tool: str, direction: str) -> float:
        return statistics.median(s.mib_per_s for s in samples if s.tool == tool and s.direction == direction)

    def wall_median(tool: str, direction: str) -> float:
        return statistics.median(s.wall_mib_per_s for s in samples if s.tool == tool and s.direction == direction)

    def cpu_per_gib(tool: str, direction: str) -> float:
        return statistics.median(
            s.cpu_seconds / (s.size_bytes / (1024 * MiB)) for s in samples if s.tool == tool and s.direction == direction
        )

    def peak(tool: str, direction: str) -> int:
        return max(s.peak_rss_bytes for s in samples if s.tool == tool and s.direction == direction)

    summary = {
        "dataset_size_bytes": size_bytes, "files": args.files, "repeats": args.repeats,
        "workers": args.workers, "part_size_bytes": args.part_size_mib * MiB, "parallel_parts": args.parallel_parts,
        "sha256_cpu_s_per_gib": round(sha256_cpu_s_per_gib, 2),
        "cpu_count": os.cpu_count(), "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg(),
    }
    for direction in ("upload", "download"):
        ours, theirs = median("minio_store", direction), median("mc", direction)
        summary[direction] = {
            "minio_store_mib_per_s": round(ours, 1), "mc_mib_per_s": round(theirs, 1),
            "ratio_to_mc": round(ours / theirs, 2),
            "minio_store_with_startup_mib_per_s": round(wall_median("minio_store", direction), 1),
            "ratio_to_mc_with_startup": round(wall_median("minio_store", direction) / theirs, 2),
            "minio_store_peak_rss_mib": round(peak("minio_store", direction) / MiB, 1),
            "mc_peak_rss_mib": round(peak("mc", direction) / MiB, 1),
            "minio_store_cpu_s_per_gib": round(cpu_per_gib("minio_store", direction), 2),
            "mc_cpu_s_per_gib": round(cpu_per_gib("mc", direction), 2),
        }
    summary["samples"] = [
        {**asdict(s), "mib_per_s": round(s.mib_per_s, 1), "wall_mib_per_s": round(s.wall_mib_per_s, 1)} for s in samples
    ]
    print()
    print(f"medians of {args.repeats} repeats, {size_bytes / MiB:.0f} MiB in {args.files} files")
    print(f"{'':10s}{'MinioStore':>14s}{'mc':>12s}{'ratio':>8s}{'ours+startup':>16s}{'ratio':>8s}"
          f"{'peak RSS ours':>15s}{'peak RSS mc':>13s}{'CPU s/GiB ours':>16s}{'mc':>6s}")
    for direction in ("upload", "download"):
        d = summary[direction]
        print(f"{direction:10s}{d['minio_store_mib_per_s']:>9.1f} MiB/s{d['mc_mib_per_s']:>7.1f} MiB/s"
              f"{d['ratio_to_mc']:>7.2f}x{d['minio_store_with_startup_mib_per_s']:>10.1f} MiB/s"
              f"{d['ratio_to_mc_with_startup']:>7.2f}x"
              f"{d['minio_store_peak_rss_mib']:>11.0f} MiB{d['mc_peak_rss_mib']:>9.0f} MiB"
              f"{d['minio_store_cpu_s_per_gib']:>16.2f}{d['mc_cpu_s_per_gib']:>6.2f}")
    print(f"sha256 alone costs {sha256_cpu_s_per_gib:.2f} CPU-s per GiB here (every downloaded byte is verified)")
    print(f"load average at start {load_at_start[0]:.1f}, at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return verdict("minio_throughput", [
        Target("upload throughput vs mc", summary["upload"]["ratio_to_mc"], 0.8, at_least=True, show=times),
        Target("download throughput vs mc", summary["download"]["ratio_to_mc"], 0.8, at_least=True, show=times),
        Target("upload peak memory", summary["upload"]["minio_store_peak_rss_mib"], 256, at_least=False,
               show="{:.0f} MiB".format),
    ])


if __name__ == "__main__":
    raise SystemExit(main())
