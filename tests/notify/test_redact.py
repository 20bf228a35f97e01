"""What a channel may say about its endpoint, and what it masks."""

from __future__ import annotations

import pytest

from standby.notify.redact import Redactor, origin, url_secrets

SLACK = "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/abcdefghijklmnopqrstuvwx"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (SLACK, "https://hooks.slack.com"),
        ("https://user:pa55word@example.com:8443/x?token=abc", "https://example.com:8443"),
        ("http://[::1]:9000/hook", "http://[::1]:9000"),
        ("json://127.0.0.1:8080/path", "json://127.0.0.1:8080"),
        ("http://example.com:99999/x", "<unparseable URL>"),
    ],
)
def test_origin_says_where_and_nothing_more(url: str, expected: str) -> None:
    assert origin(url) == expected


def test_tokens_in_path_query_and_credentials_are_masked() -> None:
    url = "https://bot:s3cr3t%21pw@example.com/hook/abcdefghijklmnop?key=0123456789&v=2"
    redact = Redactor(url_secrets(url))
    said = "POST https://example.com/hook/abcdefghijklmnop key=0123456789 pw s3cr3t!pw v=2"
    assert redact(said) == "POST https://example.com/hook/*** key=*** pw *** v=2"
    assert redact(url) == "***"
    assert Redactor(url_secrets(SLACK))(f"failed: {SLACK}") == "failed: ***"


def test_short_fragments_are_left_alone() -> None:
    assert Redactor(["", "ab", "abcd"])("ab abcd") == "ab ***"
    assert repr(Redactor(["abcd", "efgh"])) == "<Redactor secrets=2>"
