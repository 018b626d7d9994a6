"""The inside of a warm interpreter (steps/warm/interpreter.py):

    python -m steps.warm.boot PRELOAD...

runs each PRELOAD (`module` is imported; `module:function` is imported and called), then waits for
one job on stdin and runs its entrypoint exactly as `python ENTRYPOINT ARG...` would: the job's
environment replaces this process's whole environment, the working directory and sys.argv are the
job's, and the script's directory leads sys.path."""
from __future__ import annotations

import importlib
import json
import os
import runpy
import sys
import tempfile


def preload(spec: str) -> None:
    module, _, function = spec.partition(":")
    loaded = importlib.import_module(module)
    if function:
        getattr(loaded, function)()


#: Locale variables: with none of them set, a new Python coerces the C locale and adds LC_CTYPE to
#: its own environment (PEP 538). This interpreter was started without them, so if it has LC_CTYPE
#: now, that is the coercion a new process with the job's environment would make too.
_LOCALE_VARIABLES = ("LC_ALL", "LC_CTYPE", "LANG")


def job_environment(env: dict[str, str], coerced_lc_ctype: str | None) -> dict[str, str]:
    if coerced_lc_ctype and env.get("PYTHONCOERCECLOCALE") != "0" and not any(v in env for v in _LOCALE_VARIABLES):
        return {**env, "LC_CTYPE": coerced_lc_ctype}
    return dict(env)


def main(preloads: list[str]) -> None:
    coerced_lc_ctype = os.environ.get("LC_CTYPE")
    for spec in preloads:
        preload(spec)
    line = sys.stdin.readline()
    if not line:  # discarded before it got a job
        os._exit(0)
    job = json.loads(line)
    os.environ.clear()
    os.environ.update(job_environment(job["env"], coerced_lc_ctype))
    tempfile.tempdir = None  # recomputed from the job's TMPDIR on first use
    os.chdir(job["cwd"])
    entrypoint = job["entrypoint"]
    sys.argv = [entrypoint, *job.get("args", [])]
    sys.path[0] = os.path.dirname(entrypoint)
    sys.stdin = open(os.devnull)  # a cold process's stdin is never read either; the job pipe is closed
    runpy.run_path(entrypoint, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
