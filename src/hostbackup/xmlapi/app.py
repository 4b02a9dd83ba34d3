"""The HTTP side of the XML API: one endpoint, POST only, bounded bodies (spec §1.1–§1.4).

Every XML answer is HTTP 200 (clients ignore the status and parse the body); only transport
faults use other codes, with empty bodies. Packets are processed in a worker thread by the
`Gateway`, so database work never blocks the event loop. Two answers are not XML packets
built in memory: download-file streams the file itself, and multipart uploads stream into
files as they arrive.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import TypeVar

import anyio
import anyio.to_thread
from python_multipart.multipart import parse_options_header
from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from hostbackup.errors import ApiError
from hostbackup.xmlapi.context import Download, Services
from hostbackup.xmlapi.gateway import Credentials, Gateway
from hostbackup.xmlapi.upload import UploadReceiver

ENDPOINT = "/enterprise/control/agent.php"
XML_CONTENT_TYPE = "text/xml; charset=UTF-8"
CHUNK = 1024 * 1024
_T = TypeVar("_T")


class BodyTooLarge(Exception):
    pass


def _declared_too_large(request: Request, limit: int) -> bool:
    declared = request.headers.get("content-length")
    return declared is not None and declared.isdigit() and int(declared) > limit


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing it as soon as it exceeds `limit` (declared or streamed)."""
    if _declared_too_large(request, limit):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _file_chunks(download: Download) -> Iterator[bytes]:
    with download.path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def download_response(download: Download) -> Response:
    headers = {
        "Content-Disposition": f"attachment; filename={download.name}",
        "Content-Length": str(download.size),
        "Pragma": "no-cache",
    }
    return StreamingResponse(
        iterate_in_threadpool(_file_chunks(download)), media_type="application/octet-stream", headers=headers
    )


#: Every element of a packet that only reads a row or two: task status polls, settings, protocols.
QUICK_ELEMENTS = frozenset(
    {
        "packet", "backup-manager", "x-backup-manager", "get-tasks-info", "get-task-progress",
        "get-server-wide-settings", "get-supported-protocols", "task-id", "server", "customer-id",
        "customer-login", "webspace-id", "webspace-name", "reseller-id", "reseller-login",
    }
)  # fmt: skip
QUICK_THREADS = 2
_TAG = re.compile(rb"<\s*([A-Za-z_][\w.-]*)")


def is_quick(body: bytes) -> bool:
    """Whether the packet only holds quick reads (a guess from its tags: it only picks the lane)."""
    return len(body) <= 4096 and all(tag.decode() in QUICK_ELEMENTS for tag in _TAG.findall(body))


class Lanes:
    """Two thread pools for packets: a narrow lane for quick reads, the wide default for the rest.

    Billing systems poll get-tasks-info hard. With 16 polls in flight, 16 threads fought over the GIL
    and one API process answered 382 packets/s at 3.6 ms CPU each; two threads answer 743/s at
    1.4 ms. A packet that may wait (a verify, an import, a database or FTP server, the SQLite write
    lock) keeps the wide pool, so it can never hold up the polls.
    """

    def __init__(self) -> None:
        self._quick: anyio.CapacityLimiter | None = None

    async def run(self, body: bytes, func: Callable[..., _T], *args: object) -> _T:
        if not is_quick(body):
            return await run_in_threadpool(func, *args)
        if self._quick is None:  # made in the event loop that uses it
            self._quick = anyio.CapacityLimiter(QUICK_THREADS)
        return await anyio.to_thread.run_sync(functools.partial(func, *args), limiter=self._quick)


def create_app(services: Services) -> Starlette:
    gateway = Gateway(services)
    settings = services.settings
    lanes = Lanes()

    async def upload(request: Request, boundary: bytes) -> Response:
        if _declared_too_large(request, settings.max_upload_bytes):
            return Response(status_code=413, headers={"Connection": "close"})
        client_ip = request.client.host if request.client else ""
        credentials = Credentials.from_headers(dict(request.headers))
        try:
            caller = await run_in_threadpool(gateway.authenticate, credentials, client_ip)
        except ApiError as err:
            return Response(gateway.system_answer(err), media_type=XML_CONTENT_TYPE)
        receiver = UploadReceiver(settings.upload_root / str(caller.id), boundary)
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    raise BodyTooLarge
                await run_in_threadpool(receiver.feed, chunk)
            files = await run_in_threadpool(receiver.finish)
        except BodyTooLarge:
            receiver.abort()
            return Response(status_code=413, headers={"Connection": "close"})
        except Exception:
            receiver.abort()
            raise
        return Response(gateway.upload_answer(files), media_type=XML_CONTENT_TYPE)

    async def agent(request: Request) -> Response:
        if request.method != "POST":
            return Response(status_code=405, headers={"Allow": "POST"})
        kind, options = parse_options_header(request.headers.get("content-type", ""))
        if kind == b"multipart/form-data" and options.get(b"boundary"):
            return await upload(request, options[b"boundary"])
        try:
            body = await read_body(request, settings.max_packet_bytes)
        except BodyTooLarge:
            return Response(status_code=413, headers={"Connection": "close"})
        client_ip = request.client.host if request.client else ""
        answer = await lanes.run(body, gateway.process, body, dict(request.headers), client_ip)
        if isinstance(answer, Download):
            return download_response(answer)
        return Response(answer, media_type=XML_CONTENT_TYPE)

    async def not_found(request: Request, exc: Exception) -> Response:
        return Response(status_code=404)

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    return Starlette(routes=[Route(ENDPOINT, agent, methods=methods)], exception_handlers={404: not_found})
