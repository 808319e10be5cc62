"""The one place secrets are hashed and checked: bearer tokens (tracking links, API tokens),
argon2id for low-entropy secrets (staff passwords, passport numbers), and keys derived from the
server's pepper.

* A 256-bit random token needs no slow hash: sha256 of it is as unguessable as the token, and a
  lookup by hash stays one index probe per request.
* A password or a passport number is a small space: argon2id (argon2-cffi, random salt per hash)
  makes a stolen hash expensive to brute-force. Each run costs ~0.1 s of CPU and 64 MiB, so the
  async variants run off the event loop, at most one per core (a burst queues instead of
  multiplying the memory: 8 at once took 470 MiB), and never inside a write transaction.
* A derived key (HMAC of the pepper and a purpose) keeps one secret from doing two jobs: the rate
  limiter's counter keys never use the pepper that guards the passport hashes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
_ARGON2 = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="argon2")


def hash_token(token: str) -> str:
    """What is stored of a high-entropy bearer token (tracking link, API token)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def derive_key(secret: str, purpose: str) -> bytes:
    """A key for one ``purpose``, derived from ``secret`` (HMAC-SHA256)."""
    return hmac.new(secret.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).digest()


def argon2_hash(secret: str) -> str:
    return _hasher.hash(secret)


def argon2_verify(stored_hash: str, secret: str) -> bool:
    """True when ``secret`` is what ``stored_hash`` was made from; False for a malformed hash."""
    try:
        return _hasher.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


async def argon2_hash_async(secret: str) -> str:
    """:func:`argon2_hash` off the event loop, one argon2 run per core at a time."""
    return await asyncio.get_running_loop().run_in_executor(_ARGON2, argon2_hash, secret)


async def argon2_verify_async(stored_hash: str, secret: str) -> bool:
    """:func:`argon2_verify` off the event loop, one argon2 run per core at a time."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_ARGON2, argon2_verify, stored_hash, secret)
