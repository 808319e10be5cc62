"""Where artefacts are kept and how many connections a process holds are configuration with
stated defaults; a wrong value is named by its path (issue 14)."""

from __future__ import annotations

import pytest

from courier.config import ConfigError, from_mapping, load
from courier.db.engine import POOL_SIZE, WORKER_POOL_CAP, pool_size_for


def test_artefacts_are_local_unless_the_database_is_chosen() -> None:
    assert from_mapping({}).artefact_store == "local"
    assert from_mapping({"storage": {"artefacts": "database"}}).artefact_store == "database"
    assert load(environ={"COURIER_STORAGE__ARTEFACTS": "database"}).artefact_store == "database"


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"storage": {"artefacts": "s3"}}, "$.storage.artefacts"),
        ({"storage": {"bucket": "x"}}, "$.storage"),
        ({"database": {"pool_size": 0}}, "$.database.pool_size"),
        ({"database": {"max_overflow": -1}}, "$.database.max_overflow"),
    ],
)
def test_a_wrong_storage_or_pool_setting_is_named(config: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(config)
    assert [e.path for e in info.value.errors] == [path]


def test_pools_are_sized_for_the_process() -> None:
    serve = from_mapping({})
    assert pool_size_for(serve, worker=False) == POOL_SIZE
    no_courier = from_mapping({"worker": {"concurrency_per_courier": 4}})  # counted as one
    assert pool_size_for(no_courier, worker=True) == 4 + 6
    busy = from_mapping({"worker": {"concurrency_per_courier": 64}})
    assert pool_size_for(busy, worker=True) == WORKER_POOL_CAP
    fixed = from_mapping({"database": {"pool_size": 7, "max_overflow": 2}})
    assert pool_size_for(fixed, worker=True) == pool_size_for(fixed, worker=False) == 7
    assert fixed.db_max_overflow == 2
