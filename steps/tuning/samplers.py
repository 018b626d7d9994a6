"""Optuna's samplers, seeded so that a study proposes the same trials in the same order every time.

A wave is proposed in one process that starts from the study's history, so a sampler that keeps
its random state in memory (random, TPE, CMA-ES) would start over in every wave and repeat the
first wave's proposals. Those get a seed derived from (study seed, wave). The grid and the
quasi-random (Sobol) samplers must not be reseeded: their order is fixed by the study seed and
their position in it is kept in the study itself (trial numbers, a study attribute).
"""
from __future__ import annotations

from typing import Any

from steps.hashing import sha256_bytes
from steps.tuning.space import SearchSpace


def wave_seed(study_seed: int, wave: int) -> int:
    """A seed per wave that depends on nothing but the study seed and the wave number."""
    return int(sha256_bytes(f"trainyard-wave|{study_seed}|{wave}".encode())[:8], 16) % (2**31)


def make_sampler(kind: str, *, study_seed: int, wave: int, space: SearchSpace) -> Any:
    import optuna

    seed = wave_seed(study_seed, wave)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "tpe":
        # constant_liar: trials of the same wave are asked before any is told; without it TPE would
        # propose the same point parallel_trials times.
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if kind == "cmaes":
        # CMA-ES has no categorical dimension; those are drawn by its (seeded) independent sampler.
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
        )
    if kind == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=study_seed)
    if kind == "qmc":
        # The first trial (before the space is known to the sampler) is drawn by the independent sampler.
        return optuna.samplers.QMCSampler(
            qmc_type="sobol",
            scramble=True,
            seed=study_seed,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
        )
    raise ValueError(f"sampler {kind!r} is unknown")
