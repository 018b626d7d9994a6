"""What `make bench` prints when a benchmark misses a target: one line naming each missed target and
by how much, and exit 1 (bench/targets.py, used by every benchmark with a target)."""
from __future__ import annotations

import sys

from tests.conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "bench"))  # bench/ is scripts, not a package

from targets import Target, percent, times, verdict  # noqa: E402


def test_a_missed_target_is_named_with_its_shortfall_in_one_line_and_exits_1(capsys):
    code = verdict("hyperparameter_search", [
        Target("epochs saved by early stopping", 1 - 68 / 96, 0.30, at_least=True, show=percent),
        Target("best objective gap to the baseline", 0.0011, 0.01, at_least=False, show="{:.4f}".format),
        Target.holds("same weights", True),
    ])

    assert code == 1
    assert capsys.readouterr().out == (
        "hyperparameter_search: TARGET MISSED: epochs saved by early stopping 29.2% (target >= 30.0%, short by 0.8%)\n"
    )


def test_every_missed_target_is_on_the_one_line_an_upper_bound_with_how_far_over(capsys):
    code = verdict("checkpoint_overhead", [
        Target("checkpointing's share of the trainer's wall time", 0.071, 0.05, at_least=False, show=percent),
        Target.holds("same weights with and without checkpoints", False),
    ])

    assert code == 1
    assert capsys.readouterr().out == (
        "checkpoint_overhead: TARGET MISSED: checkpointing's share of the trainer's wall time 7.1% "
        "(target <= 5.0%, over by 2.1%); same weights with and without checkpoints: no\n"
    )


def test_met_targets_exit_0_and_still_show_the_measured_values(capsys):
    code = verdict("client_refusal", [Target("refusal / importing the REST client", 0.13, 0.5, at_least=False, show=times)])

    assert code == 0
    assert capsys.readouterr().out == "client_refusal: targets met: refusal / importing the REST client 0.13x (target <= 0.50x)\n"
