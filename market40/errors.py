"""One application error type and one error shape: ``{"code", "message", "extra"}``.

Messages are Vietnamese first (English through gettext). Services raise these; the API
turns them into the envelope, pages into a message, commands into ``CommandError``.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.translation import gettext as _


class DomainError(Exception):
    code = "domain_error"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = str(message)
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra = extra or {}

    def as_envelope(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "extra": self.extra}


class InvalidInput(DomainError):
    code = "invalid"
    status = 400


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class Conflict(DomainError):
    code = "conflict"
    status = 409


def invalid_from_validation_error(
    error: ValidationError, labels: dict[str, str] | None = None
) -> InvalidInput:
    """An ``InvalidInput`` whose message names every field in error (by its label)."""
    labels = labels or {}
    if hasattr(error, "error_dict"):
        fields = {
            name: [str(m) for e in errors for m in e.messages]
            for name, errors in error.error_dict.items()
        }
    else:
        fields = {NON_FIELD_ERRORS: [str(m) for m in error.messages]}
    parts = []
    for name, messages in fields.items():
        text = "; ".join(messages)
        if name == NON_FIELD_ERRORS:
            parts.append(text)
        else:
            parts.append(f"{labels.get(name, name)}: {text}")
    return InvalidInput(
        _("Dữ liệu không hợp lệ — %(details)s") % {"details": " | ".join(parts)},
        extra={"fields": fields},
    )
