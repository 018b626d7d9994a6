"""A study's search space: which hyperparameters a trial may vary, over which values.

A space is a mapping of parameter name to one of

    {type: float, low: 1e-4, high: 0.1, log: true}        uniform or log-uniform
    {type: int, low: 16, high: 128, step: 16}             integers (log: true for log-uniform)
    {type: categorical, choices: [32, 64, 128]}

(JSON in the Params form, YAML for `trainyard tune --space`). Every refusal names the parameter
and the problem, before any trial runs.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from steps.lifecycle.plan import BOUNDS, BadRequest

#: The epoch budget is the study's (every trial trains the same number of epochs, which the pruners
#: count in); the seed is the study's too. Neither is a search dimension.
NOT_SEARCHABLE = {
    "epochs": "epochs is every trial's budget (the study's epochs), not a search dimension",
    "seed": "seed is the study's seed, not a search dimension",
}
DEFAULT_GRID_POINTS = 3
Choice = str | int | float | bool


class FloatParam(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    grid_points: int = Field(default=DEFAULT_GRID_POINTS, ge=2, le=50)  # values the grid sampler tries

    def grid(self) -> list[Choice]:
        if self.low == self.high:
            return [self.low]
        last = self.grid_points - 1
        if self.log:
            start, stop = math.log(self.low), math.log(self.high)
            inner = [math.exp(start + (stop - start) * i / last) for i in range(1, last)]
        else:
            inner = [self.low + (self.high - self.low) * i / last for i in range(1, last)]
        # The ends are the bounds themselves: rounding must not put a grid point outside the range.
        return [self.low, *inner, self.high]


class IntParam(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, ge=1)
    grid_points: int = Field(default=DEFAULT_GRID_POINTS, ge=2, le=50)

    def grid(self) -> list[Choice]:
        values = list(range(self.low, self.high + 1, self.step))
        if len(values) <= self.grid_points:
            return list(values)
        if self.log:
            start, stop = math.log(self.low), math.log(self.high)
            points = [round(math.exp(start + (stop - start) * i / (self.grid_points - 1))) for i in range(self.grid_points)]
        else:
            points = [round(self.low + (self.high - self.low) * i / (self.grid_points - 1)) for i in range(self.grid_points)]
        snapped = [self.low + round((p - self.low) / self.step) * self.step for p in points]
        return list(dict.fromkeys(min(max(p, self.low), self.high) for p in snapped))


class CategoricalParam(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["categorical"]
    choices: list[Choice]

    def grid(self) -> list[Choice]:
        return list(self.choices)


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]
_PARAM = TypeAdapter(Param)


class SearchSpace(BaseModel):
    """Parameter name -> its range, in name order (so a space's distributions are always listed alike)."""

    model_config = ConfigDict(frozen=True)

    params: dict[str, Param]

    def distributions(self) -> dict[str, Any]:
        """Optuna's distributions, one per parameter."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        found: dict[str, Any] = {}
        for name, param in self.params.items():
            if isinstance(param, FloatParam):
                found[name] = FloatDistribution(param.low, param.high, log=param.log)
            elif isinstance(param, IntParam):
                found[name] = IntDistribution(param.low, param.high, log=param.log, step=param.step)
            else:
                found[name] = CategoricalDistribution(param.choices)
        return found

    def grid(self) -> dict[str, list[Choice]]:
        """The values Optuna's grid sampler walks, per parameter."""
        return {name: param.grid() for name, param in self.params.items()}

    def to_raw(self) -> dict[str, dict[str, Any]]:
        return {name: param.model_dump(mode="json") for name, param in self.params.items()}


def parse_space(raw: Any, algorithm: str, defaults: dict[str, Any]) -> SearchSpace:
    """Validate a user's (or the registry's) space against the algorithm's hyperparameters."""
    if not isinstance(raw, dict):
        raise BadRequest(
            f"search space must be a mapping of parameter name to its range (e.g. learning_rate: "
            f"{{type: float, low: 0.001, high: 0.1, log: true}}), got {type(raw).__name__}"
        )
    if not raw:
        raise BadRequest(f"search space is empty: name at least one hyperparameter of {algorithm} to vary")
    params = {}
    for name in sorted(raw):
        params[name] = _parse_param(str(name), raw[name], algorithm, defaults)
    return SearchSpace(params=params)


def _parse_param(name: str, spec: Any, algorithm: str, defaults: dict[str, Any]) -> FloatParam | IntParam | CategoricalParam:
    where = f"search space: {name}"
    if name in NOT_SEARCHABLE:
        raise BadRequest(f"{where}: {NOT_SEARCHABLE[name]}")
    if name not in defaults:
        known = ", ".join(sorted(n for n in defaults if n not in NOT_SEARCHABLE))
        raise BadRequest(f"{where}: {algorithm} has no hyperparameter {name!r}; it has: {known}")
    if not isinstance(spec, dict):
        raise BadRequest(f"{where}: give its range as {{type: float|int|categorical, ...}}, got {spec!r}")
    kind = spec.get("type")
    if kind not in ("float", "int", "categorical"):
        raise BadRequest(f"{where}: type {kind!r} is unknown; use float, int or categorical")
    try:
        param = _PARAM.validate_python(spec)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'range'}: {e['msg']}" for e in exc.errors())
        raise BadRequest(f"{where}: {problems}") from None
    _check_values(where, name, param, defaults[name])
    return param


def _check_values(where: str, name: str, param: FloatParam | IntParam | CategoricalParam, default: Any) -> None:
    if isinstance(param, CategoricalParam):
        if not param.choices:
            raise BadRequest(f"{where}: a categorical parameter needs at least one choice")
        values = list(param.choices)
    else:
        if param.low > param.high:
            raise BadRequest(f"{where}: low {param.low} is greater than high {param.high}")
        if param.log and param.low <= 0:
            raise BadRequest(f"{where}: a log scale needs low > 0, got low {param.low}")
        if isinstance(param, IntParam) and param.log and param.step != 1:
            raise BadRequest(f"{where}: a log scale cannot have a step (got step {param.step})")
        values = [param.low, param.high]
    # The trainer reads each hyperparameter as the type of its registered default.
    if isinstance(default, bool) or not isinstance(default, int | float):
        wrong = [v for v in values if type(v) is not type(default)]
    elif isinstance(default, int):
        if isinstance(param, FloatParam):
            raise BadRequest(f"{where}: takes whole numbers; use type int (or categorical)")
        wrong = [v for v in values if isinstance(v, bool) or not isinstance(v, int)]
    else:
        wrong = [v for v in values if isinstance(v, bool) or not isinstance(v, int | float)]
    if wrong:
        raise BadRequest(f"{where}: {wrong[0]!r} is not a {type(default).__name__} like its default {default!r}")
    bounds = BOUNDS.get(name)
    if bounds:
        for value in values:
            if not _within(float(value), bounds):
                raise BadRequest(f"{where}: {value} is outside what a run accepts ({_describe(bounds)})")


def _within(value: float, bounds: dict[str, Any]) -> bool:
    return (
        value >= bounds.get("minimum", -math.inf)
        and value > bounds.get("exclusiveMinimum", -math.inf)
        and value <= bounds.get("maximum", math.inf)
    )


def _describe(bounds: dict[str, Any]) -> str:
    parts = []
    if "minimum" in bounds:
        parts.append(f">= {bounds['minimum']}")
    if "exclusiveMinimum" in bounds:
        parts.append(f"> {bounds['exclusiveMinimum']}")
    if "maximum" in bounds:
        parts.append(f"<= {bounds['maximum']}")
    return " and ".join(parts)
