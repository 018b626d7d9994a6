"""A study's two pictures, as PNG bytes (matplotlib, no display): the optimisation history and each
parameter against the objective."""
from __future__ import annotations

import io
import math
from typing import Any

from steps.tuning.study_record import StudyRecord, TrialRecord

_STYLE = {  # status -> marker, colour, label
    "completed": ("o", "tab:blue", "completed"),
    "pruned": ("x", "tab:orange", "pruned (objective when stopped)"),
}


def _figure(width_in: float, height_in: float):
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in tasks and trainers alike
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=100)


def _png(figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _scored(study: StudyRecord) -> list[TrialRecord]:
    return sorted((t for t in study.trials if t.objective is not None), key=lambda t: t.number)


def optimization_history_png(study: StudyRecord) -> bytes:
    figure = _figure(8, 4.5)
    axes = figure.add_subplot()
    trials = _scored(study)
    for status, (marker, colour, label) in _STYLE.items():
        points = [t for t in trials if t.status == status]
        if points:
            axes.scatter([t.number for t in points], [t.objective for t in points], marker=marker, color=colour, label=label)
    best, line_x, line_y = -math.inf, [], []
    for trial in trials:
        if trial.status == "completed" and trial.objective is not None and trial.objective > best:
            best = trial.objective
        if best > -math.inf:
            line_x.append(trial.number)
            line_y.append(best)
    if line_x:
        axes.step(line_x, line_y, where="post", color="tab:red", label="best completed so far")
    failed = [t.number for t in study.trials if t.status == "failed"]
    title = f"study {study.study_id[:48]}: {study.sampler} sampler, {study.pruner.kind} pruner"
    axes.set_title(title + (f"; failed trials: {', '.join(map(str, failed))}" if failed else ""), fontsize=9)
    axes.set_xlabel("trial")
    axes.set_ylabel(study.objective)
    axes.grid(alpha=0.3)
    if trials:
        axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return _png(figure)


def parameters_png(study: StudyRecord) -> bytes:
    names = sorted(study.search_space)
    columns = min(len(names), 3) or 1
    rows = math.ceil(len(names) / columns) or 1
    figure = _figure(4 * columns, 3.2 * rows)
    trials = _scored(study)
    for index, name in enumerate(names, start=1):
        axes = figure.add_subplot(rows, columns, index)
        spec: dict[str, Any] = study.search_space[name]
        categorical = spec.get("type") == "categorical"
        choices = [str(c) for c in spec.get("choices", [])]
        for status, (marker, colour, label) in _STYLE.items():
            points = [t for t in trials if t.status == status and name in t.params]
            if not points:
                continue
            # Categories sit at their position in the choices, in the order the space lists them.
            xs = [choices.index(str(t.params[name])) if categorical else t.params[name] for t in points]
            axes.scatter(xs, [t.objective for t in points], marker=marker, color=colour, label=label)
        if categorical:
            axes.set_xticks(range(len(choices)), choices)
        elif spec.get("log"):
            from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

            axes.set_xscale("log")
            # 1-2-5 ticks read well over the one or two decades a space usually spans.
            axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axes.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            axes.xaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel(name)
        axes.set_ylabel(study.objective)
        axes.grid(alpha=0.3)
    figure.suptitle(f"parameters against {study.objective}", fontsize=10)
    figure.tight_layout()
    return _png(figure)
