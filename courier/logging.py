"""Structured logs: JSON lines (console rendering on a TTY), ids from contextvars, and the ONE
redaction processor (invariant 4: no names, phones, addresses, dates of birth, passport numbers,
tokens or signatures in any log line, whatever logged them).

Redaction works twice over: by key (a field called ``phone`` or ``receiver_name`` is masked
whatever it holds) and by value (a string anywhere that looks like a phone number, a passport
number, an e-mail address or a secret token is masked wherever it appears). Keys win over values,
so a masked field never leaks through a nested structure.

Exceptions are text like any other, with one more rule: a database error's message carries the
statement, its bound values and (PostgreSQL) a DETAIL line quoting the row ("Failing row contains
(…)", "Key (…)=(…)"). The engine hides the values (``hide_parameters``); here the ``[SQL: …]``,
``[parameters: …]`` and ``DETAIL:`` parts are cut from every text, whoever produced it, and so
is every value a driver quotes in its own message, found by the message's shape: asyncpg's
"invalid input for query argument $3: '…'", PostgreSQL's "invalid input syntax for type date:
"…"", "Key (…)=(…)" and "Failing row contains (…)" wherever they appear, sqlite3's "binding
parameter …: '…'" (tests/integration/test_no_pii_in_logs.py raises each for real). Then the
value patterns run. A traceback from the standard library is rendered first, then redacted.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

MASK = "[redacted]"

# Exact keys, and fragments that make any key sensitive (matched on the lower-cased key).
_SENSITIVE_KEYS = {
    "name",
    "applicant_name",
    "receiver",
    "receiver_name",
    "shipper_name",
    "sender_name",
    "contact",
    "shipper_contact",
    "phone",
    "dob",
    "date_of_birth",
    "birth_date",
    "address",
    "street",
    "email",
    "passport_no",
    "passport_number",
    "token",
    "tracking_token",
    "password",
    "authorization",
    "cookie",
    "set-cookie",
    "data_sign",
    "digest",
    "sign",
    "signature",
    "api_key",
    "private_key",
    "secret",
    "description",
    "desc",
    "note",
    "bizcontent",
    "data_param",
    "remark",
    "relation_text",
    "comment",
    "village",
    "geolat",
    "geolang",
}
_SENSITIVE_FRAGMENTS = (
    "phone",
    "addr",
    "passport",
    "password",
    "secret",
    "token",
    "signature",
    "birth",
    "email",
    "_name",
    "name_",
    "cookie",
    "credential",
)
_SAFE_KEYS = {
    "event",
    "level",
    "timestamp",
    "logger",
    "request_id",
    "job_id",
    "delivery_id",
    "shipment_id",
    "reference",
    "client_reference",
    "courier",
    "operation",
    "status",
    "method",
    "route",
    "path_template",
    "duration_ms",
    "ms",
    "attempt",
    "outcome",
    "dedupe_key",
    "code",
    "office",
    "office_code",
    "role",
    "count",
    "state",
    "from_state",
    "to_state",
    "kind",
    "waybill",
    "lease_owner",
    "worker",
    "error_code",
    "exc_type",
    "token_prefix",
    "filename",
}

_VALUE_PATTERNS = (
    re.compile(r"(?<![\w])(?:\+?62|0)8[0-9][0-9 \-]{6,13}[0-9](?![\w])"),  # Indonesian mobiles
    re.compile(r"(?<![\w])[A-Z]{1,2}[0-9]{7}(?![\w])"),  # passport numbers (X1234567, AB1234567)
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),  # e-mail addresses
    re.compile(r"(?i)bearer\s+[\w.~+/=-]+"),
    re.compile(r"(?i)basic\s+[A-Za-z0-9+/=]{8,}"),
    # long url-safe secrets with mixed case (tracking tokens, API tokens); lower-case hex such as
    # sha256 dedupe keys and dashed request ids stay readable
    re.compile(r"(?=[A-Za-z0-9_\-]*[A-Z])(?=[A-Za-z0-9_\-]*[a-z])[A-Za-z0-9_\-]{32,}"),
    re.compile(r"\b(?:19|20)[0-9]{2}-[01][0-9]-[0-3][0-9](?![T0-9:])"),  # bare dates (birth dates)
)


# Database drivers quote the values they refuse inside their own messages, on the first line of a
# traceback as much as anywhere: redacted by the shape of the message, whatever carried it.
_QUOTED = r"(?:'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\")"
_PARENS = r"\((?:[^()\n]|\([^()\n]*\))*\)"
_DRIVER_VALUES = (
    # asyncpg: invalid input for query argument $3: 'Siti Rahayu\ud800' (why)
    re.compile(rf"(query argument \$\d+: ){_QUOTED}"),
    # PostgreSQL: invalid input syntax for type date: "…"; invalid input value for enum x: "…";
    # value out of range: "…"; invalid byte sequence for encoding "UTF8": 0x…
    re.compile(rf"((?:for type|for enum|out of range|for encoding)[^:\n]*: ){_QUOTED}"),
    re.compile(r"(for encoding \"?\w+\"?: )[^\n]*"),
    # PostgreSQL DETAIL texts, wherever they are quoted: Key (…)=(…), Failing row contains (…)
    re.compile(rf"(Key {_PARENS}=){_PARENS}"),
    re.compile(rf"(Failing row contains ){_PARENS}"),
    # sqlite3 / aiosqlite: Error binding parameter 2 … 'value'; SQLAlchemy's repr of a row
    re.compile(rf"(binding parameter [^\n:]*: ){_QUOTED}"),
)

_EXCEPTION_PARTS = (
    # the statement: up to the "]" that ends it (the values or the docs link follow), else the
    # rest of its first line
    (
        re.compile(r"\[SQL: .*?\](?=\s*(?:\[parameters|\[SQL parameters|\(Background|$))", re.S),
        "[SQL: redacted]",
    ),
    (re.compile(r"\[SQL: (?!redacted\])[^\n]*"), "[SQL: redacted]"),
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: redacted]"),
    (re.compile(r"DETAIL:[^\n]*"), "DETAIL: [redacted]"),
)


def _key_is_sensitive(key: str) -> bool:
    k = key.lower()
    if k in _SAFE_KEYS:
        return False
    return k in _SENSITIVE_KEYS or any(f in k for f in _SENSITIVE_FRAGMENTS)


def redact_text(text: str) -> str:
    for part, replacement in _EXCEPTION_PARTS:
        text = part.sub(replacement, text)
    for shape in _DRIVER_VALUES:
        text = shape.sub(rf"\g<1>{MASK}", text)
    for pattern in _VALUE_PATTERNS:
        text = pattern.sub(MASK, text)
    return text


def redact_value(value: Any, depth: int = 0) -> Any:
    if depth > 8:
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, BaseException):  # logged as a value: its text, redacted
        return redact_text(f"{type(value).__name__}: {value}")
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and _key_is_sensitive(k) else redact_value(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, depth + 1) for v in value]
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The one redaction processor. It runs last before rendering, over every event."""
    for key in list(event_dict):
        value = event_dict[key]
        if _key_is_sensitive(key):
            event_dict[key] = MASK
        elif key == "exception" or key == "exc_info":
            # rendered already (format_exc_info runs first); anything else as its text
            event_dict[key] = redact_text(value if isinstance(value, str) else str(value))
        else:
            event_dict[key] = redact_value(value)
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if use_console
        else structlog.processors.JSONRenderer(sort_keys=False, default=str)
    )
    numeric = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=[*_shared_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the standard library (alembic, aiohttp, asyncio) pass through
    # the same redaction before they are written.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.processors.add_log_level,
                structlog.processors.format_exc_info,  # the traceback as text, then redacted
                redact,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    logging.getLogger("aiohttp.access").disabled = True  # our middleware logs requests, redacted


def bind(**ids: Any) -> None:
    structlog.contextvars.bind_contextvars(**ids)


def clear() -> None:
    structlog.contextvars.clear_contextvars()
