"""A benchmark's targets and its verdict: one line naming every missed target and by how much, and the
exit code (1 on a miss) that `make bench` collects."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str  # what was measured, in the docs' words: "epochs saved by early stopping"
    measured: float
    bound: float
    at_least: bool  # True: measured >= bound passes; False: measured <= bound passes
    show: Callable[[float], str] = "{:.2f}".format  # how a value and a difference are written
    yes_no: bool = False  # a condition that holds or not (measured 1.0 or 0.0): no distance to report

    @classmethod
    def holds(cls, name: str, ok: bool) -> Target:
        return cls(name, float(ok), 1.0, at_least=True, yes_no=True)

    @property
    def met(self) -> bool:
        return self.measured >= self.bound if self.at_least else self.measured <= self.bound

    def line(self) -> str:
        if self.yes_no:
            return f"{self.name}: {'yes' if self.met else 'no'}"
        relation, miss = (">=", "short by") if self.at_least else ("<=", "over by")
        by = "" if self.met else f", {miss} {self.show(abs(self.measured - self.bound))}"
        return f"{self.name} {self.show(self.measured)} (target {relation} {self.show(self.bound)}{by})"


def verdict(benchmark: str, targets: list[Target]) -> int:
    """Print the one verdict line; 0 when every target is met, 1 otherwise."""
    missed = [target for target in targets if not target.met]
    if not missed:
        print(f"{benchmark}: targets met: " + "; ".join(target.line() for target in targets))
        return 0
    print(f"{benchmark}: TARGET MISSED: " + "; ".join(target.line() for target in missed))
    return 1


def percent(value: float) -> str:
    """A share, and a difference of shares (percentage points), as percent."""
    return f"{100 * value:.1f}%"


def times(value: float) -> str:
    """A ratio to a baseline."""
    return f"{value:.2f}x"
