"""The one way a service process is put together.

``create_app`` wires what every service has: settings, database and migrations, the
outbox relay, the consumer runner, background workers, auth, problem+json errors,
request ids and structured logs, ``/healthz``, ``/readyz``, ``/metrics`` and OpenAPI. A
service supplies only its routers, handlers, migrations and optional start-up work.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from escalator.shared import metrics, problems
from escalator.shared.bodies import BodyGuard
from escalator.shared.bus import broker_reachable
from escalator.shared.consumer import ConsumerRunner, Handlers
from escalator.shared.db import make_engine, make_sessionmaker, ping
from escalator.shared.logs import configure_logging, log_context
from escalator.shared.migrations import upgrade, wait_for_database
from escalator.shared.outbox import Relay
from escalator.shared.retention import prune_forever
from escalator.shared.settings import ApiKeySpec, ServiceSettings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a running service holds; reachable from routes as ``request.app.state.runtime``."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    relay: Relay
    api_keys: dict[str, ApiKeySpec]
    runner: ConsumerRunner | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """CloudEvents ``source`` for everything this service emits."""
        return f"/escalator/{self.settings.service_name}"


Worker = Callable[[Runtime], Awaitable[None]]


@dataclass
class ServiceSpec:
    name: str
    title: str
    description: str
    migrations: Path
    routers: list[APIRouter] = field(default_factory=list)
    handlers: Handlers | None = None
    #: Runs after migrations, before anything is served or consumed (e.g. load YAML).
    on_startup: Worker | None = None
    #: Long-running tasks besides the relay and the consumer (timers, dispatchers).
    workers: list[Worker] = field(default_factory=list)
    #: Record how far the consumer has read (``escalator.shared.progress``), for services
    #: that act on time; their migrations create the ``consumer_progress`` table.
    record_progress: bool = False
    #: The logical topics this service's events go to; its relay vouches for them
    #: (``escalator.shared.watermarks``), so consumers that act on time can wait for it.
    produces: tuple[str, ...] = ()


_RUNTIME = "escalator.runtime"


def runtime_of(session: AsyncSession) -> Runtime:
    """The service a session belongs to, for handlers and service code that need its
    settings or workers (e.g. to wake a timer loop) without global state."""
    runtime: Runtime = session.info[_RUNTIME]
    return runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent."""
    async with get_runtime(request).sessionmaker() as session, session.begin():
        yield session


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


#: CPython's collector thresholds for a service process (the defaults are 700, 10, 10).
GC_THRESHOLDS = (10_000, 50, 50)


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a service process, once it has started.

    A batch of a thousand events allocates tens of thousands of objects at once. With
    the default thresholds the collector ran every few hundred allocations and, every
    hundred runs, walked every object start-up had left (SQLAlchemy's, pydantic's and
    FastAPI's structures, which live as long as the process): 30 % of the sla-timer's CPU
    in a timer burst. Freezing moves what start-up made out of the collector's sight, and
    the higher thresholds make its runs rarer; each still finds the cycles a batch left.
    Only for a process that runs one service for good (``serve``): what is frozen is
    never freed, which tests that start many apps in one process must not pay for.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def create_app(spec: ServiceSpec, settings: ServiceSettings, *,
               owns_process: bool = False) -> FastAPI:
    """``owns_process``: the app is all this process runs (``serve``), so it may tune
    process-wide settings (``tune_gc``) once started."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(spec.name, level=settings.log_level, fmt=settings.log_format)
        engine = make_engine(settings)
        try:
            await wait_for_database(engine)
            await upgrade(engine, settings, spec.migrations)
            sessionmaker = make_sessionmaker(engine)
            relay = Relay(settings, sessionmaker, watermarks=spec.produces)
            relay.install_commit_hook()
            runtime = Runtime(settings, engine, sessionmaker, relay, settings.api_key_table())
            sessionmaker.configure(info={_RUNTIME: runtime})
            app.state.runtime = runtime
            if spec.on_startup is not None:
                await spec.on_startup(runtime)
        except BaseException:
            await engine.dispose()
            raise
        metrics.time_gc()
        relay_task = _supervised(relay.run(), "outbox relay")
        watch_task = _supervised(_watch_dependencies(runtime), "dependency watch")
        lag_task = _supervised(watch_loop_lag(), "event loop lag watch")
        prune_task = _supervised(prune_forever(settings, sessionmaker), "bus pruning")
        runner_task = None
        if spec.handlers is not None:
            runtime.runner = ConsumerRunner(settings, sessionmaker, spec.handlers,
                                            record_progress=spec.record_progress)
            runner_task = _supervised(runtime.runner.run(), "consumer")
        workers = [_supervised(worker(runtime), worker.__name__) for worker in spec.workers]
        if owns_process:
            tune_gc()
        log.info("%s serving on %s:%d", spec.name, settings.host, settings.port)
        try:
            yield
        finally:
            # Consumer first (finish the batch, commit, leave the group), then workers,
            # then the relay, so events produced by the last batch still go out next start.
            if runtime.runner is not None and runner_task is not None:
                runtime.runner.stop()
                await _finish(runner_task, 30)
            for task in workers:
                task.cancel()
                await _finish(task, 5)
            relay.stop()
            await _finish(relay_task, 10)
            for task in (watch_task, lag_task, prune_task):
                task.cancel()
                await _finish(task, 1)
            await engine.dispose()

    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(problems.reject_nul)],
    )
    problems.install(app)
    _install_request_middleware(app, settings)
    _install_operational_routes(app, settings)
    for router in spec.routers:
        app.include_router(router)
    return app


async def _check_dependencies(runtime: Runtime) -> dict[str, str]:
    """What /readyz reports; also feeds ``escalator_dependency_up`` for alerting."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(ping(runtime.engine), 2.0)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        checks["database"] = f"unreachable: {type(exc).__name__}"
    checks["broker"] = "ok" if await broker_reachable(runtime.settings) else "unreachable"
    for dependency, state in checks.items():
        metrics.DEPENDENCY_UP.labels(dependency).set(1 if state == "ok" else 0)
    return checks


async def _watch_dependencies(runtime: Runtime, interval: float = 10.0) -> None:
    """Check the database and broker on a schedule, so Prometheus sees a service that is
    up but not ready (a probe-only /readyz is invisible to alerting)."""
    while True:
        await _check_dependencies(runtime)
        await asyncio.sleep(interval)


async def watch_loop_lag(interval: float = 0.25) -> None:
    """Observe how late the loop wakes a task due every ``interval``
    (``escalator_event_loop_lag_seconds``).

    A loop held by a long batch, a synchronous call or a collection delays every request,
    consumer poll and timer of the process at once, while each of their own timings shows
    only a share of it. Each wake-up costs about 0.2 ms of CPU on the development machine
    (a bare sleep loop's cost; the observation adds a tenth), so four a second keep an
    idle service's CPU near where it was (0.01-0.02 cores) while a 5-minute p99 still
    rests on a thousand wake-ups."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        metrics.EVENT_LOOP_LAG.observe(max(loop.time() - due, 0.0))


def _supervised(coro: Awaitable[None], name: str) -> asyncio.Task[None]:
    """Run a background loop; if it dies, stop the process so the supervisor restarts it.

    A service whose consumer is dead but whose HTTP side still answers would look
    healthy while doing nothing: failing loudly is the safer default.
    """

    async def guard() -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.critical("%s crashed; stopping the process", name, exc_info=True)
            os.kill(os.getpid(), signal.SIGTERM)

    return asyncio.create_task(guard(), name=name)


async def _finish(task: asyncio.Task[None], timeout: float) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
    except (TimeoutError, asyncio.CancelledError):
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


def _install_request_middleware(app: FastAPI, settings: ServiceSettings) -> None:
    # Added first, so it runs inside the observer: refusals are logged and counted too.
    app.add_middleware(BodyGuard, limit=settings.request_byte_limit())
    app.add_middleware(_Observe)


class _Observe:
    """Request id, log context and HTTP metrics for every request, as plain ASGI.

    Starlette's ``@app.middleware("http")`` (BaseHTTPMiddleware) runs every request in
    a task group of its own and wraps each ``receive``; profiling ingest showed that
    costing more CPU per request than the no-op endpoint does in all.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = next((value.decode("latin-1") for name, value in scope["headers"]
                           if name == b"x-request-id"), None) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                template = getattr(scope.get("route"), "path", "unmatched")
                metrics.HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
                metrics.HTTP_LATENCY.labels(scope["method"], template).observe(
                    time.perf_counter() - started
                )


def _install_operational_routes(app: FastAPI, settings: ServiceSettings) -> None:
    ops = APIRouter(tags=["operations"])

    @ops.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @ops.get("/readyz", summary="Database and broker are reachable",
             responses={503: {"description": "Not ready; `checks` says what is down"}})
    async def readyz(request: Request) -> JSONResponse:
        runtime: Runtime | None = getattr(request.app.state, "runtime", None)
        checks = (
            {"startup": "not finished"} if runtime is None
            else await _check_dependencies(runtime)
        )
        ready = all(v == "ok" for v in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        if ready:
            return JSONResponse(body)
        return JSONResponse(
            {"type": "about:blank", "title": "Service Unavailable", "status": 503, **body},
            status_code=503, media_type=problems.PROBLEM_JSON,
        )

    @ops.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(ops)


def serve(spec: ServiceSpec, settings: ServiceSettings) -> None:
    """Entry point body: ``escalator-<service>`` [serve|migrate]."""
    import sys

    import uvicorn

    command = sys.argv[1] if len(sys.argv) > 1 else "serve"
    if command == "migrate":
        configure_logging(spec.name, level=settings.log_level, fmt=settings.log_format)

        async def _migrate() -> None:
            engine = make_engine(settings)
            try:
                await wait_for_database(engine)
                await upgrade(engine, settings, spec.migrations)
            finally:
                await engine.dispose()

        asyncio.run(_migrate())
        return
    if command != "serve":
        sys.exit(f"usage: escalator-{spec.name} [serve|migrate]")
    uvicorn.run(
        create_app(spec, settings, owns_process=True),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=30,
    )
