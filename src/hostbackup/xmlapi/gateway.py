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
from hostbackup.xmlapi.context import REGISTRY, Context, Download, Element, Services
from hostbackup.xmlapi.packet import PacketError, parse_packet, validate_packet
from hostbackup.xmlapi.results import E, error
from hostbackup.xmlapi.upload import UploadedFile
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
        found = normalised(headers)
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

    def system_answer(self, err: ApiError) -> bytes:
        return render(_system(self.services.settings.default_response_version, err), pretty=False)

    def upload_answer(self, files: list[UploadedFile]) -> bytes:
        """`<upload>` with one result per file part (spec §4.14); no file part at all → 1014."""
        version = self.services.settings.default_response_version
        if not files:
            return render(
                _system(version, ApiError("Parser error: Request is invalid. No file part in the upload.", 1014)),
                pretty=False,
            )
        results = []
        for upload in files:
            if upload.path is None:
                results.append(error(OperationFailed(upload.error), E("name", upload.name), E("file")))
            else:
                results.append(
                    E("result", None, E("status", "ok"), E("name", upload.name), E("file", str(upload.path)))
                )
        return render(_packet(version, E("upload", None, *results)), pretty=False)

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

    def process(self, body: bytes, headers: Mapping[str, str], client_ip: str) -> bytes | Download:
        """The XML answer, or the file to send when the packet is one successful download-file."""
        pretty = normalised(headers).get("http_pretty_print", "").lower() == "true"
        try:
            root, version, caller = self.check_up(body, Credentials.from_headers(headers), client_ip)
        except CheckUpFailed as failed:
            return render(failed.answer, pretty=pretty)
        operator_elements = [op for op in root if isinstance(op.tag, str) and op.tag != "request-settings"]
        requests = [(op, request) for op in operator_elements for request in op if isinstance(request.tag, str)]
        answer = _packet(version.answered)
        mirrored = {id(op): E(op.tag) for op in operator_elements}
        answer.extend(mirrored.values())
        for operator, request in requests:
            call = Call(caller, version, client_ip, sole_operation=len(requests) == 1)
            results, download = self.run(str(operator.tag), request, call)
            if download is not None:
                return download
            mirrored[id(operator)].append(E(request.tag, None, *results))
        return render(answer, pretty=pretty)

    def run(self, operator: str, request: Element, call: Call) -> tuple[list[Element], Download | None]:
        """One operation in its own transaction; errors become `<result>` errors."""
        handler = REGISTRY.get(operator, {}).get(str(request.tag))
        if handler is None:
            return [error(NotSupported("Operation is not supported."))], None
        try:
            with self.services.db.session() as session:
                ctx = Context(self.services, session, call.caller, call.version, call.client_ip, call.sole_operation)
                return handler(ctx, request), ctx.download
        except ApiError as err:
            return [error(err)], None
        except Exception as exc:
            log.exception("operation %s/%s failed", operator, request.tag)
            return [error(OperationFailed(type(exc).__name__))], None


@dataclass(frozen=True)
class Call:
    """Who runs an operation, under which version, and whether it is alone in its packet."""

    caller: Caller
    version: Version
    client_ip: str
    sole_operation: bool


class CheckUpFailed(Exception):
    def __init__(self, answer: Element) -> None:
        super().__init__("check-up failed")
        self.answer = answer


def normalised(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names are case-insensitive and `-` stands for `_` (spec §1.2); the first one wins."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        found.setdefault(name.lower().replace("-", "_"), value)
    return found
