"""Protocol versions (spec §1.6): which `version` attributes are accepted and what is answered."""

from __future__ import annotations

from dataclasses import dataclass

ADVERTISED = (
    "1.5.2.0", "1.6.0.0", "1.6.3.0", "1.6.3.1", "1.6.3.2", "1.6.3.3", "1.6.3.4",
    "1.6.3.5", "1.6.5.0", "1.6.6.0", "1.6.7.0", "1.6.8.0", "1.6.9.0", "1.6.9.1",
)  # fmt: skip
NEWEST = ADVERTISED[-1]
_LOWEST = (1, 5, 2, 0)
_HIGHEST = (1, 6, 9, 1)


class VersionNotSupported(Exception):
    """`answered` is the version attribute the error packet carries: the string as sent."""

    def __init__(self, answered: str) -> None:
        super().__init__(answered)
        self.answered = answered


@dataclass(frozen=True)
class Version:
    effective: str  # what the request is processed as
    answered: str  # what the answer's packet@version says

    def at_least(self, other: str) -> bool:
        return _parts(self.effective) >= _parts(other)


def _parts(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def resolve(attribute: str | None, default_response_version: str) -> Version:
    if attribute is None:
        return Version(NEWEST, default_response_version)
    pieces = attribute.split(".")
    if not all(piece.isascii() and piece.isdigit() for piece in pieces) or not 1 <= len(pieces) <= 4:
        raise VersionNotSupported(attribute)
    numbers = tuple(int(piece) for piece in pieces)
    if len(numbers) == 4:
        if not _LOWEST <= numbers <= _HIGHEST:
            raise VersionNotSupported(attribute)
        return Version(attribute, attribute)
    matches = [version for version in ADVERTISED if _parts(version)[: len(numbers)] == numbers]
    if not matches:
        raise VersionNotSupported(attribute)
    return Version(matches[-1], matches[-1])
