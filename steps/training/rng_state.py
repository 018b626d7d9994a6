"""Every random number generator a training process draws from, captured as plain tensors and
numbers and put back exactly: what lets a resumed run compute the same epochs as an uninterrupted one.

numpy's and Python's states are converted to int64 tensors so a checkpoint loads with
`torch.load(weights_only=True)`, which refuses arbitrary pickled objects.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RngSnapshot:
    torch_cpu: Any  # torch.ByteTensor
    cuda: tuple[Any, ...]  # this process's CUDA device's ByteTensor; empty on CPU
    numpy: dict[str, Any]
    python: dict[str, Any]

    def to_payload(self) -> dict[str, Any]:
        return {"torch_cpu": self.torch_cpu, "cuda": list(self.cuda), "numpy": self.numpy, "python": self.python}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> RngSnapshot:
        import torch

        torch_cpu = payload["torch_cpu"]
        if not isinstance(torch_cpu, torch.Tensor) or torch_cpu.dtype != torch.uint8:
            raise ValueError("checkpoint RNG state: torch_cpu is not a uint8 tensor")
        return cls(torch_cpu, tuple(payload.get("cuda") or ()), dict(payload["numpy"]), dict(payload["python"]))


def capture_rng(device: str) -> RngSnapshot:
    import numpy as np
    import torch

    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return RngSnapshot(
        torch_cpu=torch.get_rng_state(),
        # This process's own device only ("cuda", or "cuda:N" under torchrun, which made N current):
        # reading every visible device would open a context on each GPU from every rank.
        cuda=(torch.cuda.get_rng_state(),) if device.startswith("cuda") else (),
        numpy={
            "bit_generator": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        python={"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
    )


def restore_rng(snapshot: RngSnapshot) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(snapshot.torch_cpu)
    if snapshot.cuda:
        torch.cuda.set_rng_state(snapshot.cuda[0])
    n = snapshot.numpy
    np.random.set_state(
        (n["bit_generator"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = snapshot.python
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss_next"]))
