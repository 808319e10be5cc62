"""E-mail over SMTP (aiosmtplib): plain text, Bahasa Indonesia first, a deterministic
Message-ID (the outbox row's key and the channel) so a copy sent twice folds in mail clients."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from courier.channels import ChannelError
from courier.config import EmailSettings


def message_id(key: str, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "localhost"
    safe = "".join(c if c.isalnum() or c in "-._" else "." for c in key)
    return f"<{safe}@{domain}>"


async def send(settings: EmailSettings, *, to: str, subject: str, body: str, key: str) -> None:
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id(key, settings.sender)
    msg["Content-Language"] = "id, en"
    msg.set_content(body)
    try:
        await aiosmtplib.send(
            msg,
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            start_tls=settings.starttls if not settings.use_tls else False,
            use_tls=settings.use_tls,
            timeout=settings.timeout_seconds,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as err:
        raise ChannelError(f"smtp: {type(err).__name__}") from err
