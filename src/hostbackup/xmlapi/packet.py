"""Parsing and schema validation of XML API request packets (spec §1.3, §1.5, §1.8 steps 2 and 5, §2.4).

``parse_packet`` turns a request body into an element tree with a hardened parser and refuses
any document type declaration; ``validate_packet`` checks the tree against the project's own
request schema (``schema/packet.xsd``). Both raise :class:`PacketError`, whose ``errtext`` is the
1014 text of §2.4: the first libxml2 message and the 1-based line of the received body it refers to.
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path

from lxml import etree

__all__ = ["OPERATORS", "PacketError", "parse_packet", "validate_packet"]

#: Operator elements the schema accepts directly under ``<packet>``, in schema order.
OPERATORS: tuple[str, ...] = (
    "backup-manager",
    "customer",
    "reseller",
    "webspace",
    "db_server",
    "database",
    "mail",
    "secret_key",
    "server",
    "x-backup-manager",
)

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"

_DOCTYPE_MESSAGE = "DOCTYPE is not allowed"


class PacketError(Exception):
    """A request body that is not well-formed, declares a DOCTYPE, or does not match the schema."""

    line: int
    message: str

    def __init__(self, line: int, message: str) -> None:
        super().__init__(line, message)
        self.line = line
        self.message = message

    @property
    def errtext(self) -> str:
        """The ``errtext`` of the ``<system>`` 1014 answer."""
        return f"Parser error: Request is invalid. Error in line {self.line}: {self.message}"

    def __str__(self) -> str:
        return self.errtext


def _hardened_parser() -> etree.XMLParser:
    # A fresh parser per call: lxml parser objects must not be shared between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=True,
    )


class _DoctypeSeen(Exception):
    pass


class _PrologEnd(Exception):
    pass


class _PrologProbe:
    """Parser target that stops at the DOCTYPE declaration or at the root start tag.

    libxml2 reports a DOCTYPE before it reads the internal subset, so stopping there means no
    entity declaration is ever processed (no billion laughs, no external entity lookup).
    """

    def doctype(self, name: str | None, pubid: str | None, system: str | None) -> None:
        raise _DoctypeSeen

    def start(self, tag: str | bytes, attrib: dict[str | bytes, str | bytes]) -> None:
        raise _PrologEnd

    def end(self, tag: str | bytes) -> None:
        return None

    def data(self, data: str | bytes) -> None:
        return None

    def comment(self, text: str | bytes) -> None:
        return None

    def close(self) -> None:
        return None


_DECLARED_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([A-Za-z0-9._-]+)")
_ASCII_SUPERSETS = (b"utf-8", b"utf8", b"us-ascii", b"ascii")


def _plainly_without_doctype(body: bytes) -> bool:
    """True when the bytes cannot hold a DOCTYPE: an ASCII-compatible body with no `<!` at all.

    Most packets pass this test, which saves the probe's parser (a tenth of a packet's CPU).
    Anything else (UTF-16, an exotic declared encoding, comments, CDATA) takes the probe."""
    if b"<!" in body or b"\0" in body or not body.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<"):
        return False  # maybe a DOCTYPE, maybe UTF-16/32 or EBCDIC (where `<!` has other bytes)
    declared = _DECLARED_ENCODING.search(body, 0, 200)
    return declared is None or declared.group(1).lower() in _ASCII_SUPERSETS


def _declares_doctype(body: bytes) -> bool:
    if _plainly_without_doctype(body):
        return False
    parser = etree.XMLParser(
        target=_PrologProbe(),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
    )
    try:
        etree.fromstring(body, parser)
    except _DoctypeSeen:
        return True
    except (_PrologEnd, etree.XMLSyntaxError):
        # Reached the root element first, or the prolog is broken: the full parse reports that.
        return False
    return False


def _doctype_line(body: bytes) -> int:
    """Line of the DOCTYPE declaration for the error text (detection is done by the parser, not here).

    Only ASCII-compatible encodings are searched; anything else reports line 1.
    """
    pos = body.find(b"<!DOCTYPE")
    return body.count(b"\n", 0, pos) + 1 if pos >= 0 else 1


def _first_error(log: etree._ListErrorLog) -> tuple[int, str] | None:
    entries = list(log)
    for entry in entries:
        if entry.level >= etree.ErrorLevels.ERROR:
            return max(entry.line, 1), entry.message.strip()
    if entries:
        return max(entries[0].line, 1), entries[0].message.strip()
    return None


def parse_packet(body: bytes) -> etree._Element:
    """Parse a request body into its ``<packet>`` element (or whatever the root is).

    Raises :class:`PacketError` for a DOCTYPE / entity declaration (``DOCTYPE is not allowed``)
    and for bodies that are not well-formed (first libxml2 message and its line).
    """
    if _declares_doctype(body):
        raise PacketError(_doctype_line(body), _DOCTYPE_MESSAGE)
    parser = _hardened_parser()
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        first = _first_error(parser.error_log)
        if first is None:
            line = exc.lineno if exc.lineno else 1
            first = (max(line, 1), str(exc.msg))
        raise PacketError(*first) from None
    if root is None:  # pragma: no cover - libxml2 reports "Document is empty" instead
        raise PacketError(1, "Document is empty")
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        # Defence in depth; the probe above already refuses these before entities are read.
        raise PacketError(_doctype_line(body), _DOCTYPE_MESSAGE)
    return root


@functools.cache
def _schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    document = etree.parse(str(SCHEMA_DIR / "packet.xsd"), parser)
    return etree.XMLSchema(document)


# lxml keeps the error log on the XMLSchema object, so one validation at a time reads its own log.
_validation_lock = threading.Lock()


def validate_packet(root: etree._Element) -> None:
    """Validate a parsed packet against the request schema; raise :class:`PacketError` on the first error."""
    schema = _schema()
    with _validation_lock:
        if schema.validate(root):
            return
        first = _first_error(schema.error_log)
    if first is None:  # pragma: no cover - libxml2 always logs why a document is invalid
        first = (1, "Request does not match the schema")
    raise PacketError(*first)
