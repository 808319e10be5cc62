"""How messages leave: e-mail over SMTP and HTTPS gateways of SMS/WhatsApp providers.

A channel sends one rendered message to one recipient and raises :class:`ChannelError` when it
did not go out; retries are the outbox's (courier/services/notices.py), never the channel's.
"""

from __future__ import annotations


class ChannelError(Exception):
    """The message did not go out on this channel (the reason is the message: no personal
    data, it is logged and stored on the outbox row)."""
