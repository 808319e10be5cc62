"""The booking deadline is configuration with a stated default (issue 9: every booking ends)."""

from __future__ import annotations

import pytest

from courier.config import ConfigError, from_mapping


def test_the_booking_deadline_defaults_to_an_hour_and_is_read_in_minutes() -> None:
    assert from_mapping({}).booking_deadline_seconds == 3600
    configured = from_mapping({"worker": {"booking_deadline_minutes": 90}})
    assert configured.booking_deadline_seconds == 90 * 60


def test_a_booking_deadline_that_is_not_a_positive_number_of_minutes_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping({"worker": {"booking_deadline_minutes": 0}})
    assert [e.path for e in info.value.errors] == ["$.worker.booking_deadline_minutes"]
