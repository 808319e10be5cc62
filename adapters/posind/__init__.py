"""Pos Indonesia: OAuth2 client credentials, AddPostingDoc, getTrackAndTrace (couriers.md §2).

``codec`` builds and parses the wire bodies (pure), ``statuses`` maps ``eventName`` to our
vocabulary (data), ``auth`` keeps the Bearer token, ``adapter`` puts them together over the
shared transport, and ``simulator`` is an aiohttp app that speaks the same wire format.
Pos has no cancel and no push; nothing here pretends otherwise.
"""

from __future__ import annotations
