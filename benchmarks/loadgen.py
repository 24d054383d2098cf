"""Debian's ``wrk`` as the load generator (pinned to its own core), and its output parsed."""

from __future__ import annotations

import re
import shutil
import subprocess

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def available() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * UNITS[unit]


def run(
    url: str, token: str, connections: int, seconds: float, cpu: int | None = 1
) -> dict[str, float]:
    """Requests/s, p50/p90/p99 latency (ms), errors, for ``connections`` keep-alive clients."""
    cmd = [
        *(["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []),
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s",
        "-H", f"Authorization: token {token}", url,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])}
    for pct, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M):
        result[f"p{pct}"] = _ms(value)
    result["requests"] = float(re.search(r"(\d+) requests in", out)[1])
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["errors"] = float(bad[1]) if bad else 0.0
    if errors:
        result["errors"] += sum(map(float, errors.groups()))
    return result
