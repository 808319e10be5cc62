"""A third courier is its package plus one registry line: Kilat (tests/kilat), a tiny adapter
speaking to a tiny real aiohttp server on loopback, takes a delivery from queued to booked
through the real booking use case, with nothing else in the code edited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import kilat
import pytest
import worker_seed as seed
from aiohttp.test_utils import TestServer
from kilat import server as kilat_server
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import registry
from adapters.base import CourierDescriptor
from core.clock import ManualClock
from courier import docs_config
from courier.config import Settings
from courier.context import AppContext
from courier.db.engine import SessionFactory
from worker import book


@pytest.fixture
def kilat_registered() -> Iterator[CourierDescriptor]:
    with registry.registered(kilat.DESCRIPTOR) as descriptor:  # the one registry line
        yield descriptor


@pytest.fixture
async def kilat_server_url() -> AsyncIterator[tuple[str, TestServer]]:
    server = TestServer(kilat_server.create_app(ManualClock(seed.T0)), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), server
    finally:
        await server.close()


async def test_a_registered_third_courier_books_a_queued_delivery(
    kilat_registered: CourierDescriptor,
    kilat_server_url: tuple[str, TestServer],
    db_url: str,
    engine: AsyncEngine,
    sessions: SessionFactory,
) -> None:
    url, server = kilat_server_url
    clock = ManualClock(seed.T0)
    settings_of = {"kilat": kilat_server.adapter_settings(url)}
    adapter = registry.create("kilat", settings_of["kilat"], clock=clock)
    ctx = AppContext(
        settings=Settings(raw={}, database_url=db_url, couriers=settings_of),
        engine=engine,
        sessions=sessions,
        clock=clock,
        couriers={"kilat": adapter},
    )
    office = await seed.office(sessions, courier="kilat")
    [delivery] = await seed.deliveries(sessions, office, 1)
    # Kilat's server refuses any service but its own: booked means the descriptor's default
    # service reached the order
    try:
        assert await book.once(ctx, "w1") == 1
    finally:
        await adapter.close()

    [shipment] = await seed.shipments(sessions)
    assert shipment.courier_code == "kilat"
    assert shipment.status == "booked"
    assert shipment.waybill == "KLT00000001"
    assert (await seed.delivery_states(sessions))[delivery] == "shipping"
    orders = server.app[kilat_server.ORDERS_KEY]
    assert orders == {shipment.client_reference: "KLT00000001"}  # one order, our reference
    # the descriptor reached everything that lists couriers
    assert registry.name("kilat") == "Kilat Kirim"
    assert "**`[couriers.kilat]`**" in docs_config.render()


def test_the_third_courier_is_gone_once_unregistered(kilat_registered: CourierDescriptor) -> None:
    assert "kilat" in registry.codes()
    twice = registry.registered(kilat.DESCRIPTOR)
    with pytest.raises(ValueError, match="already registered"), twice:
        pass


def test_kilat_is_not_listed_by_default() -> None:
    assert "kilat" not in registry.codes()
