"""The error model: every failure a caller can see is an `ApiError` with a Plesk error code.

Layers below the XML API raise these; the gateway turns them into `<result>` or `<system>`
errors. Codes and texts follow spec §2.3–§2.5 so that clients and tests can rely on them.
"""

from __future__ import annotations


class ApiError(Exception):
    code = 1023

    def __init__(self, text: str, code: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        if code is not None:
            self.code = code


class AuthFailed(ApiError):
    code = 1001


class LoginLocked(ApiError):
    code = 1012


class AccountDisabled(ApiError):
    code = 1011


class KeyInvalid(ApiError):
    code = 11003


class PermissionDenied(ApiError):
    code = 1006

    def __init__(self, text: str = "Permission denied.") -> None:
        super().__init__(text)


class NotFound(ApiError):
    """`what` is the object's noun as the spec words it: `Customer`, `Webspace`, `Task`…"""

    code = 1013

    def __init__(self, what: str, text: str | None = None) -> None:
        super().__init__(text or f"{what} does not exist.")


class AlreadyExists(ApiError):
    code = 1007

    def __init__(self, text: str = "Object already exists.") -> None:
        super().__init__(text)


class UserExists(ApiError):
    code = 1002

    def __init__(self) -> None:
        super().__init__("User account already exists.")


class OwnerNotFound(ApiError):
    code = 1015

    def __init__(self) -> None:
        super().__init__("Object owner not found.")


class InvalidValue(ApiError):
    code = 1019

    def __init__(self, field: str, value: str, text: str | None = None) -> None:
        super().__init__(text or f"Invalid value of {field}: '{value}'.")
        self.field = field


class NotSupported(ApiError):
    code = 1017


class WrongStatus(ApiError):
    code = 1025


class NotConfigured(ApiError):
    code = 1031


class OperationFailed(ApiError):
    code = 1023

    def __init__(self, reason: str) -> None:
        super().__init__(f"Operation failed: {reason.rstrip('.')}.")
