"""Proof-of-delivery artefacts: expiring HMAC links (J&T's signed, short-lived POD URLs) and small
deterministic PNG bodies, so a test can tell the photo it fetched is the one the courier meant."""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from collections.abc import Mapping
from datetime import datetime


def _link_mac(secret: bytes, path: str, expires: int) -> str:
    return hmac.new(secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def sign_link(secret: bytes, path: str, expires_at: datetime) -> str:
    """``path?expires=<epoch>&signature=<hmac>``: a link that stops working at ``expires_at``."""
    expires = int(expires_at.timestamp())
    return f"{path}?expires={expires}&signature={_link_mac(secret, path, expires)}"


def verify_link(secret: bytes, path: str, query: Mapping[str, str], now: datetime) -> bool:
    try:
        expires = int(query.get("expires", ""))
    except ValueError:
        return False
    signature = query.get("signature", "")
    if not hmac.compare_digest(signature, _link_mac(secret, path, expires)):
        return False
    return now.timestamp() < expires


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def artefact_bytes(kind: str, waybill: str, size: int = 8) -> bytes:
    """A tiny valid PNG whose pixels derive from (kind, waybill): same input, same sha256."""
    digest = hashlib.sha256(f"{kind}:{waybill}".encode()).digest()
    rows = b"".join(
        b"\x00" + bytes(digest[(x + y) % len(digest)] for x in range(size * 3)) for y in range(size)
    )
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )
