"""The booking tests' fixtures (courier simulators on loopback, one ManualClock, the service
context that books against them), from ``booking_sims``; a module that needs others defines its
own under the same names."""

from __future__ import annotations

from booking_sims import clock, ctx, sims

__all__ = ["clock", "ctx", "sims"]
