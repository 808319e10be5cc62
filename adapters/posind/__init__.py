"""Pos Indonesia: OAuth2 client credentials, AddPostingDoc, getTrackAndTrace (couriers.md §2).

``codec`` builds and parses the wire bodies (pure), ``statuses`` maps ``eventName`` to our
vocabulary (data), ``auth`` keeps the Bearer token, ``adapter`` puts them together over the
shared transport, and :data:`DESCRIPTOR` is what the registry lists (its simulator lives in
``simulators.posind``).
Pos has no cancel and no push; nothing here pretends otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from adapters.base import Capabilities, CourierAdapter, CourierDescriptor, CourierNames

if TYPE_CHECKING:
    from adapters.http import CourierTransport


def _adapter(settings: Mapping[str, Any], transport: CourierTransport) -> CourierAdapter:
    # imported on use, so listing the courier never loads its wire code
    from adapters.posind.adapter import PosIndonesiaAdapter

    return PosIndonesiaAdapter(settings, transport)


DESCRIPTOR = CourierDescriptor(
    code="posind",
    names=CourierNames(id="Pos Indonesia", en="Pos Indonesia"),
    settings_schema="couriers/posind/settings",
    adapter=_adapter,
    # no cancel, no push, no lookup by orderid; a reused orderid is not known to be refused
    capabilities=Capabilities(
        cancel=False, push=False, find=False, track_batch_size=1, dedupes_reference=False
    ),
    default_service="",  # the adapter takes the settings' productid
    simulator="simulators.posind",
    simulator_port=8702,
)
