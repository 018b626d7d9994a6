"""Run under torchrun by bench/distributed_scaling.py, two probes of the digits CNN in one
process group, 1 thread per process, interleaved blocks, rank 0 printing one JSON line:

- `comm` (2 processes): how much of a DDP training step is gradient all-reduce that backward()
  does not hide: the same steps with the all-reduce and under DDP's no_sync();
- `agreement` (2 processes): what the loop's per-batch loss agreement (every rank averages the
  batch's loss over the ranks before the divergence check, steps/training/loop.py) adds to a DDP
  training step: the same synced steps with and without it;
- `overhead` (1 process): the shared loop's epoch (steps/training/loop.py fit) as one plain
  process and as a DDP group of one (DistributedSampler, DDP wrapper, gloo all-reduce), in the
  same process, so start-up and the machine's load drift cancel out.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from steps.training.distributed import TrainingProcess, mean_over_ranks
from steps.training.loop import ALONE, fit
from steps.training.training_state import new_training_state

TRAINER = Path(__file__).resolve().parent.parent / "images" / "digits-cnn" / "train.py"


def digits_cnn() -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("digits_trainer", TRAINER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    return module.DigitsCNN().build_model({}, 10)  # the trainer's own model, default hyperparameters


def step_medians(first: Callable[[], None], second: Callable[[], None], steps: int, blocks: int) -> tuple[float, float]:
    """Median seconds per step of two kinds of training step, timed in interleaved blocks that start
    together on every rank (after 20 warm-up steps of each)."""

    def timed(step: Callable[[], None], count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            step()
        return (time.perf_counter() - started) / count

    timed(first, 20)
    timed(second, 20)
    firsts, seconds = [], []
    for _ in range(blocks):
        dist.barrier()
        firsts.append(timed(first, steps))
        dist.barrier()
        seconds.append(timed(second, steps))
    return statistics.median(firsts), statistics.median(seconds)


def ddp_step_parts():
    model = DistributedDataParallel(digits_cnn())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    return model, optimizer, lambda: loss_fn(model(x), y)


def comm_share(steps: int, blocks: int) -> dict:
    model, optimizer, loss = ddp_step_parts()

    def synced() -> None:
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()

    def unsynced() -> None:
        optimizer.zero_grad()
        with model.no_sync():
            loss().backward()
        optimizer.step()

    sync_s, no_sync_s = step_medians(synced, unsynced, steps, blocks)
    return {"sync_step_ms": 1000 * sync_s, "no_sync_step_ms": 1000 * no_sync_s,
            "exposed_comm_share": max(0.0, 1 - no_sync_s / sync_s)}


def agreement_cost(steps: int, blocks: int) -> dict:
    process = TrainingProcess(rank=dist.get_rank(), world_size=dist.get_world_size(), backend="gloo")
    _, optimizer, loss = ddp_step_parts()

    def agreed() -> None:  # as steps/training/loop.py fit takes a step
        optimizer.zero_grad()
        value = loss()
        mean = mean_over_ranks(process, value.detach().item())
        value.backward()
        mean()
        optimizer.step()

    def unchecked() -> None:
        optimizer.zero_grad()
        value = loss()
        value.detach().item()
        value.backward()
        optimizer.step()

    agreed_s, unchecked_s = step_medians(agreed, unchecked, steps, blocks)
    return {"agreed_step_ms": 1000 * agreed_s, "unchecked_step_ms": 1000 * unchecked_s,
            "agreement_cost": agreed_s / unchecked_s - 1}


def world_size_1_overhead(examples: int, blocks: int) -> dict:
    group_of_one = TrainingProcess(rank=0, local_rank=0, world_size=1, backend="gloo", device="cpu")
    x, y = torch.rand(examples, 1, 8, 8), torch.randint(0, 10, (examples,))
    rates: dict[str, list[float]] = {"plain": [], "ddp": []}
    for block in range(blocks + 1):  # block 0 warms both up
        for kind, process in (("plain", ALONE), ("ddp", group_of_one)):
            started = time.perf_counter()
            state = new_training_state(digits_cnn(), {"learning_rate": 0.005}, seed=1, device="cpu")
            fit(state, x, y, epochs=1, batch_size=64, seed=1, process=process)
            if block:
                rates[kind].append(examples / (time.perf_counter() - started))
    plain, ddp = statistics.median(rates["plain"]), statistics.median(rates["ddp"])
    return {"plain_samples_per_s": plain, "ddp_samples_per_s": ddp, "overhead": 1 - ddp / plain, "rates": rates}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("probe", nargs="?", default="comm", choices=("comm", "agreement", "overhead"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--examples", type=int, default=8000)
    parser.add_argument("--blocks", type=int, default=5)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    if args.probe == "overhead":
        result = world_size_1_overhead(args.examples, args.blocks)
    else:
        result = (comm_share if args.probe == "comm" else agreement_cost)(args.steps, args.blocks)
    if dist.get_rank() == 0:
        print(json.dumps(result), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
