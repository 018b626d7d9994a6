"""Teams: each team trains in its own Kubernetes namespace, under its own Airflow pool,
within its own bounds on per-run resource overrides (config/teams.yaml)."""
from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Literal

from kubernetes.utils import parse_quantity
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from steps.catalog.catalog import UnknownName
from steps.catalog.catalog_file import read_catalog_file
from steps.project_root import PROJECT_ROOT

DEFAULT_TEAMS_PATH = PROJECT_ROOT / "config" / "teams.yaml"

# A namespace, a team label value and a Secret name must all be DNS-1123 labels.
_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class TeamsConfigError(ValueError):
    pass


def quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("500m", "2", "8Gi") as a number, with the user's words on error."""
    try:
        return parse_quantity(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 512Mi, 8Gi)") from None


class Toleration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class NodeRequirement(BaseModel):
    """One required node-affinity expression, e.g. nvidia.com/gpu.product In [NVIDIA-L4]."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = "In"
    values: tuple[str, ...] = ()


class GpuPool(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    node_selector: dict[str, str] = {}
    tolerations: tuple[Toleration, ...] = ()
    node_affinity: tuple[NodeRequirement, ...] = ()


class MaxOverrides(BaseModel):
    """Upper bounds a run's resource overrides must stay within (limits, not requests)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu: str = "2"
    memory: str = "4Gi"
    gpu: int = Field(default=0, ge=0, le=8)

    @field_validator("cpu", "memory")
    @classmethod
    def _is_quantity(cls, value: str) -> str:
        quantity(value)
        return value


class TeamEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    namespace: str
    pool: str
    pool_slots: int = Field(default=1, ge=1)
    store_secret: str = "trainyard-store"
    keep_failed_pods: bool = False
    max_overrides: MaxOverrides = MaxOverrides()
    gpu_pool: GpuPool = GpuPool()
    # The Airflow connection whose credentials create this team's pods; RBAC binds each team's
    # worker identity in its own namespace only (deploy/rbac.yaml). Default: kubernetes_<team>.
    kubernetes_conn_id: str = ""

    @model_validator(mode="after")
    def _default_connection(self) -> TeamEntry:
        if not self.kubernetes_conn_id:
            object.__setattr__(self, "kubernetes_conn_id", f"kubernetes_{self.name}")
        return self

    @field_validator("name", "namespace", "store_secret")
    @classmethod
    def _is_dns_label(cls, value: str) -> str:
        if not _DNS_LABEL_RE.match(value):
            raise ValueError(f"{value!r} must be a DNS label: lowercase letters, digits and '-', at most 63")
        return value


class Teams:
    def __init__(self, teams: dict[str, TeamEntry]):
        self.teams = teams

    def team(self, name: str) -> TeamEntry:
        if name not in self.teams:
            raise UnknownName(f"team {name!r} is not configured; configured: {', '.join(sorted(self.teams))}")
        return self.teams[name]


def load_teams(path: Path = DEFAULT_TEAMS_PATH) -> Teams:
    """Read config/teams.yaml (a small local file: cheap enough for DAG parse time)."""
    raw = read_catalog_file(path, "teams")
    teams: dict[str, TeamEntry] = {}
    for name, spec in raw.items():
        try:
            teams[name] = TeamEntry(name=name, **(spec or {}))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise TeamsConfigError(f"{path}: team {name!r} is invalid: {problems}") from None
    if "default" not in teams:
        raise TeamsConfigError(f"{path}: a 'default' team is required (runs that name no team use it)")
    return Teams(teams)
