#!/opt/venv/bin/python
"""`trainyard-http-ok URL`: exit 0 when GET URL answers 2xx within 5 s, else exit 1 with one line.

The compose stack's health checks call it as an exec-form command whose arguments hold no spaces:
podman 4.3's Docker API splits each argument of a `["CMD", ...]` check on whitespace, so a
`python -c "import urllib.request; ..."` check ran `python -c import` and never passed.
"""
from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT_S = 5


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: trainyard-http-ok URL", file=sys.stderr)
        return 2
    url = argv[0]
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as error:  # HTTPError (4xx/5xx) is a URLError too
        print(f"{url}: {error}", file=sys.stderr)
        return 1
    if not 200 <= status < 300:
        print(f"{url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
