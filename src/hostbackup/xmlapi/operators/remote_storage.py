"""backup-manager get/set-remote-storage-settings (spec §4.3–§4.4): each owner's FTP/FTPS target.

Kept apart from `backup_manager.py` because it is about configuration, not tasks. The owner is
resolved like everywhere else (default: the caller; invisible owners answer 1013, `server` for
non-administrators 1006). The password goes into the vault and never comes back out here.
"""

from __future__ import annotations

from hostbackup.errors import InvalidValue, NotSupported
from hostbackup.storage import remote_settings
from hostbackup.xmlapi.context import Context, Element, operation
from hostbackup.xmlapi.results import E, boolean, child_text, ok, parse_bool
from hostbackup.xmlapi.selectors import resolve, selector_of

OPERATOR = "backup-manager"
FTPS_SINCE = "1.6.7.0"


def _check_protocol(text: str | None) -> None:
    if (text or "").lower() != "ftp":
        raise NotSupported(f"Protocol '{text or ''}' is not supported.")


def _port(settings: Element) -> int | None:
    text = child_text(settings, "port")
    if text is None:
        return None
    if not 1 <= int(text) <= 65535:
        raise InvalidValue("port", text)
    return int(text)


def _flag(settings: Element, tag: str) -> bool | None:
    text = child_text(settings, tag)
    return None if text is None else parse_bool(text)


def _password(settings: Element) -> str | None:
    """Taken verbatim (not whitespace-collapsed: spaces may matter); nil or empty → "" (clear)."""
    element = settings.find("password")
    return None if element is None else element.text or ""


@operation(OPERATOR, "get-remote-storage-settings")
def get_remote_storage_settings(ctx: Context, request: Element) -> list[Element]:
    owner = resolve(ctx, selector_of(request)).owner
    _check_protocol(child_text(request, "protocol"))
    row = remote_settings.stored(ctx.session, owner)
    settings = E("settings", None, E("protocol", "ftp"))
    if row is not None:
        values = [("host", row.host), ("port", row.port), ("directory", row.directory), ("login", row.login),
                  ("passive-mode", row.passive_mode)]  # fmt: skip
        if ctx.version.at_least(FTPS_SINCE):
            values.append(("use-ftps", row.use_ftps))
        for tag, value in values:
            if value is not None:
                settings.append(E(tag, boolean(value) if isinstance(value, bool) else value))
    return [ok(settings)]


@operation(OPERATOR, "set-remote-storage-settings")
def set_remote_storage_settings(ctx: Context, request: Element) -> list[Element]:
    owner = resolve(ctx, selector_of(request)).owner
    settings = request.find("settings")
    assert settings is not None  # required by the schema
    update = remote_settings.Update(
        host=child_text(settings, "host"),
        port=_port(settings),
        directory=child_text(settings, "directory"),
        login=child_text(settings, "login"),
        password=_password(settings),
        passive_mode=_flag(settings, "passive-mode"),
        use_ftps=_flag(settings, "use-ftps"),
    )
    _check_protocol(child_text(settings, "protocol"))
    remote_settings.save(ctx.session, ctx.services.vault, owner, update)
    return [ok()]
