"""The one retry/backoff policy: capped exponential delays with optional jitter.

Used by the HTTP transport (retries of safe calls), by booking (when to try a courier again) and
by the worker loops (waiting out a database outage). Pure: it computes seconds, the caller waits
them on its clock.
"""

from __future__ import annotations

import random

# 2**60 × anything sensible is far past any cap: stop growing there (and never overflow a float)
_MAX_EXPONENT = 60


def exponential_backoff(attempt: int, *, initial: float, cap: float, jitter: float = 0.0) -> float:
    """Seconds to wait after ``attempt`` earlier failures (0 = the first retry):
    ``initial · 2^attempt`` plus a random ``0..jitter`` seconds, never more than ``cap``."""
    exponent = min(max(0, attempt), _MAX_EXPONENT)
    delay = initial * 2.0**exponent
    if jitter > 0:
        delay += random.uniform(0, jitter)
    return min(cap, delay)
