"""The processing pipeline of one XML packet (spec §1.8), independent of the HTTP server.

parse → version → authenticate → validate → run each operation in document order. Steps one
to four are the check-up phase: any failure there answers one `<system>` error and runs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree

from hostbackup.accounts.auth import LockoutPolicy, authenticate_key, authenticate_password
from hostbackup.accounts.users import Caller
from hostbackup.errors import ApiError, AuthFailed, NotSupported, OperationFailed
from hostbackup.xmlapi import operators  # noqa: F401  (registers the handlers)
from hostbackup.xmlapi.context import REGISTRY, Context, Element, Services
from hostbackup.xmlapi.packet import PacketError, parse_packet, validate_packet
from hostbackup.xmlapi.results import E, error
from hostbackup.xmlapi.versions import Version, VersionNotSupported, resolve

log = logging.getLogger(__name__)

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclass(frozen=True)
class Credentials:
    login: str | None
    password: str | None
    key: str | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Credentials:
        """Header names are case-insensitive; `-` stands for `_` (spec §1.2)."""
        found: dict[str, str] = {}
        for name, value in headers.items():
            found.setdefault(name.lower().replace("-", "_"), value)
        return cls(found.get("http_auth_login"), found.get("http_auth_passwd"), found.get("key") or None)


def render(packet: Element, *, pretty: bool) -> bytes:
    return XML_DECLARATION + etree.tostring(packet, encoding="UTF-8", pretty_print=pretty)


def _packet(version: str, *children: Element) -> Element:
    packet = E("packet", None, *children)
    packet.set("version", version)
    return packet


def _system(version: str, err: ApiError) -> Element:
    system = E("system", None, E("status", "error"), E("errcode", err.code), E("errtext", err.text))
    return _packet(version, system)


class Gateway:
    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.lockout = LockoutPolicy(
            settings.lockout_failures, settings.lockout_window_seconds, settings.lockout_seconds
        )

    def authenticate(self, credentials: Credentials, client_ip: str) -> Caller:
        """The caller, or an `ApiError` for the `<system>` answer (spec §2.5)."""
        if credentials.key:
            return authenticate_key(self.services.db, credentials.key, client_ip)
        if credentials.login is None and credentials.password is None:
            raise AuthFailed("Authentication failed - no credentials.")
        login, password = credentials.login or "", credentials.password or ""
        return authenticate_password(self.services.db, login, password, self.lockout)

    def check_up(self, body: bytes, credentials: Credentials, client_ip: str) -> tuple[Element, Version, Caller]:
        """Steps 2–5 of the pipeline; raises `CheckUpFailed` carrying the `<system>` answer."""
        default = self.services.settings.default_response_version
        try:
            root = parse_packet(body)
        except PacketError as err:
            raise CheckUpFailed(_system(default, ApiError(err.errtext, 1014))) from None
        try:
            version = resolve(root.get("version"), default)
        except VersionNotSupported as err:
            raise CheckUpFailed(
                _system(err.answered, ApiError("XML API protocol version not supported.", 1005))
            ) from None
        try:
            caller = self.authenticate(credentials, client_ip)
        except ApiError as err:
            raise CheckUpFailed(_system(version.answered, err)) from None
        try:
            validate_packet(root)
        except PacketError as err:
            raise CheckUpFailed(_system(version.answered, ApiError(err.errtext, 1014))) from None
        return root, version, caller

    def process(self, body: bytes, headers: Mapping[str, str], client_ip: str) -> bytes:
        pretty = _header(headers, "http_pretty_print").lower() == "true"
        try:
            root, version, caller = self.check_up(body, Credentials.from_headers(headers), client_ip)
        except CheckUpFailed as failed:
            return render(failed.answer, pretty=pretty)
        answer = _packet(version.answered)
        for operator in root:
            if not isinstance(operator.tag, str) or operator.tag == "request-settings":
                continue
            mirrored = E(operator.tag)
            for request in operator:
                if isinstance(request.tag, str):
                    mirrored.append(E(request.tag, None, *self.run(operator.tag, request, caller, version, client_ip)))
            answer.append(mirrored)
        return render(answer, pretty=pretty)

    def run(self, operator: str, request: Element, caller: Caller, version: Version, client_ip: str) -> list[Element]:
        """One operation in its own transaction; errors become `<result>` errors."""
        handler = REGISTRY.get(operator, {}).get(str(request.tag))
        if handler is None:
            return [error(NotSupported("Operation is not supported."))]
        try:
            with self.services.db.session() as session:
                return handler(Context(self.services, session, caller, version, client_ip), request)
        except ApiError as err:
            return [error(err)]
        except Exception as exc:
            log.exception("operation %s/%s failed", operator, request.tag)
            return [error(OperationFailed(type(exc).__name__))]


class CheckUpFailed(Exception):
    def __init__(self, answer: Element) -> None:
        super().__init__("check-up failed")
        self.answer = answer


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower().replace("-", "_") == name:
            return value
    return ""
