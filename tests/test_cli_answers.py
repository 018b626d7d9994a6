"""The CLI answers: every refusal is one line naming the problem with the right exit code, never a
traceback; requests that can be refused before Airflow starts are, without importing it."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT, run_cli

EXIT_BAD_REQUEST = 2


def answered_in_one_line(out: subprocess.CompletedProcess, code: int, *words: str) -> str:
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args,words", [
    (["run", "--dataset", "digitz", "--algorithm", "digits-cnn"],
     ["dataset 'digitz' is not in the catalog", "did you mean 'digits'?", "known: digits, intents"]),
    (["run", "--dataset", "digits", "--algorithm", "digit-cnn"],
     ["algorithm 'digit-cnn' is not registered", "did you mean 'digits-cnn'?"]),
    (["run", "--dataset", "intents", "--algorithm", "digits-cnn"],
     ["trains on 'digits' data", "dataset 'intents' has schema 'intent'", "algorithms for it: intent-classification"]),
    (["run", "--dataset", "digits", "--algorithm", "digits-cnn", "--learning-rate", "11"], ["learning_rate"]),
    (["run", "--dataset", "digits", "--algorithm", "digits-cnn", "--model-name", "   "], ["--model-name is empty"]),
    (["run", "--dataset", "digits", "--algorithm", "digits-cnn", "--model-name", "Digits"], ["model name 'Digits'"]),
])
def test_a_request_refused_before_airflow_starts_is_one_line_and_exit_2(store_root, args, words):
    answered_in_one_line(run_cli(*args), EXIT_BAD_REQUEST, *words)
    assert not store_root.exists()  # nothing ran


def test_the_refusal_path_never_imports_airflow():
    code = (
        "import sys; from trainyard.cli import main; "
        "rc = main(['run', '--dataset', 'digitz', '--algorithm', 'digits-cnn']); "
        "print('RC', rc, 'AIRFLOW', any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert "RC 2 AIRFLOW False" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("command", [["models", "nope"], ["lineage", "nope@1"], ["lineage", "nope"],
                                     ["reproduce", "nope@1"], ["verify", "nope"]])
def test_an_unknown_model_is_no_such_model_with_the_known_ones(local_store, command):
    from tests.pipeline_fixtures import make_plan, snapshot_of
    from tests.test_register import register, trainer_outputs

    plan = make_plan("known-1")
    register(local_store, plan, snapshot_of(local_store), trainer_outputs(local_store, plan, b"w"))
    answered_in_one_line(run_cli(*command), EXIT_BAD_REQUEST, "no such model 'nope'",
                         "registered models: digits-digits-cnn")


def test_a_near_miss_model_name_suggests_the_real_one(local_store):
    from tests.pipeline_fixtures import make_plan, snapshot_of
    from tests.test_register import register, trainer_outputs

    plan = make_plan("known-2")
    register(local_store, plan, snapshot_of(local_store), trainer_outputs(local_store, plan, b"w"))
    answered_in_one_line(run_cli("models", "digits-digits-cnm"), EXIT_BAD_REQUEST, "did you mean 'digits-digits-cnn'?")


@pytest.mark.parametrize("content,words", [
    (None, ["catalog file not found"]),
    ("digits: [unclosed\n", ["not valid YAML at line"]),
    ("- just\n- a list\n", ["expected a mapping of datasets by name"]),
    ("digits:\n  source: datasets/digits\n", ["dataset 'digits': missing 'schema'"]),
])
def test_a_missing_or_malformed_catalog_file_is_one_line_naming_the_file(store_root, tmp_path, content, words):
    catalog = tmp_path / "datasets.yaml"
    if content is not None:
        catalog.write_text(content)
    out = run_cli("run", "--dataset", "digits", "--algorithm", "digits-cnn",
                  env={"TRAINYARD_DATASETS_CATALOG": str(catalog)})
    answered_in_one_line(out, EXIT_BAD_REQUEST, str(catalog), *words)


def test_registry_defaults_out_of_bounds_are_named(store_root, tmp_path):
    algorithms = (PROJECT_ROOT / "config" / "algorithms.yaml").read_text().replace("epochs: 6", "epochs: 0")
    (tmp_path / "algorithms.yaml").write_text(algorithms)
    out = run_cli("run", "--dataset", "digits", "--algorithm", "digits-cnn",
                  env={"TRAINYARD_ALGORITHMS_CATALOG": str(tmp_path / "algorithms.yaml")})
    answered_in_one_line(out, EXIT_BAD_REQUEST, "'digits-cnn'", "registry defaults are out of bounds", "epochs")


def test_a_reader_that_closes_the_pipe_early_ends_the_command_quietly(local_store):
    from tests.pipeline_fixtures import make_plan, snapshot_of
    from tests.test_register import register, trainer_outputs

    plan = make_plan("pipe-1")
    register(local_store, plan, snapshot_of(local_store), trainer_outputs(local_store, plan, b"w"))
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that has already exited
    proc = subprocess.run([sys.executable, "-m", "trainyard.cli", "models"], stdout=write_end,
                          stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT, timeout=300)
    os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == ""


def test_a_bug_is_one_line_naming_the_file_that_keeps_its_traceback(capsys):
    from trainyard.cli.errors import EXIT_INTERNAL, run_command

    def broken_command(_args):
        return 1 // 0

    assert run_command(broken_command, None) == EXIT_INTERNAL
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith("trainyard: internal error: ZeroDivisionError")
    saved = line.rsplit("traceback in ", 1)[1].rstrip(")")
    assert "broken_command" in open(saved).read()


def _options():
    from trainyard.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command, sub in commands.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                yield command, action


@pytest.mark.parametrize("command,action", list(_options()), ids=lambda v: getattr(v, "dest", v))
def test_every_help_option_says_what_it_is_its_default_and_its_range(command, action):
    assert action.help and len(action.help) > 15, f"{command} {action.dest}: no description"
    if action.option_strings:  # positionals are required: they have no default
        assert "default" in action.help or "required" in action.help, f"{command} {action.dest}: {action.help}"
    if action.type in (int, float):
        assert "range:" in action.help, f"{command} {action.dest}: {action.help}"


def test_help_explains_how_models_are_named():
    for command in ("run", "lineage", "models", "reproduce"):
        assert "<dataset>-<algorithm>" in run_cli(command, "--help").stdout


@pytest.mark.parametrize("args", [["runs", "--limit", "0"], ["status", "r1", "--poll-s", "-1"]])
def test_a_count_or_interval_below_its_help_range_is_refused_before_any_network(args):
    out = run_cli(*args, "--airflow", "http://127.0.0.1:9")
    assert out.returncode == EXIT_BAD_REQUEST and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith("must be > 0, got " + args[-1]), out.stderr
