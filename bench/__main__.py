"""``make bench``: run every benchmark section (or those named) and print one table.

    python -m bench                # all sections
    python -m bench ingest router  # some

Each section is a module in this package with ``async def run(report: Report) -> None``.
Results also go to ``bench-results/results.json`` with the machine they came from.
"""

from __future__ import annotations

import importlib
import sys

import uvloop

from bench.common import Report, machine

SECTIONS = ["ingest", "router", "sla", "notifier", "pipeline"]


def main() -> None:
    wanted = sys.argv[1:] or SECTIONS
    unknown = [name for name in wanted if name not in SECTIONS]
    if unknown:
        sys.exit(f"unknown sections: {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    report = Report()
    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory']}, "
          f"Python {info['python']}", flush=True)
    for name in wanted:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.{name}":
                raise
            print(f"  {name:<10} (no benchmark yet)")
            continue
        print(f"\n== {name}", flush=True)
        uvloop.run(module.run(report))
    missed = [r for r in report.rows if r.ok is False]
    print(f"\nresults written to {report.write()}; {len(missed)} target(s) missed")


if __name__ == "__main__":
    main()
