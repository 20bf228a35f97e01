from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from standby.providers.sse import SSEDecoder, is_done

payload = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=30,
)


@given(
    events=st.lists(payload, max_size=20),
    cuts=st.lists(st.integers(0, 50), max_size=20),
    crlf=st.booleans(),
)
def test_any_split_of_the_byte_stream_gives_the_same_events(
    events: list[str], cuts: list[int], crlf: bool
) -> None:
    nl = "\r\n" if crlf else "\n"
    wire = "".join(f"data: {e}{nl}{nl}" for e in events).encode()
    decoder, out, start = SSEDecoder(), [], 0
    for cut in sorted(cuts):
        out += decoder.feed(wire[start:cut])
        start = max(start, cut)
    out += decoder.feed(wire[start:]) + decoder.flush()
    assert [o.decode() for o in out] == events


def test_comments_event_names_multiline_and_done() -> None:
    d = SSEDecoder()
    out = d.feed(b": keepalive\n\nevent: x\ndata: a\ndata: b\n\ndata: [DONE]\n\ndata: tail")
    assert out == [b"a\nb", b"[DONE]"]
    assert is_done(out[1])
    assert d.flush() == [b"tail"]
