"""Real headless Chromium (Debian's ``chromium``, see scripts/ensure-tools.sh) for the
page tests: one load per page dumps the DOM (after scripts ran) and takes a screenshot."""

from __future__ import annotations

import asyncio
import struct
import uuid
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1200,1400"]


def _binary() -> str:
    if not CHROMIUM.exists():
        raise AssertionError(f"{CHROMIUM} is missing: run scripts/ensure-tools.sh")
    return str(CHROMIUM)


async def _chromium(tmp: Path, *args: str, timeout: float = 60) -> bytes:
    profile = tmp / f"chromium-profile-{uuid.uuid4().hex}"
    # The service runs in this event loop: the browser must not block it.
    process = await asyncio.create_subprocess_exec(
        _binary(), *FLAGS, f"--user-data-dir={profile}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    return out


async def render(tmp: Path, url: str, name: str) -> tuple[str, int, int, int]:
    """Load ``url`` once: the DOM after load (scripts ran), and a screenshot's width,
    height (from the PNG's IHDR chunk) and size in bytes."""
    path = tmp / f"{name}.png"
    dom = (await _chromium(tmp, f"--screenshot={path}", "--dump-dom", url)).decode()
    data = await asyncio.to_thread(path.read_bytes)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return dom, width, height, len(data)
