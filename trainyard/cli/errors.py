"""How every trainyard command ends: its exit code, and at most one line on stderr when it fails.

Known failures (bad input, unknown names, store problems) print `trainyard: error: <what is wrong>`;
corruption exits 4; a bug prints one line naming a file that keeps its traceback. A reader that
closes the pipe early (`trainyard models | head`) ends the command quietly.
"""
from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

EXIT_OK = 0
EXIT_RUN_FAILED = 1  # the pipeline (or reproduce's trainer) ran and failed
EXIT_BAD_REQUEST = 2  # the request was refused: usage, unknown name, bad value, missing file
EXIT_NOT_REPRODUCED = 3  # reproduce: the weights hash differs
EXIT_CORRUPT = 4  # stored bytes do not match their recorded or pinned sha256
EXIT_INTERNAL = 70  # a bug (EX_SOFTWARE); the traceback is in a file
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as `git log | head` ends

EXIT_CODES_HELP = """exit codes: 0 ok; 1 a pipeline step failed; 2 request refused (bad input, unknown name);
3 reproduce: weights differ; 4 corrupt stored objects found; 70 internal error (traceback saved to a file)

Embedded state (store, stat cache, Airflow's SQLite, logs) lives under $TRAINYARD_HOME
(default ~/.local/share/trainyard); `make demo` uses the same default."""


def one_line(exc: BaseException) -> str:
    from steps.lifecycle.run_failure import one_line as first_line

    return first_line(str(exc)) or type(exc).__name__


def fail(message: str, code: int) -> int:
    print(f"trainyard: error: {message}", file=sys.stderr)
    return code


def _crash_log(exc: BaseException) -> Path | None:
    from steps.store.settings import trainyard_home

    try:
        logs = trainyard_home() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        path = logs / f"crash-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}.log"
        path.write_text("".join(traceback.format_exception(exc)))
        return path
    except OSError:
        return None


def _quiet_broken_pipe() -> int:
    # Point stdout at /dev/null so the interpreter's final flush cannot raise again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def run_command(command: Callable[..., int], args) -> int:
    from steps.store import IntegrityError, StoreError

    try:
        code = command(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print("trainyard: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    # An error may carry its own exit code (the REST client's, trainyard/client/errors.py).
    except IntegrityError as exc:
        return fail(one_line(exc), getattr(exc, "exit_code", EXIT_CORRUPT))
    except (ValueError, LookupError, StoreError) as exc:
        return fail(one_line(exc), getattr(exc, "exit_code", EXIT_BAD_REQUEST))
    except RuntimeError as exc:  # a trainer or Airflow's own set-up failed while running
        return fail(one_line(exc), getattr(exc, "exit_code", EXIT_RUN_FAILED))
    except OSError as exc:  # the filesystem refused something: say what and where
        where = f": {exc.filename}" if exc.filename else ""
        return fail(f"{exc.strerror or exc}{where}", EXIT_BAD_REQUEST)
    except Exception as exc:  # noqa: BLE001 - a bug: one line here, the traceback in a file
        saved = _crash_log(exc)
        kept = f" (traceback in {saved})" if saved else ""
        print(f"trainyard: internal error: {type(exc).__name__}: {one_line(exc)}{kept}", file=sys.stderr)
        return EXIT_INTERNAL
