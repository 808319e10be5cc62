"""What a use case says when it refuses: a kind the web layer maps to an HTTP status, a stable
code, a message, and the path of each bad field. Services never import aiohttp.

Messages never carry the values that were sent (they may be PII): they say what is wrong.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from schemas import FieldError


class Kind(enum.StrEnum):
    INVALID = "invalid"  # 422: a field is wrong
    NOT_FOUND = "not_found"  # 404
    CONFLICT = "conflict"  # 409: the request is fine but the current state refuses it
    IDENTITY = "identity"  # 422: identity not proven (deliberately generic)
    RATE_LIMITED = "rate_limited"  # 429
    INELIGIBLE = "ineligible"  # 422: valid, identified, but not a case for delivery
    FORBIDDEN = "forbidden"  # 403: the caller may not do this (e.g. a token held by no person)
    UNAVAILABLE = "unavailable"  # 503: a courier did not answer; nothing changed, try again


class ServiceError(Exception):
    def __init__(
        self,
        kind: Kind,
        code: str,
        message: str,
        details: Sequence[FieldError] = (),
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.details = list(details)
        self.retry_after = retry_after


def invalid(
    details: Sequence[FieldError], message: str = "request has invalid fields"
) -> ServiceError:
    return ServiceError(Kind.INVALID, "invalid_fields", message, details)
