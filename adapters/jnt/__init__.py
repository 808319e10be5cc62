"""J&T Express Indonesia: the legacy e-commerce API (create, cancel, track) and the JMS-style push.

``codec`` and ``push`` are pure wire functions, ``statuses`` the status tables as data,
``adapter`` the thin :class:`~adapters.base.CourierAdapter`, ``simulator`` a local J&T.
"""

from __future__ import annotations
