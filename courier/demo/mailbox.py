"""The demo's SMTP sink: a local aiosmtpd server the outbox loop sends the applicants' e-mails
to, so ``make demo`` shows what applicants are told. aiosmtpd comes with the dev extras (what
``make demo`` installs); without it the demo runs without messages and says so."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from typing import Any


@dataclass
class Mailbox:
    port: int | None = None  # None: no sink (aiosmtpd missing)
    subjects: Counter[str] = field(default_factory=Counter)
    received: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content)
        subject = " ".join(str(make_header(decode_header(message.get("Subject", "")))).split())
        self.subjects[subject] += 1
        self.received += 1
        return "250 OK"


@contextlib.contextmanager
def running(host: str, port: int) -> Iterator[Mailbox]:
    box = Mailbox()
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        yield box
        return
    controller = Controller(box, hostname=host, port=port)
    controller.start()
    box.port = port
    try:
        yield box
    finally:
        controller.stop()
