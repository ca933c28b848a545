"""The load generator: wrk with a Lua script when installed, else an asyncio HTTP/1.1 client.

`await load(url, connections=C, seconds=S, body=b"...")` keeps C keep-alive connections busy
for S seconds (POST when there is a body, else GET) and returns requests per second and latency
percentiles. wrk runs one thread (on a 2-core machine every extra thread takes CPU from the
server); its Lua `done()` hook prints the numbers as one JSON line. `BENCH_LOAD=python` forces
the Python client, which costs far more CPU per request than wrk: compare runs with one tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

MARK = "BENCHJSON "

LUA = """
wrk.method = "%(method)s"
wrk.headers["Content-Type"] = "application/json"
%(headers)s
%(body)s
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,'
    .. '"errors":%%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass(frozen=True)
class LoadResult:
    tool: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def tool() -> str:
    """ "wrk" when it is installed (and not overridden by BENCH_LOAD=python), else "python"."""
    if os.environ.get("BENCH_LOAD", "") == "python" or shutil.which("wrk") is None:
        return "python"
    return "wrk"


def describe_tool() -> str:
    if tool() == "wrk":
        return "wrk (1 thread, Lua script for POST bodies and percentiles)"
    return "Python asyncio client (raw HTTP/1.1 keep-alive streams)"


async def load(
    url: str,
    *,
    connections: int,
    seconds: float,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """`headers` are sent besides (or instead of) `Content-Type: application/json`."""
    if tool() == "wrk":
        return await _wrk(url, connections, seconds, body, headers or {})
    return await _python(url, connections, seconds, body, headers or {})


# --- wrk ----------------------------------------------------------------------------------------


def _lua_string(data: bytes) -> str:
    """Any bytes as a Lua string literal (Lua strings are 8-bit clean; escapes keep it so)."""
    safe = set(range(0x20, 0x7F)) - {ord('"'), ord("\\")}
    return '"' + "".join(chr(b) if b in safe else f"\\{b:03d}" for b in data) + '"'


async def _wrk(
    url: str, connections: int, seconds: float, body: bytes | None, headers: Mapping[str, str]
) -> LoadResult:
    body_line = f"wrk.body = {_lua_string(body)}" if body is not None else ""
    header_lines = "\n".join(
        f"wrk.headers[{_lua_string(k.encode())}] = {_lua_string(v.encode())}"
        for k, v in headers.items()
    )
    script = LUA % {
        "method": "POST" if body else "GET",
        "headers": header_lines,
        "body": body_line,
        "mark": MARK,
    }
    duration = max(1, math.ceil(seconds))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s"]
        argv += ["-s", handle.name, url]
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(process.communicate(), duration + 60)
    finally:
        os.unlink(handle.name)
    text = out.decode(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{text}")
    raw = msgspec.json.decode(line[len(MARK) :])
    return LoadResult(
        "wrk",
        raw["requests"],
        raw["duration_us"] / 1e6,
        raw["p50_us"] / 1e3,
        raw["p99_us"] / 1e3,
        raw["errors"],
    )


# --- the Python fallback ------------------------------------------------------------------------


@dataclass
class _Tally:
    latencies: list[float]
    errors: int = 0


async def _python(
    url: str, connections: int, seconds: float, body: bytes | None, headers: Mapping[str, str]
) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    head = f"{'POST' if body else 'GET'} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if body is not None:
        fields = {"Content-Type": "application/json", **headers}
        head += "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        head += f"Content-Length: {len(body)}\r\n"
    request = (head + "\r\n").encode() + (body or b"")
    tally = _Tally([])
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(
        *(_connection(host, port, request, deadline, tally) for _ in range(connections))
    )
    elapsed = time.perf_counter() - start
    ordered = sorted(tally.latencies) or [0.0]

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    return LoadResult("python", len(tally.latencies), elapsed, pct(0.5), pct(0.99), tally.errors)


async def _connection(host: str, port: int, request: bytes, deadline: float, tally: _Tally) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            writer.write(request)
            try:
                status, keep = await asyncio.wait_for(_response(reader), 30)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                tally.errors += 1
                status, keep = 0, False
            tally.latencies.append(time.perf_counter() - sent)
            if status >= 400:
                tally.errors += 1
            if not keep:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; its status and whether the connection stays open."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    return status, headers.get("connection") != "close"
