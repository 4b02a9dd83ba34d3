"""The HTTP side of the XML API: one endpoint, POST only, bounded bodies (spec §1.1–§1.4).

Every XML answer is HTTP 200 (clients ignore the status and parse the body); only transport
faults use other codes, with empty bodies. The packet itself is processed in a worker thread
by the `Gateway`, so slow database work never blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hostbackup.xmlapi.context import Services
from hostbackup.xmlapi.gateway import Gateway

ENDPOINT = "/enterprise/control/agent.php"
Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]
XML_CONTENT_TYPE = "text/xml; charset=UTF-8"


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing it as soon as it exceeds `limit` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(services: Services, lifespan: Lifespan | None = None) -> Starlette:
    """The ASGI app; `lifespan` starts and stops what runs beside the API (the worker supervisor)."""
    gateway = Gateway(services)
    settings = services.settings

    async def agent(request: Request) -> Response:
        if request.method != "POST":
            return Response(status_code=405, headers={"Allow": "POST"})
        try:
            body = await read_body(request, settings.max_packet_bytes)
        except BodyTooLarge:
            return Response(status_code=413, headers={"Connection": "close"})
        client_ip = request.client.host if request.client else ""
        answer = await run_in_threadpool(gateway.process, body, dict(request.headers), client_ip)
        return Response(answer, media_type=XML_CONTENT_TYPE)

    async def not_found(request: Request, exc: Exception) -> Response:
        return Response(status_code=404)

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    return Starlette(
        routes=[Route(ENDPOINT, agent, methods=methods)], exception_handlers={404: not_found}, lifespan=lifespan
    )
