"""Every public answer of the page: an ETag, a 304 for a visitor who has it, and gzip
(compressed once per answer) for visitors that accept it, with an ETag of its own."""

from __future__ import annotations

import gzip

import pytest
from starlette.requests import Request

from standby.statuspage.caching import COMPRESS_FROM, Answer, etag_of, respond

BIG = b"<p>" + b"operational " * 400 + b"</p>"  # a page: worth compressing
SMALL = b'{"status":"ok"}'


def request(**headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/status", "headers": raw})


def test_a_visitor_that_accepts_gzip_gets_it_with_its_own_etag() -> None:
    answer = Answer(BIG, etag_of(BIG))
    plain = respond(request(), answer, "text/html", max_age=10)
    zipped = respond(request(accept_encoding="gzip, deflate, br"), answer, "text/html", max_age=10)
    assert plain.body == BIG and "content-encoding" not in plain.headers
    assert gzip.decompress(zipped.body) == BIG and len(zipped.body) < len(BIG) // 10
    assert zipped.headers["content-encoding"] == "gzip"
    assert plain.headers["vary"] == zipped.headers["vary"] == "Accept-Encoding"
    assert plain.headers["etag"] == answer.etag
    assert zipped.headers["etag"] == answer.etag[:-1] + '-gzip"'
    assert zipped.headers["cache-control"] == "public, max-age=10"
    assert answer.gzipped() is answer.gzipped()  # compressed once, sent many times


@pytest.mark.parametrize(
    ("accept", "etag_of_variant", "status"),
    [
        ("gzip", "gzip", 304),
        ("gzip", "plain", 200),  # another variant's tag is not a match
        ("", "plain", 304),
        ("", "gzip", 200),
        ("gzip;q=0", "plain", 304),  # refused explicitly
        ("br, *", "gzip", 304),
    ],
)
def test_revalidating_answers_304_only_for_the_variant_held(
    accept: str, etag_of_variant: str, status: int
) -> None:
    answer = Answer(BIG, etag_of(BIG))
    held = answer.etag if etag_of_variant == "plain" else answer.etag[:-1] + '-gzip"'
    found = respond(
        request(accept_encoding=accept, if_none_match=held), answer, "text/html", max_age=10
    )
    assert found.status_code == status
    if status == 304:
        assert found.body == b"" and "content-encoding" not in found.headers


def test_a_small_answer_is_sent_as_it_is() -> None:
    assert len(SMALL) < COMPRESS_FROM
    answer = Answer(SMALL, etag_of(SMALL))
    found = respond(request(accept_encoding="gzip"), answer, "application/json", max_age=10)
    assert found.body == SMALL and "vary" not in found.headers
    assert found.headers["etag"] == answer.etag
