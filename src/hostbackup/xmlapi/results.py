"""Building answer elements: `<result>` blocks and small element helpers (spec §2.2).

Operators build answers with these helpers so that every error result has the same shape:
status, errcode, errtext, then only the identifying elements the spec allows.
"""

from __future__ import annotations

from lxml import etree

from hostbackup.errors import ApiError

Element = etree._Element


def E(tag: str, text: str | int | None = None, *children: Element) -> Element:
    """An element with optional text and children; `E("prefix", "")` gives `<prefix/>`."""
    element = etree.Element(tag)
    if text is not None and text != "":
        element.text = str(text)
    element.extend(children)
    return element


def ok(*children: Element | None) -> Element:
    return E("result", None, E("status", "ok"), *(child for child in children if child is not None))


def error(err: ApiError, *identifying: Element | None) -> Element:
    result = E("result", None, E("status", "error"), E("errcode", err.code), E("errtext", err.text))
    result.extend(child for child in identifying if child is not None)
    return result


def boolean(value: bool) -> str:
    return "true" if value else "false"


def texts(parent: Element, tag: str) -> list[str]:
    """Collapsed texts of all `tag` children (spec §0: whitespace collapsed)."""
    return [collapse(child.text) for child in parent.findall(tag)]


def collapse(text: str | None) -> str:
    return " ".join((text or "").split())


def child_text(parent: Element, tag: str) -> str | None:
    """Collapsed text of the first `tag` child, or None when it is absent."""
    child = parent.find(tag)
    return None if child is None else collapse(child.text)


def parse_bool(text: str | None) -> bool:
    return collapse(text).lower() in ("true", "1")
