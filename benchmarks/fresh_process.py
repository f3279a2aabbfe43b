"""Benchmark rows that run in a fresh process of their own script, so that each row's peak RSS (``ru_maxrss``) is its
own: the script re-runs itself with ``--child ARGS`` and prints its result as JSON on the last line of stdout."""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_fresh(script: str, *args: object) -> dict:
    """Run ``script --child ARGS`` in a new Python process and return its last stdout line, parsed as JSON."""
    done = subprocess.run([sys.executable, script, "--child", *map(str, args)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
