"""Filters of the account operators and the per-value result loop (spec §5.0), written once.

Every account operator selects objects the same way: a `<filter>` holds one kind of element,
repeated; each value is answered by its own `<result>`, in request order; an empty filter
answers every object the caller can see; a value that matches nothing is one 1013 result; an
operation that would answer nothing answers one bare `ok`. Operators supply only how to find
objects for a value (`Selector`) and what to do with each object found; this module owns the
loop, so the answer shapes cannot drift apart between operators. The few readers that the
operators' `add` requests share (owner references, optional fields) live here for the same reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from hostbackup.db.tables import stored_id
from hostbackup.errors import ApiError, InvalidValue, NotFound, NotSupported
from hostbackup.xmlapi.context import Element
from hostbackup.xmlapi.results import E, child_text, collapse, error, ok

POSITIVE_INT_RE = re.compile(r"\+?0*[1-9][0-9]*")


T = TypeVar("T")  # a database row with an integer primary key `id` (mypy cannot bound ORM rows by it)
Finder = Callable[[str], Sequence[T]]
Act = Callable[[T], Sequence[Element]]


@dataclass(frozen=True)
class Filter:
    """One `<filter>`: the kind of its elements and their values; kind None = everything."""

    kind: str | None
    values: tuple[str, ...] = ()

    @classmethod
    def of(cls, element: Element | None) -> Filter:
        children = [item for item in element if isinstance(item.tag, str)] if element is not None else []
        if not children or children[0].tag == "all":
            return cls(None)
        kind = str(children[0].tag)
        return cls(kind, tuple(collapse(item.text) for item in children if item.tag == kind))

    @classmethod
    def in_request(cls, request: Element) -> Filter:
        return cls.of(request.find("filter"))


@dataclass(frozen=True)
class Selector(Generic[T]):
    """How an operator finds its objects: a finder per filter kind, and everything visible.

    A finder gets one filter value and returns the objects it selects. It raises `ApiError`
    for a value that is invalid (1019) or, unless it is an owner filter, matches nothing (1013).
    """

    finders: Mapping[str, Finder[T]]
    everything: Callable[[], Sequence[T]]


@dataclass(frozen=True)
class Echo:
    """The identifying elements of a result: for an object found (by its id), and for a failed value."""

    found: Callable[[str | None, int], list[Element]]
    missing: Callable[[str, str], list[Element]]


def _filter_found(value: str | None, object_id: int) -> list[Element]:
    echo = [E("filter-id", value)] if value is not None else []
    return [*echo, E("id", object_id)]


def _filter_missing(kind: str, value: str) -> list[Element]:
    echo = [E("filter-id", value)]
    if kind == "id" and POSITIVE_INT_RE.fullmatch(value):
        echo.append(E("id", int(value)))
    return echo


FILTER_ECHO = Echo(_filter_found, _filter_missing)
"""resultFilterType (spec §2.2): `filter-id` (not for the empty filter), then `id`."""

NO_ECHO = Echo(lambda value, object_id: [], lambda kind, value: [])
"""For results whose own children identify the object (mail names, secret keys)."""


def answer_each(selection: Filter, selector: Selector[T], act: Act[T], echo: Echo = FILTER_ECHO) -> list[Element]:
    """One result per filter value (per object for the empty filter), in request order."""
    results: list[Element] = []
    if selection.kind is None:
        for obj in selector.everything():
            results.append(_answer(None, obj, act, echo))
        return results or [ok()]
    find = selector.finders.get(selection.kind)
    if find is None:
        raise NotSupported(f"Filter '{selection.kind}' is not supported.")
    for value in selection.values:
        try:
            found = find(value)
        except ApiError as err:
            results.append(error(err, *echo.missing(selection.kind, value)))
            continue
        results.extend(_answer(value, obj, act, echo) for obj in found)
    return results or [ok()]


def _answer(value: str | None, obj: T, act: Act[T], echo: Echo) -> Element:
    identity = echo.found(value, _object_id(obj))  # taken before `act`, which may delete the object
    try:
        children = act(obj)
    except ApiError as err:
        return error(err, *identity)
    return ok(*identity, *children)


def _object_id(obj: object) -> int:
    object_id = getattr(obj, "id", None)
    if not isinstance(object_id, int):
        raise TypeError(f"{type(obj).__name__} has no integer id")
    return object_id


# --- helpers for finders -----------------------------------------------------------------------


def parse_id(field_name: str, value: str) -> int:
    """An untyped id (spec §2.5): a positive integer, else 1019."""
    if not POSITIVE_INT_RE.fullmatch(value):
        raise InvalidValue(field_name, value)
    return stored_id(int(value))


def non_empty(field_name: str, value: str) -> str:
    """A login, name or other key that must not be empty (spec §2.5: empty login → 1019)."""
    if not value:
        raise InvalidValue(field_name, value)
    return value


def required(noun: str, found: Sequence[T]) -> Sequence[T]:
    """`found`, or 1013 `<noun> does not exist.` when it is empty."""
    if not found:
        raise NotFound(noun)
    return found


@dataclass(frozen=True)
class Keys(Generic[T]):
    """Finders for key filters that all look objects up the same way: `lookup(key, value)`.

    Every value must match at least one object (else 1013 with `noun`); `id` values must be
    positive integers and other values non-empty (else 1019).
    """

    noun: str
    lookup: Callable[[str, str], Sequence[T]]
    kinds: tuple[str, ...] = field(default=("id",))

    def finders(self) -> dict[str, Finder[T]]:
        return {kind: self._finder(kind) for kind in self.kinds}

    def _finder(self, kind: str) -> Finder[T]:
        def find(value: str) -> Sequence[T]:
            if kind == "id":
                value = str(parse_id(kind, value))
            else:
                non_empty(kind, value)
            return required(self.noun, self.lookup(kind, value))

        return find


OWNER_KEYS = {"owner-id": "id", "owner-login": "login", "owner-guid": "guid", "owner-external-id": "external-id"}
"""Owner elements (filters and owner selectors of `add`) → the key that finds the owner."""

OwnerT = TypeVar("OwnerT")


def owner_finders(
    kinds: Sequence[str], find_owners: Callable[[str, str], Sequence[OwnerT]], owned_by: Callable[[OwnerT], Sequence[T]]
) -> dict[str, Finder[T]]:
    """Finders for owner filters: every object of every matching owner (spec §5.0).

    An owner that the caller cannot see, or that does not exist, is 1013 `Owner does not
    exist.`; a visible owner without objects contributes no result.
    """

    def finder(kind: str) -> Finder[T]:
        def find(value: str) -> Sequence[T]:
            owners = required("Owner", find_owners(OWNER_KEYS[kind], non_empty(kind, value)))
            return [obj for owner in owners for obj in owned_by(owner)]

        return find

    return {kind: finder(kind) for kind in kinds}


# --- readers shared by `add` operations --------------------------------------------------------


def optional_fields(parent: Element, tags: Sequence[str]) -> dict[str, object]:
    """Collapsed texts of the `tags` present, keyed by column name (`external-id` → `external_id`)."""
    found = {tag: child_text(parent, tag) for tag in tags}
    return {tag.replace("-", "_"): value for tag, value in found.items() if value is not None}


def owner_reference(parent: Element, *, once: bool = False) -> tuple[str | None, str]:
    """The owner an `add` names: (key, value), or (None, "") for the sender (spec §3.4).

    `owner-external-id` is ignored (spec §5.2, §5.4). With `once`, naming more than one owner
    is 1019 (webspace `gen_setup` takes its children in any order, so the schema cannot).
    """
    named = [item for item in parent if isinstance(item.tag, str) and item.tag in OWNER_KEYS]
    if once and len(named) > 1:
        tag = str(named[1].tag)
        raise InvalidValue(tag, collapse(named[1].text), f"Invalid value of {tag}: only one owner may be given.")
    for item in named:
        if item.tag != "owner-external-id":
            return OWNER_KEYS[str(item.tag)], collapse(item.text)
    return None, ""


def child(parent: Element | None, tag: str) -> Element:
    """A child the schema requires; if a request gets here without it, 1019 names what is missing."""
    found = parent.find(tag) if parent is not None else None
    if found is None:
        raise InvalidValue(tag, "", f"Invalid value of {tag}: the element is missing.")
    return found
