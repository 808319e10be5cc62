"""Configuration: one TOML file plus environment overrides, checked against schemas/config.json.

The file is ``./courier.toml`` unless ``COURIER_CONFIG`` names another (a missing default file is
fine: every key has a default). Any key can be overridden by ``COURIER_`` + its path in upper case
joined by ``__``: ``COURIER_DATABASE_URL``, ``COURIER_HTTP__PORT``,
``COURIER_COURIERS__JNT__BASE_URL``.
Environment values are read with the type the schema gives the key.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import schemas
from core.clock import Clock, ScaledClock, SystemClock
from schemas import FieldError

ENV_PREFIX = "COURIER_"
DEFAULT_FILE = "courier.toml"
# A placeholder, public in this file: `serve` and `work` refuse it unless
# security.allow_default_pepper says this is a demo or a test (courier.cli.base.require_secrets).
DEFAULT_PEPPER = "change-me-passport-pepper"
# A pepper guards every passport-number hash: a short or repetitive one can be guessed.
PEPPER_MIN_LENGTH = 32
PEPPER_MIN_DISTINCT = 10
PEPPER_MIN_BITS_PER_CHAR = 3.0  # Shannon entropy of its characters; 32 random hex digits: ~3.6


class ConfigError(Exception):
    def __init__(self, errors: list[FieldError], source: str) -> None:
        self.errors = errors
        self.source = source
        lines = "; ".join(f"{e.path}: {e.message}" for e in errors)
        super().__init__(f"invalid configuration ({source}): {lines}")


@dataclass(frozen=True)
class EmailSettings:
    host: str
    sender: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    use_tls: bool = False
    timeout_seconds: float = 20.0


@dataclass(frozen=True)
class GatewaySettings:
    """One SMS/WhatsApp provider behind a generic HTTPS gateway (courier/channels/gateway.py)."""

    name: str
    url: str
    secret: str
    template: Mapping[str, Any]
    channel: str = "sms"
    signature_header: str = "X-Signature"
    timeout_seconds: float = 15.0


@dataclass(frozen=True)
class NotifySettings:
    quiet_start: time = time(21, 0)  # WIB
    quiet_end: time = time(7, 0)
    max_attempts: int = 8
    retry_first_seconds: float = 60.0
    retry_cap_seconds: float = 3600.0
    batch: int = 20
    email: EmailSettings | None = None
    gateways: tuple[GatewaySettings, ...] = ()

    @property
    def channels(self) -> tuple[str, ...]:
        """Every channel a message may go out on: ``email`` and the gateways' names."""
        return (("email",) if self.email else ()) + tuple(g.name for g in self.gateways)


@dataclass(frozen=True)
class Settings:
    raw: Mapping[str, Any]
    source: str = "defaults"
    database_url: str = "sqlite+aiosqlite:///courier.sqlite3"
    log_level: str = "info"
    log_format: str = "auto"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    max_body_bytes: int = 65536
    public_url: str = ""
    trusted_proxies: tuple[str, ...] = ()
    passport_pepper: str = DEFAULT_PEPPER
    allow_default_pepper: bool = False
    optin_max_failures: int = 5
    optin_window_minutes: int = 30
    token_lifetime_days: int = 90
    console_idle_minutes: int = 30
    console_absolute_hours: int = 12
    console_max_failures: int = 5
    console_lockout_minutes: int = 15
    console_secure_cookie: bool | None = None  # None: Secure when public_url is https
    metrics_bearer_token: str | None = None
    metrics_listen: str | None = None
    metrics_db_refresh_seconds: float = 30.0
    #: PostgreSQL connections per process (None: sized for the process, courier/cli/base.py)
    db_pool_size: int | None = None
    db_max_overflow: int = 0
    #: where artefacts are kept: "local" (files under pod_store) or "database"
    artefact_store: str = "local"
    pod_store: str = "var/pod"
    pod_max_bytes: int = 5 * 1024 * 1024
    clock_epoch: datetime | None = None
    clock_speed: float = 1.0
    clock_started: float | None = None
    lease_seconds: int = 120
    poll_seconds: float = 2.0
    concurrency_per_courier: int = 4
    grace_seconds: float = 20.0
    max_reconciliations: int = 5
    #: every booking has an outcome (booked, rejected) or a person asked within this much
    #: service-clock time of its intent (``worker.booking_deadline_minutes``, default 60)
    booking_deadline_seconds: float = 3600.0
    couriers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    offices: tuple[Mapping[str, Any], ...] = ()
    notify: NotifySettings = field(default_factory=NotifySettings)

    def office(self, code: str) -> Mapping[str, Any]:
        """The office's configuration (its contact for applicants), or an empty mapping."""
        return next((o for o in self.offices if o.get("code") == code), {})

    @property
    def default_pepper(self) -> bool:
        """True while the passport pepper is still the published placeholder."""
        return self.passport_pepper == DEFAULT_PEPPER

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    def clock(self) -> Clock:
        if self.clock_epoch is None and self.clock_speed == 1.0:
            return SystemClock()
        epoch = self.clock_epoch or SystemClock().now()
        return ScaledClock(epoch, self.clock_speed, started=self.clock_started)


def _subschema(path: list[str]) -> Mapping[str, Any]:
    node: Mapping[str, Any] = schemas.load("config")
    for key in path:
        props = node.get("properties", {})
        if key in props:
            node = props[key]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return {}
    return node


def _coerce(path: list[str], value: str) -> Any:
    kind = _subschema(path).get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean":
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            return value
        if kind in ("array", "object"):
            return json.loads(value)
    except ValueError:
        return value  # left as text: the schema check then names the key and the expected type
    return value


def _overlay(data: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    used = []
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == "COURIER_CONFIG":
            continue
        if name.startswith(("COURIER_TEST_", "COURIER_BENCH_")):  # harness variables, not keys
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        node = data
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[path[-1]] = _coerce(path, value)
        used.append(name)
    return used


def load(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    environ = os.environ if environ is None else environ
    explicit = path or environ.get("COURIER_CONFIG")
    file = Path(explicit or DEFAULT_FILE)
    data: dict[str, Any] = {}
    source = "defaults"
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError([FieldError("$", f"not valid TOML: {err}")], str(file)) from err
        source = str(file)
    elif explicit:
        raise ConfigError([FieldError("$", "file not found")], str(file))
    used = _overlay(data, environ)
    if used:
        source += " + env " + ",".join(used)
    return from_mapping(data, source)


def from_mapping(data: Mapping[str, Any], source: str = "mapping") -> Settings:
    errors = schemas.check("config", data)
    errors += _courier_errors(data.get("couriers"))
    if not errors:
        errors += _notify_errors(data.get("notify", {}))
    if errors:
        raise ConfigError(errors, source)
    log = data.get("log", {})
    http = data.get("http", {})
    sec = data.get("security", {})
    clock = data.get("clock", {})
    met = data.get("metrics", {})
    work = data.get("worker", {})
    con = data.get("console", {})
    epoch = clock.get("epoch")
    defaults = Settings(raw={})
    return Settings(
        raw=data,
        source=source,
        database_url=data.get("database_url", defaults.database_url),
        log_level=log.get("level", defaults.log_level),
        log_format=log.get("format", defaults.log_format),
        http_host=http.get("host", defaults.http_host),
        http_port=http.get("port", defaults.http_port),
        max_body_bytes=http.get("max_body_bytes", defaults.max_body_bytes),
        public_url=http.get("public_url", ""),
        trusted_proxies=tuple(http.get("trusted_proxies", ())),
        passport_pepper=sec.get("passport_pepper", defaults.passport_pepper),
        allow_default_pepper=sec.get("allow_default_pepper", defaults.allow_default_pepper),
        optin_max_failures=sec.get("optin_max_failures", defaults.optin_max_failures),
        optin_window_minutes=sec.get("optin_window_minutes", defaults.optin_window_minutes),
        token_lifetime_days=sec.get("token_lifetime_days", defaults.token_lifetime_days),
        console_idle_minutes=con.get("idle_minutes", defaults.console_idle_minutes),
        console_absolute_hours=con.get("absolute_hours", defaults.console_absolute_hours),
        console_max_failures=con.get("max_failures", defaults.console_max_failures),
        console_lockout_minutes=con.get("lockout_minutes", defaults.console_lockout_minutes),
        console_secure_cookie=con.get("secure_cookie"),
        metrics_bearer_token=met.get("bearer_token"),
        metrics_listen=met.get("listen"),
        metrics_db_refresh_seconds=float(
            met.get("db_refresh_seconds", defaults.metrics_db_refresh_seconds)
        ),
        db_pool_size=data.get("database", {}).get("pool_size"),
        db_max_overflow=data.get("database", {}).get("max_overflow", defaults.db_max_overflow),
        artefact_store=data.get("storage", {}).get("artefacts", defaults.artefact_store),
        pod_store=data.get("pod_store", defaults.pod_store),
        pod_max_bytes=data.get("pod_max_bytes", defaults.pod_max_bytes),
        clock_epoch=datetime.fromisoformat(epoch) if epoch else None,
        clock_speed=float(clock.get("speed", 1.0)),
        clock_started=clock.get("started"),
        lease_seconds=work.get("lease_seconds", defaults.lease_seconds),
        poll_seconds=float(work.get("poll_seconds", defaults.poll_seconds)),
        concurrency_per_courier=work.get("concurrency_per_courier", 4),
        grace_seconds=float(work.get("grace_seconds", defaults.grace_seconds)),
        max_reconciliations=work.get("max_reconciliations", defaults.max_reconciliations),
        booking_deadline_seconds=60.0
        * work.get("booking_deadline_minutes", defaults.booking_deadline_seconds / 60),
        couriers=data.get("couriers", {}),
        offices=tuple(data.get("offices", ())),
        notify=_notify(data.get("notify", {})),
    )


_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _notify_errors(notify: Mapping[str, Any]) -> list[FieldError]:
    """What the schema cannot say: gateways speak HTTPS except to this machine, and every
    gateway template carries the text somewhere."""
    out: list[FieldError] = []
    for name, gw in (notify.get("gateways") or {}).items():
        url = urlsplit(gw["url"])
        if url.scheme != "https" and url.hostname not in _LOOPBACK:
            out.append(
                FieldError(
                    f"$.notify.gateways.{name}.url",
                    "must be https:// (plain http:// only to a loopback address): messages "
                    "carry tracking links",
                )
            )
        if "{text}" not in json.dumps(gw["template"]):
            out.append(
                FieldError(
                    f"$.notify.gateways.{name}.template",
                    "no string value uses {text}: the message would not be sent",
                )
            )
    quiet = notify.get("quiet_hours")
    if quiet and quiet[0] == quiet[1]:
        out.append(FieldError("$.notify.quiet_hours", "start and end are equal"))
    first = notify.get("retry_first_seconds", 60.0)
    if first > notify.get("retry_cap_seconds", max(3600.0, first)):
        out.append(FieldError("$.notify.retry_cap_seconds", "is shorter than retry_first_seconds"))
    return out


def _notify(notify: Mapping[str, Any]) -> NotifySettings:
    defaults = NotifySettings()
    email = notify.get("email")
    quiet = notify.get("quiet_hours")
    return NotifySettings(
        quiet_start=time.fromisoformat(quiet[0]) if quiet else defaults.quiet_start,
        quiet_end=time.fromisoformat(quiet[1]) if quiet else defaults.quiet_end,
        max_attempts=notify.get("max_attempts", defaults.max_attempts),
        retry_first_seconds=float(notify.get("retry_first_seconds", defaults.retry_first_seconds)),
        retry_cap_seconds=float(notify.get("retry_cap_seconds", defaults.retry_cap_seconds)),
        batch=notify.get("batch", defaults.batch),
        email=EmailSettings(
            host=email["host"],
            sender=email["sender"],
            port=email.get("port", 587 if email.get("starttls", True) else 25),
            username=email.get("username"),
            password=email.get("password"),
            starttls=email.get("starttls", True),
            use_tls=email.get("use_tls", False),
            timeout_seconds=float(email.get("timeout_seconds", 20.0)),
        )
        if email
        else None,
        gateways=tuple(
            GatewaySettings(
                name=name,
                url=gw["url"],
                secret=gw["secret"],
                template=gw["template"],
                channel=gw.get("channel", "sms"),
                signature_header=gw.get("signature_header", "X-Signature"),
                timeout_seconds=float(gw.get("timeout_seconds", 15.0)),
            )
            for name, gw in sorted((notify.get("gateways") or {}).items())
        ),
    )


def pepper_problem(pepper: str) -> str | None:
    """Why ``pepper`` is too weak to guard passport hashes, or None. Length alone lets
    ``"a" * 32`` through, so the variety of its characters is measured too: distinct characters
    and their Shannon entropy per character."""
    if len(pepper) < PEPPER_MIN_LENGTH:
        return f"has {len(pepper)} characters; at least {PEPPER_MIN_LENGTH} are needed"
    counts = [pepper.count(c) for c in set(pepper)]
    bits = -sum(n / len(pepper) * math.log2(n / len(pepper)) for n in counts)
    if len(counts) < PEPPER_MIN_DISTINCT or bits < PEPPER_MIN_BITS_PER_CHAR:
        return (
            f"is too repetitive ({len(counts)} distinct characters, {bits:.1f} bits per "
            f"character; at least {PEPPER_MIN_DISTINCT} and {PEPPER_MIN_BITS_PER_CHAR:.0f} "
            "are needed): use a random secret"
        )
    return None


def _courier_errors(couriers: Any) -> list[FieldError]:
    if not isinstance(couriers, dict):
        return []
    out: list[FieldError] = []
    for code, settings in couriers.items():
        name = f"couriers/{code}/settings"
        if name not in schemas.names():
            continue
        for err in schemas.check(name, settings):
            out.append(FieldError(f"$.couriers.{code}{err.path[1:]}", err.message))
    return out
