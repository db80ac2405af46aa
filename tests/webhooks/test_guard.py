"""The SSRF guard's rules: which addresses a webhook may reach, and the pinned target."""

import re
import socket

import pytest
from django.test import override_settings

from scheduling.webhooks import guard
from scheduling.webhooks.rules import address_refusal, retry_delay


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ("93.184.215.14", None),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("10.0.0.8", "10.0.0.8 is a private address"),
        ("172.16.5.4", "172.16.5.4 is a private address"),
        ("192.168.1.1", "192.168.1.1 is a private address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("100.64.0.1", "100.64.0.1 is not a public address"),
        ("0.0.0.0", "0.0.0.0 is a private address"),  # noqa: S104
        ("224.0.0.1", "224.0.0.1 is a multicast address"),
        ("240.0.0.1", "240.0.0.1 is a private address"),
        ("::1", "::1 is a loopback address"),
        ("fe80::1%eth0", "fe80::1 is a link-local address"),
        ("fd12::1", "fd12::1 is a private address"),
        ("::ffff:127.0.0.1", "127.0.0.1 is a loopback address"),
        ("::ffff:10.1.1.1", "10.1.1.1 is a private address"),
        ("not-an-ip", "'not-an-ip' is not an IP address"),
    ],
)
def test_address_refusal(address, refusal):
    assert address_refusal(address) == refusal


def test_retry_delay_doubles_from_the_base_up_to_the_cap():
    delays = [retry_delay(n, base_seconds=30, max_seconds=600).total_seconds() for n in range(1, 8)]
    assert delays == [30, 60, 120, 240, 480, 600, 600]


def fake_dns(*answers):
    def getaddrinfo(host, port, type=0, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port)) for answer in answers]

    return getaddrinfo


@override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=False, DEBUG=False)
def test_production_connects_to_the_address_it_checked(monkeypatch):
    monkeypatch.setattr(guard.socket, "getaddrinfo", fake_dns("93.184.215.14"))

    assert guard.check("https://hooks.example.com:8443/in?x=1") == guard.Target(
        url="https://93.184.215.14:8443/in?x=1",
        host_header="hooks.example.com:8443",
        sni_hostname="hooks.example.com",
    )


@override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=False, DEBUG=False)
def test_one_private_answer_among_public_ones_refuses_the_name(monkeypatch):
    monkeypatch.setattr(guard.socket, "getaddrinfo", fake_dns("93.184.215.14", "10.0.0.5"))

    with pytest.raises(
        guard.RefusedURL,
        match=re.escape("resolves to a refused address (10.0.0.5 is a private address)"),
    ):
        guard.check("https://rebind.example.com/in")


@override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=False, DEBUG=False)
def test_a_name_that_does_not_resolve_is_refused():
    with pytest.raises(guard.RefusedURL, match="does not resolve"):
        guard.check("https://no-such-host.invalid/in")


@pytest.mark.parametrize(
    ("allow", "debug"), [(True, False), (False, True)], ids=["allowed", "debug"]
)
def test_outside_production_any_http_url_is_used_as_it_is(allow, debug):
    with override_settings(WEBHOOK_ALLOW_PRIVATE_URLS=allow, DEBUG=debug):
        assert guard.check("http://127.0.0.1:9/in") == guard.Target(url="http://127.0.0.1:9/in")
        with pytest.raises(guard.RefusedURL, match="http"):
            guard.check("ftp://127.0.0.1/in")
