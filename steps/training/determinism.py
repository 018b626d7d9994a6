"""Seeds, deterministic kernels, thread count and device choice for bit-identical weights."""
from __future__ import annotations

import os
import random


def select_device(requested: str) -> str:
    import torch

    if requested == "cpu":
        return "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("TRAINYARD_DEVICE=cuda but no CUDA device is visible to the trainer")
        return "cuda"
    return "cuda" if torch.cuda.is_available() else "cpu"


def seed_everything(seed: int, device: str) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if device.startswith("cuda"):
        torch.cuda.manual_seed_all(seed)


def configure_determinism(seed: int, num_threads: int, device: str) -> None:
    # cuBLAS needs a fixed workspace for deterministic GEMMs; must be set before CUDA init.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    seed_everything(seed, device)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    # Reduction order depends on the thread count, so it is fixed and recorded.
    torch.set_num_threads(num_threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set in this process (e.g. a second run in one test process)
