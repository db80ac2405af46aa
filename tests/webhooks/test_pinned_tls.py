"""The production send connects to the address the guard checked and still verifies TLS against
the host name (SNI and the certificate check), over a real TLS receiver."""

import datetime as dt
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook

from scheduling.webhooks import guard, sender
from tests.factories.webhooks import WebhookDeliveryFactory

HOST = "hooks.test"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _cert(subject, issuer, key, signing_key, *, ca: bool, san: str | None = None):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), False)
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture
def tls(tmp_path: Path):
    """A CA, a TLS receiver whose certificate names HOST only, and a client context trusting
    that CA."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test CA", "test CA", ca_key, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert(HOST, "test CA", key, ca_key, ca=False, san=HOST)
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "key.pem")
    client_context = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode()
    )
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=server_context)
    server.expect_request("/hook").respond_with_data("ok")
    server.start()
    yield server, client_context
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def trust(monkeypatch, tls):
    """The sender's client trusts the test CA (in production: the system's roots)."""
    _server, context = tls
    client = httpx.Client
    monkeypatch.setattr(sender.httpx, "Client", lambda **kw: client(verify=context, **kw))


@pytest.mark.django_db
def test_the_pinned_address_is_reached_with_the_host_name_verified(tls, trust):
    server, _context = tls
    delivery = WebhookDeliveryFactory(endpoint__url=f"https://{HOST}:{server.port}/hook")
    pinned = guard.Target(
        url=f"https://127.0.0.1:{server.port}/hook",
        host_header=f"{HOST}:{server.port}",
        sni_hostname=HOST,
    )

    assert sender._post(pinned, delivery, delivery.endpoint.secret) == 200

    ((request, _response),) = server.log
    assert request.headers["Host"] == f"{HOST}:{server.port}"
    headers = dict(request.headers)
    Webhook(delivery.endpoint.secret).verify(request.get_data(as_text=True), headers)


@pytest.mark.django_db
@pytest.mark.parametrize("sni", [None, "other.test"])
def test_a_certificate_for_another_name_is_refused(tls, trust, sni):
    server, _context = tls
    delivery = WebhookDeliveryFactory()
    pinned = guard.Target(
        url=f"https://127.0.0.1:{server.port}/hook",
        host_header=f"{HOST}:{server.port}",
        sni_hostname=sni,
    )

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        sender._post(pinned, delivery, delivery.endpoint.secret)
    assert server.log == []
