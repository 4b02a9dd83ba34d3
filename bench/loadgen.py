"""A small loopback load generator for the XML API: N keep-alive HTTPS connections, one packet each in a loop.

Usage (bench/run.py calls it as a separate process so its CPU does not share a GIL with the
measuring code)::

    .venv/bin/python bench/loadgen.py --port 8443 --body-file packet.xml --password PW \\
        --concurrency 16 --duration 5 --max-requests 20000

It speaks HTTP/1.1 directly over asyncio TLS streams instead of going through an HTTP client library:
per request the client spends a few tens of microseconds, so on a small machine the figures describe
the server rather than the client. Every answer must be HTTP 200 and contain ``<status>ok</status>``,
otherwise it counts as an error. The run stops at ``--duration`` seconds or ``--max-requests``
requests, whichever comes first, and prints one JSON object: requests, errors, seconds,
packets_per_second, latency percentiles in milliseconds and the client's own CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import ssl
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

ENDPOINT = "/enterprise/control/agent.php"


@dataclass
class Tally:
    deadline: float
    budget: int
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    started: int = 0

    def take(self) -> bool:
        if self.started >= self.budget or time.perf_counter() >= self.deadline:
            return False
        self.started += 1
        return True

    def error(self, message: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or message[:300]


def build_request(port: int, body: bytes, login: str, password: str) -> bytes:
    head = (
        f"POST {ENDPOINT} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/xml\r\n"
        f"HTTP_AUTH_LOGIN: {login}\r\nHTTP_AUTH_PASSWD: {password}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        for _ in range(1_000_000):  # bounded: a packet answer is a few chunks
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        return status, bytes(body)
    raise RuntimeError(f"answer without length: {head[:200]!r}")


async def client(port: int, request: bytes, context: ssl.SSLContext | None, tally: Tally) -> None:
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        while tally.take():
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
            start = time.perf_counter()
            try:
                writer.write(request)
                status, body = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, RuntimeError) as exc:
                tally.error(f"{type(exc).__name__}: {exc}")
                writer.close()
                reader = writer = None
                continue
            elapsed = time.perf_counter() - start
            if status != 200 or b"<status>ok</status>" not in body:
                tally.error(f"HTTP {status}: {body[:300]!r}")
            else:
                tally.latencies.append(elapsed)
    finally:
        if writer is not None:
            writer.close()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(args: argparse.Namespace) -> dict[str, object]:
    body = args.body_file.read_bytes()
    request = build_request(args.port, body, args.login, args.password)
    context = None
    if not args.http:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    tally = Tally(deadline=time.perf_counter() + args.duration, budget=args.max_requests)
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(client(args.port, request, context, tally) for _ in range(args.concurrency))),
        timeout=args.duration + 60,
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    ms = [value * 1000 for value in tally.latencies]
    return {
        "requests": len(ms),
        "errors": tally.errors,
        "first_error": tally.first_error,
        "seconds": seconds,
        "concurrency": args.concurrency,
        "packets_per_second": len(ms) / seconds if seconds else 0.0,
        "p50_ms": percentile(ms, 0.50),
        "p90_ms": percentile(ms, 0.90),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms, default=float("nan")),
        "mean_ms": statistics.fmean(ms) if ms else float("nan"),
        "client_cpu_seconds": after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-file", type=Path, required=True, help="the XML packet to send")
    parser.add_argument("--login", default="admin")
    parser.add_argument("--password", required=True)
    parser.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds (upper bound)")
    parser.add_argument("--max-requests", type=int, default=50_000, help="requests (upper bound)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
