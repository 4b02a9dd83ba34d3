"""Operator `server`: only `get_protos`, the call clients use to test a connection (spec §5.1)."""

from __future__ import annotations

from hostbackup.xmlapi.context import Context, Element, operation
from hostbackup.xmlapi.results import E, ok
from hostbackup.xmlapi.versions import ADVERTISED


@operation("server", "get_protos")
def get_protos(ctx: Context, request: Element) -> list[Element]:
    return [ok(E("protos", None, *(E("proto", version) for version in ADVERTISED)))]
