"""A generic HTTPS gateway for SMS and WhatsApp providers.

Each provider is configured with its URL, a shared secret and a JSON body template
(``notify.gateways.<name>``). The body is the template with ``{to}``, ``{text}``,
``{reference}`` and ``{kind}`` filled in every string value; it is serialised once and signed:
the header (default ``X-Signature``) is ``sha256=`` + the hex HMAC-SHA256 of the exact body
bytes with the secret, and ``Idempotency-Key`` is the outbox row's key and the channel, for
providers that fold retries. Any 2xx answer is success; anything else is a
:class:`ChannelError` (the outbox retries it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from courier.channels import ChannelError
from courier.config import GatewaySettings


def fill(node: Any, values: Mapping[str, str]) -> Any:
    """The template with every ``{name}`` in its string values replaced (nothing else is
    interpreted: a provider's literal braces stay)."""
    if isinstance(node, str):
        for name, value in values.items():
            node = node.replace("{" + name + "}", value)
        return node
    if isinstance(node, dict):
        return {k: fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [fill(v, values) for v in node]
    return node


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def body_for(gateway: GatewaySettings, *, to: str, text: str, reference: str, kind: str) -> bytes:
    values = {"to": to, "text": text, "reference": reference, "kind": kind}
    filled = fill(gateway.template, values)
    return json.dumps(filled, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def send(
    http: aiohttp.ClientSession,
    gateway: GatewaySettings,
    *,
    to: str,
    text: str,
    reference: str,
    kind: str,
) -> None:
    body = body_for(gateway, to=to, text=text, reference=reference, kind=kind)
    headers = {
        "Content-Type": "application/json",
        gateway.signature_header: signature(gateway.secret, body),
        "Idempotency-Key": reference,
    }
    try:
        async with http.post(
            gateway.url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=gateway.timeout_seconds),
            allow_redirects=False,
        ) as response:
            await response.read()
            if not 200 <= response.status < 300:
                raise ChannelError(f"gateway {gateway.name}: HTTP {response.status}")
    except (aiohttp.ClientError, TimeoutError) as err:
        raise ChannelError(f"gateway {gateway.name}: {type(err).__name__}") from err
