"""Which proof-of-delivery links the worker may fetch, and until when (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.base import PodOrigin
from courier.services import pod

T = datetime(2026, 11, 3, 4, 0, tzinfo=UTC)


def test_default_origins_are_the_couriers_own_api_origins_public_only() -> None:
    origins = pod.allowed_origins(
        {
            "jnt": {
                "create_url": "https://Api.JT.example/create",
                "track_url": "http://t.example:8080/x",
                "username": "http://not-a-url-setting.example",
            },
            "posind": {"base_url": "https://api.pos.example:8443"},
            "other": {
                "base_url": "https://a.example",
                "pod_origins": [
                    "https://cdn.example",
                    {"origin": "http://127.0.0.1:8701", "allow_private": True},
                ],
            },
        }
    )
    assert origins == {
        "jnt": frozenset(
            {PodOrigin("https", "api.jt.example", 443), PodOrigin("http", "t.example", 8080)}
        ),
        "posind": frozenset({PodOrigin("https", "api.pos.example", 8443)}),
        # configured: replaces the default
        "other": frozenset(
            {
                PodOrigin("https", "cdn.example", 443),
                PodOrigin("http", "127.0.0.1", 8701, allow_private=True),
            }
        ),
    }


def test_only_links_to_an_allowed_scheme_host_and_port_pass() -> None:
    allowed = frozenset({PodOrigin("https", "pod.example", 443)})
    assert pod.allowed_origin("https://pod.example/a.png?sig=x", allowed)
    assert pod.allowed_origin("https://POD.example:443/a.png", allowed)
    for url in (
        "http://pod.example/a.png",  # another scheme
        "https://pod.example:8443/a.png",  # another port
        "https://pod.example:5432/",
        "https://pod.example.evil.test/a.png",
        "https://evil.test/?u=https://pod.example/",
        "http://169.254.169.254/latest/meta-data/",
        "https://user:pw@pod.example/a.png",
        "ftp://pod.example/a.png",
        "file:///etc/passwd",
        "//pod.example/a.png",
        "http://[::1/a.png",
        "https://pod.example:99999/a.png",
        "",
    ):
        assert pod.allowed_origin(url, allowed) is None, url


def test_an_address_literal_must_be_public_unless_its_entry_allows_private() -> None:
    for host in ("127.0.0.1", "10.1.2.3", "169.254.169.254", "[::1]", "[::ffff:127.0.0.1]"):
        url = f"http://{host}:8080/a.png"
        entry = PodOrigin.of_url(url)
        assert entry is not None
        assert pod.allowed_origin(url, {entry}) is None, host
        assert pod.allowed_origin(url, {PodOrigin.of_url(url, allow_private=True)}), host
    public = PodOrigin("http", "203.0.113.9", 80)  # documentation range: not global either
    assert pod.allowed_origin("http://203.0.113.9/a.png", {public}) is None
    assert pod.allowed_origin("http://8.8.8.8/a.png", {PodOrigin("http", "8.8.8.8", 80)})


def test_only_images_and_pdfs_are_recognised_by_their_first_bytes() -> None:
    assert pod.sniffed_type(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert pod.sniffed_type(b"\xff\xd8\xff\xe0..JFIF") == "image/jpeg"
    assert pod.sniffed_type(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert pod.sniffed_type(b"%PDF-1.7\n") == "application/pdf"
    for other in (b"<!doctype html>", b"RIFF\x10\x00\x00\x00WAVEfmt ", b"\x89PNG-", b"GIF89a", b""):
        assert pod.sniffed_type(other) is None, other


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
