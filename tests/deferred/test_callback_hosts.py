"""Where a callback may go: the pure rule (``deferred_policy``), as tables of cases."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from standby.deferred.policy import (
    CallbackHosts,
    address_kind,
    address_refusal,
    normalise_host,
    url_refusal,
)

PUBLIC = CallbackHosts()  # journal.callback_hosts empty: public hosts only


@pytest.mark.parametrize(
    ("url", "listed", "reason"),
    [
        # not public, refused while the list is empty
        ("http://127.0.0.1:8080/cb", [], "127.0.0.1 is a loopback address"),
        ("http://[::1]/cb", [], "::1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", [], "is a link-local address"),
        ("http://[fe80::1]/cb", [], "fe80::1 is a link-local address"),
        ("http://10.1.2.3/cb", [], "10.1.2.3 is a private address"),
        ("http://172.16.0.1/cb", [], "172.16.0.1 is a private address"),
        ("http://192.168.1.20/cb", [], "192.168.1.20 is a private address"),
        ("http://[fd12:3456::1]/cb", [], "is a private address"),
        ("http://[::ffff:127.0.0.1]/cb", [], "::ffff:7f00:1 is a loopback address"),
        ("http://[::ffff:169.254.169.254]/cb", [], "is a link-local address"),
        ("http://0.0.0.0:80/cb", [], "0.0.0.0 is an unspecified address"),
        ("http://[::]/cb", [], ":: is an unspecified address"),
        ("http://224.0.0.1/cb", [], "224.0.0.1 is a multicast address"),
        ("http://240.0.0.1/cb", [], "240.0.0.1 is a private address"),
        ("http://100.64.0.1/cb", [], "100.64.0.1 is not a public address"),
        ("http://127.0.0.1./cb", [], "127.0.0.1 is a loopback address"),
        ("http://2130706433/cb", [], "'2130706433' is not a canonical IP address"),
        ("http://127.1/cb", [], "'127.1' is not a canonical IP address"),
        ("http://0x7f.0.0.1/cb", [], "'0x7f.0.0.1' is not a canonical IP address"),
        ("http://localhost:8000/cb", [], "'localhost' is a loopback name"),
        ("http://api.localhost/cb", [], "'api.localhost' is a loopback name"),
        # public, allowed while the list is empty (names are judged again once resolved)
        ("https://93.184.216.34/cb", [], None),
        ("http://[2606:4700::1]/cb", [], None),
        ("https://hooks.example.com/cb?token=x", [], None),
        ("http://hooks.example.com:8080/cb", [], None),
        # listed: allowed whatever the address; the operator chose it
        ("http://127.0.0.1:8080/cb", ["127.0.0.1"], None),
        ("http://169.254.169.254/cb", ["169.254.169.254"], None),
        ("http://[::1]/cb", ["[::1]"], None),
        ("http://[::1]/cb", ["0:0::1"], None),
        ("https://HOOKS.Example.com./cb", ["hooks.example.com"], None),
        ("https://a.hooks.example.com/cb", ["*.hooks.example.com"], None),
        ("https://a.b.hooks.example.com/cb", ["*.hooks.example.com"], None),
        # a list allows only what it lists
        ("https://hooks.example.com/cb", ["*.hooks.example.com"], "is not one of the hosts"),
        ("https://evilhooks.example.com/cb", ["*.hooks.example.com"], "is not one of the"),
        ("https://other.example.com/cb", ["hooks.example.com"], "is not one of the hosts"),
        ("https://93.184.216.34/cb", ["hooks.example.com"], "is not one of the hosts"),
        ("http://127.0.0.1/cb", ["*.0.0.1"], "is not one of the hosts"),  # patterns: names
        ("http://127.0.0.1/cb", ["*"], "is not one of the hosts"),
        # not a callback URL at all
        ("ftp://hooks.example.com/cb", [], "must start with http:// or https://"),
        ("file:///etc/passwd", ["hooks.example.com"], "must start with http://"),
        ("http:///cb", [], "the callback URL has no host"),
        ("http://" + "a" * 64 + ".example.com/", [], "is not a valid host name"),
        ("http://a..example.com/", [], "is not a valid host name"),
        ("http://hooks.example.com:99999/", [], "cannot be parsed"),
    ],
)
def test_a_callback_url_is_judged_by_the_plans_callback_hosts(
    url: str, listed: list[str], reason: str | None
) -> None:
    refusal = url_refusal(url, CallbackHosts(listed))
    if reason is None:
        assert refusal is None
    else:
        assert refusal is not None and reason in refusal


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.169.254", "a link-local address (where cloud metadata services live)"),
        ("fe80::1%eth0", "a link-local address (where cloud metadata services live)"),
        ("10.0.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.0.1", "a private address"),
        ("fc00::1", "a private address"),
        ("fec0::1", "a site-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("ff02::1", "a multicast address"),
        ("::ffff:10.0.0.1", "a private address"),  # IPv4-mapped
        ("2002:7f00:1::", "a loopback address"),  # 6to4 carrying 127.0.0.1
        ("2002:a9fe:a9fe::", "a link-local address (where cloud metadata services live)"),
        ("64:ff9b::a9fe:a9fe", "a link-local address (where cloud metadata services live)"),
        ("::7f00:1", "a reserved address"),  # IPv4-compatible, deprecated
        ("192.0.2.1", "a private address"),  # documentation range
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),  # NAT64 to a public address
    ],
)
def test_what_makes_an_address_unfit(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("host", "address", "listed", "refused"),
    [
        ("hooks.example.com", "93.184.216.34", [], False),
        ("hooks.example.com", "127.0.0.1", [], True),
        ("hooks.example.com", "169.254.169.254", [], True),
        ("hooks.example.com", "::ffff:127.0.0.1", [], True),
        ("hooks.example.com", "not-an-address", [], True),
        ("hooks.internal", "10.0.0.7", ["hooks.internal"], False),  # listed: any address
        ("a.hooks.internal", "10.0.0.7", ["*.hooks.internal"], False),
        ("hooks.example.com", "93.184.216.34", ["hooks.internal"], True),  # not listed
    ],
)
def test_a_resolved_address_is_judged_for_its_host(
    host: str, address: str, listed: list[str], refused: bool
) -> None:
    assert (address_refusal(host, address, CallbackHosts(listed)) is not None) is refused


def test_a_refusal_names_the_host_and_what_it_resolved_to() -> None:
    assert address_refusal("rebind.example", "127.0.0.1", PUBLIC) == (
        "'rebind.example' resolves to 127.0.0.1, a loopback address"
    )


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("Hooks.Example.COM.", "hooks.example.com"),
        ("[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        (" 127.0.0.1 ", "127.0.0.1"),
        ("*.Example.com", "*.example.com"),
    ],
)
def test_hosts_are_compared_in_one_normal_form(host: str, normal: str) -> None:
    assert normalise_host(host) == normal


def test_the_host_list_says_what_it_allows() -> None:
    hosts = CallbackHosts(["hooks.example.com", "*.internal.example", " ", "127.0.0.1"])
    assert hosts.restricted and not PUBLIC.restricted
    assert repr(hosts) == "<CallbackHosts 127.0.0.1, hooks.example.com, *.internal.example>"
    assert repr(PUBLIC) == "<CallbackHosts public hosts only>"


_ANY_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=60)


@settings(max_examples=300, deadline=None)
@given(url=st.one_of(_ANY_TEXT, _ANY_TEXT.map("http://".__add__)))
def test_any_callback_text_is_judged_without_raising(url: str) -> None:
    for hosts in (PUBLIC, CallbackHosts(["hooks.example.com", "*.example.org"])):
        refusal = url_refusal(url, hosts)
        assert refusal is None or isinstance(refusal, str)
