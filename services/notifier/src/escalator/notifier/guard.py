"""SSRF guard: a rule or target must not turn the notifier into a proxy to internal hosts.

A destination passes when its host is on the allowlist (if one is set) and every
address it resolves to is public, unless that host or address was explicitly allowed
for private use. Checked at send time, on the resolved addresses, so a public name
pointing at 10.0.0.1 is refused too. Results are cached briefly per host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from urllib.parse import urlsplit

_TTL = 30.0


class DestinationRefused(Exception):
    """The URL may not be called; permanent, so the delivery fails without retries."""


class Guard:
    def __init__(self, allowed_hosts: list[str], private_allowed: list[str],
                 trusted_urls: list[str] | None = None) -> None:
        self._allowed = [h.lower() for h in allowed_hosts]
        self._private = {h.lower() for h in private_allowed}
        self._trusted = {(urlsplit(u).hostname or "").lower() for u in trusted_urls or []}
        self._cache: dict[str, tuple[float, str | None]] = {}

    def _host_allowed(self, host: str) -> bool:
        if not self._allowed or host in self._trusted:
            return True
        return any(host == a or (a.startswith(".") and host.endswith(a)) for a in self._allowed)

    async def check(self, url: str) -> None:
        """Raise ``DestinationRefused`` naming the reason, or return when the URL may go."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise DestinationRefused(f"not an http(s) URL: {url}")
        cached = self._cache.get(host)
        if cached is not None and cached[0] > time.monotonic():
            verdict = cached[1]
        else:
            verdict = await self._verdict(host, parts.port or (443 if parts.scheme == "https"
                                                                else 80))
            self._cache[host] = (time.monotonic() + _TTL, verdict)
        if verdict is not None:
            raise DestinationRefused(verdict)

    async def _verdict(self, host: str, port: int) -> str | None:
        if not self._host_allowed(host):
            return f"host {host} is not on the webhook allowlist"
        if host in self._private or host in self._trusted:
            return None
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                return f"cannot resolve {host}: {exc}"
            addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        for address in addresses:
            if str(address) in self._private:
                continue
            if not address.is_global or address.is_multicast:
                return f"host {host} resolves to non-public address {address}"
        return None
