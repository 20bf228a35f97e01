"""Error replies → ``UpstreamKind``: an enum that still reads as its string value."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from standby.errors import UpstreamKind, UpstreamStatus
from standby.providers.statuses import classify


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (429, {"error": {"message": "slow down"}}, UpstreamKind.RATE_LIMITED),
        (429, {"error": {"code": "insufficient_quota"}}, UpstreamKind.AUTH),
        (401, None, UpstreamKind.AUTH),
        (400, {"error": {"message": "API key not valid"}}, UpstreamKind.AUTH),
        (503, None, UpstreamKind.UNAVAILABLE),
        (529, None, UpstreamKind.UNAVAILABLE),
        (500, None, UpstreamKind.SERVER_ERROR),
        (400, {"error": {"message": "maximum context length"}}, UpstreamKind.CONTEXT_LENGTH),
        (400, {"error": {"code": "content_filter"}}, UpstreamKind.CONTENT_POLICY),
        (404, None, UpstreamKind.NOT_FOUND),
        (400, {"error": {"message": "bad"}}, UpstreamKind.INVALID_REQUEST),
    ],
)
def test_each_reply_gets_its_kind(
    status: int, body: dict[str, Any] | None, kind: UpstreamKind
) -> None:
    error = classify(status, body, {}, target="p")
    assert error.kind is kind


def test_a_kind_compares_and_renders_as_its_value() -> None:
    error = classify(429, None, {"retry-after": "2"})
    assert error.kind == "rate_limited"
    assert f"{error.kind}" == str(error.kind) == "rate_limited"
    assert orjson.dumps({"code": error.kind}) == b'{"code":"rate_limited"}'
    assert {"rate_limited": 1}[error.kind] == 1
    assert error.retry_after == 2.0


def test_a_kind_given_as_its_string_is_the_enum_and_an_unknown_one_is_refused() -> None:
    error = UpstreamStatus("x", status=500, kind="server_error")  # type: ignore[arg-type]
    assert error.kind is UpstreamKind.SERVER_ERROR
    with pytest.raises(ValueError, match="overloaded"):
        UpstreamStatus("x", status=500, kind="overloaded")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "limits"),
    [
        ({"x-ratelimit-limit-requests": "500", "x-ratelimit-limit-tokens": "30000"}, (500, 30000)),
        ({"anthropic-ratelimit-requests-limit": "50"}, (50, None)),
        ({"x-ratelimit-limit-requests": "many"}, (None, None)),
        ({"x-ratelimit-limit-requests": "0"}, (None, None)),
        ({}, (None, None)),
    ],
)
def test_a_429_says_the_limits_its_headers_name(
    headers: dict[str, str], limits: tuple[int | None, int | None]
) -> None:
    assert classify(429, None, headers).limits == limits
    assert classify(500, None, headers).limits == (None, None)  # only a 429 teaches them
