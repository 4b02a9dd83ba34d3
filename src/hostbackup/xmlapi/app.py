"""The HTTP side of the XML API: one endpoint, POST only, bounded bodies (spec §1.1–§1.4).

Every XML answer is HTTP 200 (clients ignore the status and parse the body); only transport
faults use other codes, with empty bodies. Packets are processed in a worker thread by the
`Gateway`, so database work never blocks the event loop. Two answers are not XML packets
built in memory: download-file streams the file itself, and multipart uploads stream into
files as they arrive.
"""

from __future__ import annotations

from collections.abc import Iterator

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


def create_app(services: Services) -> Starlette:
    gateway = Gateway(services)
    settings = services.settings

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
        answer = await run_in_threadpool(gateway.process, body, dict(request.headers), client_ip)
        if isinstance(answer, Download):
            return download_response(answer)
        return Response(answer, media_type=XML_CONTENT_TYPE)

    async def not_found(request: Request, exc: Exception) -> Response:
        return Response(status_code=404)

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    return Starlette(routes=[Route(ENDPOINT, agent, methods=methods)], exception_handlers={404: not_found})
