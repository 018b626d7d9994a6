"""Data-parallel training across the processes torchrun starts (trainer side): join the process
group, shard the data with a DistributedSampler, wrap the model in DistributedDataParallel,
all-reduce metrics. Without torchrun around it, one process trains exactly as it always did.

torchrun (torch.distributed.run) sets, for every process it starts:
WORLD_SIZE (processes in all), RANK (this process, 0..WORLD_SIZE-1), LOCAL_RANK (this process on
its node), MASTER_ADDR and MASTER_PORT (where rank 0's store listens). docs/trainer-contract.md.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from steps.training.contract import TrainingJob
from steps.training.shape import CPU_BACKEND, CUDA_BACKEND, NO_BACKEND

ENV_WORLD_SIZE = "WORLD_SIZE"
ENV_RANK = "RANK"
ENV_LOCAL_RANK = "LOCAL_RANK"


class DistributedSetupError(RuntimeError):
    """The processes cannot form the group the job asks for."""


@dataclass(frozen=True)
class TrainingProcess:
    """This process's place in the run: rank 0 of 1 with no backend when nothing is distributed."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: str = NO_BACKEND
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes weights, metrics and the result."""
        return self.rank == 0

    @property
    def in_group(self) -> bool:
        return self.backend != NO_BACKEND


def join_group(job: TrainingJob, env: Mapping[str, str], device: str) -> TrainingProcess:
    """Join torchrun's process group (gloo on CPU, NCCL on CUDA), or train alone when torchrun did not start us."""
    if ENV_WORLD_SIZE not in env:
        if job.shape.distributed:
            raise DistributedSetupError(
                f"the job asks for {job.shape.describe()}, but the trainer was started as one plain process; "
                "executors start distributed trainers with torchrun"
            )
        return TrainingProcess(device=device)
    import torch
    import torch.distributed as dist

    world_size, rank, local_rank = int(env[ENV_WORLD_SIZE]), int(env[ENV_RANK]), int(env[ENV_LOCAL_RANK])
    if world_size != job.shape.world_size:
        raise DistributedSetupError(
            f"torchrun started {world_size} processes, but the job asks for {job.shape.describe()}"
        )
    if device == "cuda":
        visible = torch.cuda.device_count()
        if local_rank >= visible:
            raise DistributedSetupError(
                f"procs_per_node={job.procs_per_node} needs one CUDA device per process, but this node has {visible}"
            )
        torch.cuda.set_device(local_rank)
        device, backend = f"cuda:{local_rank}", CUDA_BACKEND
    else:
        backend = CPU_BACKEND
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    print(f"trainyard-trainer: rank {rank} of {world_size} (local rank {local_rank}) joined the {backend} group", flush=True)
    return TrainingProcess(rank=rank, local_rank=local_rank, world_size=world_size, backend=backend, device=device)


def leave_group(process: TrainingProcess) -> None:
    if process.in_group:
        import torch.distributed as dist

        dist.destroy_process_group()


def seed_this_rank(seed: int, process: TrainingProcess) -> None:
    """After the (identical) model is built, each rank draws from its own stream: seed + rank.
    A lone process keeps the stream it has, so its weights do not change."""
    if not process.in_group:
        return
    from steps.training.determinism import seed_everything

    seed_everything(seed + process.rank, process.device)


def train_loader(features, targets, *, batch_size: int, seed: int, process: TrainingProcess, generator=None):
    """Each rank reads its own shard, `batch_size` examples per step; the shards' order comes from
    the run's seed and the epoch (DistributedSampler pads the last shard with repeats), so a resumed
    rank shuffles epoch N as it would have. A lone process shuffles with `generator` (the training
    state's, which a checkpoint saves), or one seeded by the run's seed."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    dataset = TensorDataset(features, targets)
    if not process.in_group:
        # Data order from a generator seeded by the run's seed, never from global state.
        order = generator if generator is not None else torch.Generator().manual_seed(seed)
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=order)
    sampler: DistributedSampler = DistributedSampler(
        dataset, num_replicas=process.world_size, rank=process.rank, shuffle=True, seed=seed, drop_last=False
    )
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler)


def start_epoch(loader, epoch: int) -> None:
    from torch.utils.data.distributed import DistributedSampler

    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank


def wrap_model(model, process: TrainingProcess):
    """DistributedDataParallel averages the gradients of all ranks in backward()."""
    if not process.in_group:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [process.local_rank] if process.backend == CUDA_BACKEND else None
    return DistributedDataParallel(model, device_ids=device_ids)


def sum_over_ranks(process: TrainingProcess, *values: float) -> list[float]:
    if not process.in_group:
        return list(values)
    import torch
    import torch.distributed as dist

    totals = torch.tensor(values, dtype=torch.float64, device=process.device)
    dist.all_reduce(totals)
    return [float(v) for v in totals.cpu()]


def mean_over_ranks(process: TrainingProcess, value: float) -> Callable[[], float]:
    """Start averaging `value` over the ranks; the returned call waits for the mean. Non-finite on every
    rank when any rank's value is, so all of them stop together. Started before backward(), it travels
    ahead of DDP's gradient all-reduce on the same group: a step waits for its peers once, not twice."""
    if not process.in_group:
        return lambda: value
    import torch
    import torch.distributed as dist

    total = torch.tensor([value], dtype=torch.float64, device=process.device)
    pending = dist.all_reduce(total, async_op=True)

    def mean() -> float:
        pending.wait()
        return float(total.item()) / process.world_size

    return mean


def gather_from_ranks(process: TrainingProcess, value: dict) -> list[dict]:
    """Every rank's `value` (plain tensors, numbers, strings, lists, dicts), on every rank, indexed by rank.
    Pickled between this run's own processes only; nothing read from the store is ever unpickled."""
    if not process.in_group:
        return [value]
    import torch.distributed as dist

    gathered: list = [None] * process.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def eval_shard(process: TrainingProcess, n_examples: int) -> slice:
    """The contiguous part of the eval set this rank scores; a lone process scores all of it."""
    return slice(n_examples * process.rank // process.world_size, n_examples * (process.rank + 1) // process.world_size)


def sum_confusion_over_ranks(process: TrainingProcess, matrix, loss_sum: float):
    """Counts are exact integers, so the all-reduced matrix equals the one a single process computes."""
    if not process.in_group:
        return matrix, loss_sum
    import torch
    import torch.distributed as dist

    counts = torch.from_numpy(matrix).to(process.device)
    dist.all_reduce(counts)
    (total_loss,) = sum_over_ranks(process, loss_sum)
    return counts.cpu().numpy(), total_loss
