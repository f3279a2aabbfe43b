"""Benchmark rows that run in a fresh process of their own script, so that each row's peak RSS (``ru_maxrss``) is its
own: the script re-runs itself with ``--child ARGS`` and prints its result as JSON on the last line of stdout."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (or since :func:`reset_peak_rss`), in MiB."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start :func:`peak_rss_mib` anew from the current resident memory (Linux: ``/proc/self/clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")


def run_fresh(script: str, *args: object) -> dict:
    """Run ``script --child ARGS`` in a new Python process and return its last stdout line, parsed as JSON."""
    done = subprocess.run([sys.executable, script, "--child", *map(str, args)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
