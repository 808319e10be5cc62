"""Which proof-of-delivery links the worker may fetch, and until when (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from courier.services import pod

T = datetime(2026, 11, 3, 4, 0, tzinfo=UTC)


def test_default_hosts_are_the_couriers_own_api_hosts() -> None:
    hosts = pod.allowed_hosts(
        {
            "jnt": {
                "create_url": "https://Api.JT.example/create",
                "track_url": "http://t.example/x",
                "username": "http://not-a-url-setting.example",
            },
            "posind": {"base_url": "https://api.pos.example:8443"},
            "other": {"base_url": "https://a.example", "pod_hosts": ["cdn.example"]},
        }
    )
    assert hosts == {
        "jnt": frozenset({"api.jt.example", "t.example"}),
        "posind": frozenset({"api.pos.example"}),
        "other": frozenset({"cdn.example"}),  # configured: replaces the default
    }


def test_only_http_links_to_allowed_hosts_pass() -> None:
    allowed = frozenset({"pod.example"})
    assert pod.link_allowed("https://pod.example/a.png?sig=x", allowed)
    assert pod.link_allowed("http://POD.example:8080/a.png", allowed)
    for url in (
        "https://pod.example.evil.test/a.png",
        "https://evil.test/?u=https://pod.example/",
        "http://169.254.169.254/latest/meta-data/",
        "https://user:pw@pod.example/a.png",
        "ftp://pod.example/a.png",
        "file:///etc/passwd",
        "//pod.example/a.png",
        "http://[::1/a.png",
        "",
    ):
        assert not pod.link_allowed(url, allowed), url


def test_link_deadline_is_its_expiry_within_the_lookback() -> None:
    soon = int((T + timedelta(hours=2)).timestamp())
    assert pod.link_deadline(f"https://p.example/a?expires={soon}&s=1", T) == (
        T + timedelta(hours=2)
    )
    far = int((T + timedelta(days=30)).timestamp())
    assert pod.link_deadline(f"https://p.example/a?Expires={far}", T) == T + pod.LOOKBACK
    assert pod.link_deadline("https://p.example/a?expires=soon", T) == T + pod.LOOKBACK
    assert pod.link_deadline("https://p.example/a", T) == T + pod.LOOKBACK


def test_an_artefact_is_due_when_pending_and_its_next_try_has_come() -> None:
    assert pod.is_due({"state": "pending"}, T)
    later = {"state": "pending", "next_try_at": (T + timedelta(minutes=1)).isoformat()}
    assert not pod.is_due(later, T) and pod.is_due(later, T + timedelta(minutes=1))
    assert not pod.is_due({"state": "stored"}, T)
    assert not pod.is_due({"state": "failed"}, T)
