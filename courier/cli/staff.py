"""`courier office`, `courier user` and `courier token`: offices, staff accounts and API tokens.

Offices come first (every account and token belongs to one); `office sync` reads the config
file's ``[[offices]]`` entries. Passwords are prompted (or read from stdin with --password-stdin)
and stored as argon2 hashes; a token is printed once and only its hash is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeAlias, TypeVar

from adapters import registry
from courier.cli.base import require_schema, settings_from
from courier.config import Settings
from courier.db.engine import SessionFactory, make_engine, make_sessions, transaction
from courier.services import staff
from courier.services.errors import ServiceError

ACTOR = "cli"
T = TypeVar("T")
Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(sub: Sub) -> None:
    _register_office(sub)
    _register_user(sub)
    _register_token(sub)


def _register_office(sub: Sub) -> None:
    office = sub.add_parser(
        "office",
        help="create, update and list offices",
        description="Offices own applications, staff and tokens: create them before anything else.",
    )
    actions = office.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="create or update one office",
        description="Create an office, or update the one with this code.",
    )
    add.add_argument("--code", required=True, help="2-6 upper-case letters or digits, e.g. BLT")
    add.add_argument("--name", required=True, help="full name, e.g. 'Kantor Imigrasi Blitar'")
    add.add_argument(
        "--home-regency",
        action="append",
        required=True,
        dest="home_regencies",
        metavar="CODE",
        help="a home regency/city code like 35.72 (repeat for each)",
    )
    add.add_argument(
        "--pickup-slot",
        action="append",
        default=[],
        dest="pickup_slots",
        metavar="HH:MM",
        help="courier pickup time in WIB (repeat for each)",
    )
    add.add_argument("--collect-days", type=int, default=30, help="days to collect (default 30)")
    add.add_argument(
        "--courier",
        default=registry.default_code(),
        choices=registry.codes(),
        help=f"the office's courier while it has no contract (default {registry.default_code()})",
    )
    add.add_argument(
        "--prefer",
        action="append",
        default=[],
        dest="courier_preference",
        choices=registry.codes(),
        help="routing: a preferred courier among contracts in force (repeat, most preferred first)",
    )
    sender = add.add_argument_group(
        "sender block",
        "the office as the courier's sender, checked against the courier's limits (J&T: "
        "contact at most 30 characters, phone 15, address 200). Required when the office is "
        "created; on an update, omitted flags keep nothing: give the whole block again",
    )
    for flag, key, help_text in SENDER_FLAGS:
        sender.add_argument(flag, dest=f"sender_{key}", metavar="TEXT", help=help_text)
    add.set_defaults(func=_office_add)
    sync = actions.add_parser(
        "sync",
        help="create or update the offices listed in the config file",
        description="Apply every [[offices]] entry of the configuration file (idempotent).",
    )
    sync.set_defaults(func=_office_sync)
    lst = actions.add_parser("list", help="list offices", description="List every office.")
    lst.set_defaults(func=_office_list)


# `office add` flags of the sender block: (flag, key in schemas/common/office.json, help)
SENDER_FLAGS = (
    ("--sender-contact", "contact", "shipper name on the waybill, e.g. 'Seksi Dokumen Perjalanan'"),
    ("--sender-phone", "phone", "the office's phone, e.g. 0342-801344"),
    ("--sender-street", "street", "street and number"),
    ("--sender-village", "village", "kelurahan/desa"),
    ("--sender-district", "district", "kecamatan"),
    ("--sender-regency", "regency", "kota/kabupaten, e.g. 'KOTA BLITAR'"),
    ("--sender-province", "province", "e.g. 'JAWA TIMUR'"),
    ("--sender-regency-code", "regency_code", "e.g. 35.72"),
    ("--sender-district-code", "district_code", "e.g. 35.72.03"),
    ("--sender-postcode", "postal_code", "five digits, e.g. 66133"),
)


def _register_user(sub: Sub) -> None:
    user = sub.add_parser(
        "user",
        help="staff accounts",
        description="Staff accounts. Roles: " + ", ".join(staff.ROLES) + ".",
    )
    actions = user.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="create a staff account",
        description="Create a staff account in an office. The password is prompted twice, or "
        "read from the first line of standard input with --password-stdin (at least 10 "
        "characters); only its argon2 hash is stored.",
    )
    add.add_argument("--office", required=True, help="office code, e.g. BLT")
    add.add_argument("--username", required=True, help="login name (a-z, 0-9, . _ -)")
    add.add_argument("--role", required=True, choices=staff.ROLES, help="what the account may do")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.set_defaults(func=_user_add)
    lst = actions.add_parser("list", help="list staff accounts", description="List accounts.")
    lst.add_argument("--office", help="only this office")
    lst.set_defaults(func=_user_list)
    for action, active, text in (
        (
            "disable",
            False,
            "Disable a staff account: its API tokens are refused from the next "
            "request on (they work again if the account is enabled; revoke them to end them).",
        ),
        ("enable", True, "Enable a disabled staff account again."),
    ):
        p = actions.add_parser(action, help=f"{action} a staff account", description=text)
        p.add_argument("username", metavar="USERNAME", help="the account's login name")
        p.set_defaults(func=_user_set_active, active=active)


def _register_token(sub: Sub) -> None:
    token = sub.add_parser(
        "token",
        help="API tokens for the office's systems",
        description="Bearer tokens for the HTTP API, one office and one role each.",
    )
    actions = token.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="create a token (printed once)",
        description="Create an API token and print it once on standard output; only its sha256 "
        "is stored, so it cannot be shown again. It expires after --expires-in, or after "
        "security.token_lifetime_days (default 90).",
    )
    add.add_argument("--office", required=True, help="office code, e.g. BLT")
    add.add_argument("--role", required=True, choices=staff.ROLES, help="what the token may do")
    add.add_argument("--name", required=True, help="what uses it, e.g. 'SIMKIM intake'")
    add.add_argument(
        "--user",
        metavar="USERNAME",
        default=None,
        help="the staff account this token acts for (same office and role); needed for "
        "actions recorded against a person, such as a dispatcher's handover review",
    )
    add.add_argument(
        "--expires-in",
        metavar="DURATION",
        type=_duration,
        default=None,
        help="how long it works: a number with d (days), h (hours) or w (weeks), e.g. 30d; "
        "default security.token_lifetime_days",
    )
    add.set_defaults(func=_token_add)
    revoke = actions.add_parser(
        "revoke",
        help="revoke a token by its prefix",
        description="Revoke the token whose listed prefix starts with PREFIX (from `token list`).",
    )
    revoke.add_argument("prefix", metavar="PREFIX", help="the token's prefix, e.g. cpt_Ab12Cd34")
    revoke.set_defaults(func=_token_revoke)
    lst = actions.add_parser(
        "list", help="list tokens (prefixes only)", description="List tokens by prefix."
    )
    lst.add_argument("--office", help="only this office")
    lst.set_defaults(func=_token_list)


# --------------------------------------------------------------------------------------------

_DURATION = re.compile(r"([0-9]{1,6})([hdw])")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def _duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``: a token lifetime."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None or int(found[1]) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: a number above 0 with d, h or w, e.g. 30d"
        )
    return timedelta(**{_UNITS[found[2]]: int(found[1])})


def _run(settings: Settings, work: Callable[[SessionFactory], Awaitable[T]]) -> T:
    require_schema(settings)

    async def main() -> T:
        engine = make_engine(settings.database_url)
        try:
            return await work(make_sessions(engine))
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _fail(err: ServiceError) -> int:
    print(f"error: {err.message}", file=sys.stderr)
    for detail in err.details:
        print(f"  {detail.path}: {detail.message}", file=sys.stderr)
    return 1


def _apply(settings: Settings, specs: list[dict[str, Any]]) -> int:
    # every office checked before any is written: a bad entry changes nothing
    problems = [
        (spec.get("code", f"#{i + 1}"), e)
        for i, spec in enumerate(specs)
        for e in staff.office_problems(spec, sender_required=True)
    ]
    if problems:
        print("error: invalid office (nothing changed)", file=sys.stderr)
        for code, e in problems:
            print(f"  office {code}: {e.path}: {e.message}", file=sys.stderr)
        return 1

    async def work(sessions: SessionFactory) -> list[tuple[str, str]]:
        done = []
        for spec in specs:
            async with transaction(sessions) as session:
                office, outcome = await staff.upsert_office(
                    session, spec, now=settings.clock().now(), actor=ACTOR, sender_required=True
                )
                done.append((office.code, outcome))
        return done

    try:
        for code, outcome in _run(settings, work):
            print(f"office {code}: {outcome}")
    except ServiceError as err:
        return _fail(err)
    return 0


def _office_add(args: argparse.Namespace) -> int:
    spec: dict[str, Any] = {
        "code": args.code,
        "name": args.name,
        "home_regency_codes": args.home_regencies,
        "pickup_slots": args.pickup_slots,
        "collect_days": args.collect_days,
        "courier": args.courier,
        "courier_preference": args.courier_preference,
    }
    sender = {
        key: getattr(args, f"sender_{key}")
        for _, key, _ in SENDER_FLAGS
        if getattr(args, f"sender_{key}") is not None
    }
    if sender:
        spec["sender"] = sender
    return _apply(settings_from(args), [spec])


def _office_sync(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not settings.offices:
        print(f"no [[offices]] in the configuration ({settings.source})", file=sys.stderr)
        return 1
    return _apply(settings, [dict(o) for o in settings.offices])


def _office_list(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def work(sessions: SessionFactory) -> list[str]:
        async with sessions() as session:
            return [
                f"{o.code}\t{o.name}\thome={','.join(o.home_regency_codes)}\t"
                f"collect_days={o.collect_days}\tcourier={o.courier_code}"
                for o in await staff.list_offices(session)
            ]

    for line in _run(settings, work):
        print(line)
    return 0


def _read_password(from_stdin: bool) -> str | None:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        # getpass would fall back to reading stdin and die with EOFError when it is empty
        print(
            "error: no terminal to prompt for the password: pipe it in with --password-stdin",
            file=sys.stderr,
        )
        return None
    try:
        first = getpass.getpass("Password: ")
        repeat = getpass.getpass("Repeat password: ")
    except EOFError:
        print("error: no password given (use --password-stdin to pipe one)", file=sys.stderr)
        return None
    if repeat != first:
        print("error: the passwords differ", file=sys.stderr)
        return None
    return first


def _user_add(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    password = _read_password(args.password_stdin)
    if password is None:
        return 1

    async def work(sessions: SessionFactory) -> int:
        async with transaction(sessions) as session:
            user = await staff.add_user(
                session,
                office_code=args.office,
                username=args.username,
                password=password,
                role=args.role,
                now=settings.clock().now(),
                actor=ACTOR,
            )
            return user.id

    try:
        user_id = _run(settings, work)
    except ServiceError as err:
        return _fail(err)
    print(f"user {args.username} (id {user_id}) added to {args.office} as {args.role}")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def work(sessions: SessionFactory) -> list[staff.UserRow]:
        async with sessions() as session:
            return await staff.list_users(session, args.office)

    for u in _run(settings, work):
        state = "active" if u.active else "inactive"
        print(f"{u.office_code}\t{u.username}\t{u.role}\t{state}\t{u.created_at:%Y-%m-%d}")
    return 0


def _user_set_active(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def work(sessions: SessionFactory) -> str:
        async with transaction(sessions) as session:
            user = await staff.set_user_active(
                session,
                args.username,
                active=args.active,
                now=settings.clock().now(),
                actor=ACTOR,
            )
            return user.username

    try:
        username = _run(settings, work)
    except ServiceError as err:
        return _fail(err)
    print(f"user {username} {'enabled' if args.active else 'disabled'}")
    return 0


def _token_add(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    lifetime = (
        timedelta(days=settings.token_lifetime_days) if args.expires_in is None else args.expires_in
    )

    async def work(sessions: SessionFactory) -> tuple[str, str, str]:
        async with transaction(sessions) as session:
            token, plaintext = await staff.create_token(
                session,
                office_code=args.office,
                role=args.role,
                name=args.name,
                now=settings.clock().now(),
                actor=ACTOR,
                username=args.user,
                lifetime=lifetime,
            )
            return token.prefix, plaintext, f"{token.expires_at:%Y-%m-%d %H:%M} UTC"

    try:
        prefix, plaintext, expires = _run(settings, work)
    except ServiceError as err:
        return _fail(err)
    print(plaintext)
    print(
        f"token {prefix}… created, expires {expires}; it is shown only this once",
        file=sys.stderr,
    )
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def work(sessions: SessionFactory) -> str:
        async with transaction(sessions) as session:
            token = await staff.revoke_token(
                session, args.prefix, now=settings.clock().now(), actor=ACTOR
            )
            return token.prefix

    try:
        prefix = _run(settings, work)
    except ServiceError as err:
        return _fail(err)
    print(f"token {prefix} revoked")
    return 0


def _token_list(args: argparse.Namespace) -> int:
    settings = settings_from(args)

    async def work(sessions: SessionFactory) -> list[staff.TokenRow]:
        async with sessions() as session:
            return await staff.list_tokens(
                session, args.office, default_lifetime=timedelta(days=settings.token_lifetime_days)
            )

    now = settings.clock().now()
    for t in _run(settings, work):
        if t.revoked_at:
            state = f"revoked {t.revoked_at:%Y-%m-%d}"
        elif t.expires_at <= now:
            state = f"expired {t.expires_at:%Y-%m-%d}"
        else:
            state = f"active, expires {t.expires_at:%Y-%m-%d}"
        print(f"{t.office_code}\t{t.prefix}\t{t.role}\t{t.name}\t{state}")
    return 0
