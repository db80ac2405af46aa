"""The SSRF guard: a webhook URL must not reach into the clinic's own network.

In production (DEBUG off and WEBHOOK_ALLOW_PRIVATE_URLS false) a URL must be https and every
address its host resolves to must be public (rules.address_refusal). It is asked when an
endpoint is registered and again before each send; the send then connects to the very address
that was checked (the name is not resolved a second time by the HTTP client, so a DNS answer
that changes in between cannot slip a private address past it), with the original host name in
the Host header and for TLS (SNI and certificate check).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import httpx
from django.conf import settings

from scheduling.webhooks.rules import address_refusal


class RefusedURL(Exception):
    """The URL may not be called; the message says why (no secret, no payload in it)."""


@dataclass(frozen=True)
class Target:
    """Where a send connects: the URL (its host replaced by the checked address when the guard
    is on), and the Host header and TLS server name that keep the original host."""

    url: str
    host_header: str | None = None
    sni_hostname: str | None = None


def enforced() -> bool:
    return not settings.DEBUG and not settings.WEBHOOK_ALLOW_PRIVATE_URLS


def check(url: str) -> Target:
    """The URL's target, or RefusedURL. Resolves the host name when the guard is on."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise RefusedURL("not a valid URL") from exc
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise RefusedURL("must be an http(s) URL with a host")
    if not enforced():
        return Target(url=url)
    if parsed.scheme != "https":
        raise RefusedURL("must be https")
    host = parsed.host
    try:
        infos = socket.getaddrinfo(host, parsed.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedURL(f"{host} does not resolve") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise RefusedURL(f"{host} does not resolve")
    for address in addresses:
        refusal = address_refusal(address)
        if refusal:
            raise RefusedURL(f"{host} resolves to a refused address ({refusal})")
    return Target(
        url=str(parsed.copy_with(host=addresses[0])),
        host_header=parsed.netloc.decode("ascii"),
        sni_hostname=host,
    )
