"""J&T Express Indonesia: the legacy e-commerce API (create, cancel, track) and the JMS-style push.

``codec`` and ``push`` are pure wire functions, ``statuses`` the status tables as data,
``adapter`` the thin :class:`~adapters.base.CourierAdapter`; :data:`DESCRIPTOR` is what the
registry lists (its simulator lives in ``simulators.jnt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from adapters.base import Capabilities, CourierAdapter, CourierDescriptor, CourierNames, Party

if TYPE_CHECKING:
    from adapters.http import CourierTransport


def _adapter(settings: Mapping[str, Any], transport: CourierTransport) -> CourierAdapter:
    # imported on use, so listing the courier never loads its wire code
    from adapters.jnt.adapter import JntAdapter

    return JntAdapter(settings, transport)


def _sender_problems(sender: Party) -> list[tuple[str, str]]:
    from adapters.jnt.codec import sender_problems

    return sender_problems(sender)


DESCRIPTOR = CourierDescriptor(
    code="jnt",
    names=CourierNames(id="J&T Express", en="J&T Express"),
    settings_schema="couriers/jnt/settings",
    adapter=_adapter,
    # push and lookup need the JMS account; a reused orderid is refused ("Orderid tidak boleh sama")
    capabilities=Capabilities(
        cancel=True, push=True, find=True, track_batch_size=1, dedupes_reference=True
    ),
    default_service="EZ",  # regular
    simulator="simulators.jnt",
    simulator_port=8701,
    sender_problems=_sender_problems,
)
