"""What every benchmark section shares: the report, percentiles, and the real parts.

Benchmarks run the same processes and databases as production-like tests: a Tansu
broker started here, PostgreSQL at ``ESCALATOR_TEST_PG_URL`` (default the local
cluster), services started as real processes by ``scripts.devstack``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float:
    """CPU seconds used so far by every ``postgres`` process: the server's share of a run
    (on the bench machine nothing else uses it)."""
    used = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    used += process_cpu(int(entry.name))
    return used


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


class RawHttpClient:
    """A minimal HTTP/1.1 keep-alive client for load generation, one connection each.

    httpx's pool is the bottleneck beyond a handful of concurrent requests (a no-op
    FastAPI endpoint measured ~100 req/s with 32 httpx workers against ~460 with 8), which
    would make the "framework ceiling" a measure of the client. Writing pre-built requests
    on a plain socket costs almost nothing, so the server is what gets measured.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._reader: Any = None
        self._writer: Any = None

    async def __aenter__(self) -> RawHttpClient:
        import asyncio

        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        self._writer.close()

    async def post_json(self, path: str, body: Any) -> tuple[int, bytes]:
        return await self.post(path, json.dumps(body).encode(), "application/json")

    async def post(self, path: str, payload: bytes, content_type: str) -> tuple[int, bytes]:
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n"
                f"{self.extra}\r\n").encode()
        self._writer.write(head + payload)
        status_line = await self._reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
        return status, await self._reader.readexactly(length)


async def open_loop(url: str, rate: float, seconds: float, headers: dict[str, str],
                    send: Callable[[RawHttpClient, int, float], Awaitable[None]],
                    connections: int = 64) -> float:
    """Request ``n`` is due at ``n / rate`` s: ``send(client, n, due)`` runs then on a free
    keep-alive connection, ``due`` being its wall-clock time (``time.time()``), so
    latency measured from it counts waiting for a connection too (open loop: a slow
    system is not offered less). Returns the rate actually offered.
    """
    import asyncio

    host, port = url.removeprefix("http://").split(":")
    free: asyncio.Queue[RawHttpClient] = asyncio.Queue()
    opened = []
    for _ in range(connections):
        client = RawHttpClient(host, int(port), headers)
        opened.append(await client.__aenter__())
        free.put_nowait(client)

    async def one(n: int, due: float) -> None:
        client = await free.get()
        try:
            await send(client, n, due)
        finally:
            free.put_nowait(client)

    total = max(int(rate * seconds), 1)
    began, began_wall = time.perf_counter(), time.time()
    tasks = []
    try:
        for n in range(total):
            delay = began + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n, began_wall + n / rate)))
        offered = total / (time.perf_counter() - began)
        await asyncio.gather(*tasks)
    finally:
        for client in opened:
            await client.__aexit__()
    return offered


#: How often the stand-in for autovacuum looks (autovacuum's own default is a minute; the
#: benchmark's phases are shorter than a running system's day, so it looks sooner).
ANALYZE_EVERY = float(os.environ.get("BENCH_ANALYZE_EVERY", "10"))


@dataclass
class StandIn:
    """What ``autovacuum_stand_in`` did: whether it ran (the server has autovacuum off)
    and how many tables it vacuumed and analysed, for the report."""

    running: bool = False
    analysed: int = 0
    vacuumed: int = 0

    def report(self, report: Report, section: str) -> None:
        if self.running:
            report.add(section, "tables analysed by the autovacuum stand-in (server: off)",
                       self.analysed, "tables")
            report.add(section, "tables vacuumed by the autovacuum stand-in", self.vacuumed,
                       "tables")


@contextlib.asynccontextmanager
async def autovacuum_stand_in(schemas: list[str], every: float = ANALYZE_EVERY
                              ) -> AsyncIterator[StandIn]:
    """While the block runs, vacuum and analyse the tables of ``schemas`` as autovacuum
    would, if the server has it off.

    Without statistics, PostgreSQL keeps planning every table as the empty one it was
    at start: the plans the drivers prepared then scan whole tables for each lookup,
    costing more the longer the benchmark runs (at 100 events/s for a few minutes, the
    notifier's claim of due deliveries grew to 4 ms a call, and a batch of 1,000 new
    tickets spent 120 ms looking up 1,000 names). Without vacuuming, every updated row
    leaves its dead versions, and their index entries, for each later scan to step over
    (the deliveries a sender claims and settles, the clocks a timer moves, the outbox
    rows a relay marks). A server with its default settings analyses a table once 50
    rows plus a tenth of it changed, and vacuums it once 50 rows plus a fifth of it are
    dead or 1,000 plus a fifth were inserted; so does this, by the same rules.
    """
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(PG_URL)
    done = StandIn()
    try:
        async with engine.connect() as conn:
            if (await conn.scalar(text("SHOW autovacuum"))) == "on":
                yield done
                return
        done.running = True

        async def tend() -> None:
            while True:
                await asyncio.sleep(every)
                async with engine.connect() as conn:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    due = (await conn.execute(text(
                        "SELECT format('%I.%I', s.schemaname, s.relname),"
                        " s.n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0)"
                        " OR s.n_ins_since_vacuum > 1000 + 0.2 * greatest(c.reltuples, 0),"
                        " s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)"
                        " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
                        " WHERE s.schemaname = ANY(:schemas)"),
                        {"schemas": schemas})).all()
                    for table, vacuum, analyse in due:
                        if vacuum:
                            await conn.execute(text(f"VACUUM {table}"))  # outside a transaction
                            done.vacuumed += 1
                        if analyse:
                            await conn.execute(text(f"ANALYZE {table}"))
                            done.analysed += 1

        task = asyncio.create_task(tend())
        try:
            yield done
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await engine.dispose()
