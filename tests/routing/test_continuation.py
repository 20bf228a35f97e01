from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from standby.routing.continuation import INSTRUCTION, MIN_OVERLAP, Splicer, continuation_body


def splice(sent: str, pieces: list[str]) -> str:
    s = Splicer(sent)
    return "".join(s.feed(p) for p in pieces) + s.flush()


def test_overlap_is_stripped_across_chunks() -> None:
    assert splice("Hello there my friend ", ["my fr", "iend ", "how are", " you"]) == "how are you"


def test_no_overlap_passes_through() -> None:
    assert splice("abc ", ["def", " ghi"]) == "def ghi"


def test_short_echo_is_kept() -> None:
    assert splice("I said no", ["no", " more"]) == "no more"


words = st.text(alphabet="abcdefgh ", min_size=0, max_size=40)


@given(
    sent=words,
    rest=words,
    overlap=st.integers(min_value=MIN_OVERLAP, max_value=30),
    cuts=st.lists(st.integers(min_value=1, max_value=8), max_size=10),
)
def test_any_echo_of_the_tail_is_removed(
    sent: str, rest: str, overlap: int, cuts: list[int]
) -> None:
    if len(sent) < overlap:
        sent = sent + "x" * overlap
    cont = sent[-overlap:] + rest
    pieces, i = [], 0
    for c in cuts:
        pieces.append(cont[i : i + c])
        i += c
    pieces.append(cont[i:])
    out = splice(sent, pieces)

    # the result never loses text, and the echo never reaches the client twice (whitespace
    # aside: after a text ending in a space, the continuation's leading space is dropped)
    def bare(text: str) -> str:
        return "".join(text.split())

    assert cont.endswith(out)
    assert len(out) <= len(rest) + overlap
    assert bare(out) == bare(rest) or bare(sent + out).endswith(bare(sent[-overlap:] + rest))


def test_bodies_for_both_modes() -> None:
    original = {"model": "m", "n": 2, "messages": [{"role": "user", "content": "q"}]}
    pre = continuation_body(original, "partial", prefill=True)
    assert pre["messages"][-1] == {"role": "assistant", "content": "partial"}
    assert "n" not in pre and original["n"] == 2
    ins = continuation_body(original, "partial", prefill=False)
    assert ins["messages"][-2:] == [
        {"role": "assistant", "content": "partial"},
        {"role": "user", "content": INSTRUCTION},
    ]
    assert len(original["messages"]) == 1


def test_a_space_the_client_already_has_is_not_repeated() -> None:
    assert splice("Hello there ", [" world"]) == "world"
    assert splice("Hello there ", ["  ", " world"]) == "world"
    assert splice("Hello there", [" world"]) == " world"
