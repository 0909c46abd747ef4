"""What every benchmark section shares: the report, percentiles, and the real parts.

Benchmarks run the same processes and databases as production-like tests: a Tansu
broker started here, PostgreSQL at ``ESCALATOR_TEST_PG_URL`` (default the local
cluster), services started as real processes by ``scripts.devstack``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
PG_URL = os.environ.get("ESCALATOR_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(int(round(pct / 100 * len(ordered) + 0.5)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


@dataclass
class Row:
    section: str
    metric: str
    value: float
    unit: str
    target: str | None = None
    ok: bool | None = None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def add(self, section: str, metric: str, value: float, unit: str, *,
            target: str | None = None, ok: bool | None = None) -> None:
        self.rows.append(Row(section, metric, value, unit, target, ok))
        verdict = "" if ok is None else ("  ok" if ok else "  MISSED")
        goal = f"  (target {target})" if target else ""
        print(f"  {section:<10} {metric:<44} {value:>12.2f} {unit:<8}{goal}{verdict}",
              flush=True)

    def write(self) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / "results.json"
        path.write_text(json.dumps({"machine": machine(), "rows": [vars(r) for r in self.rows]},
                                   indent=2))
        return path


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True, check=False)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "postgres_client": pg.stdout.strip(),
    }
