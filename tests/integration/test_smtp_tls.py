"""Email through a relay that wants STARTTLS and AUTH (port 587), for real: aiosmtpd with
a self-signed certificate made here (trusted through ``SMTP_CA_FILE``), the notifier's
sender delivering from the queue in PostgreSQL."""

from __future__ import annotations

import datetime as dt
import ssl
from uuid import uuid4

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.notifier import storage as notifier_storage
from services.notifier.sender import SmtpSettings, SmtpTransport, StartTlsRefused, TransientFailure
from services.notifier.service import NotifierService
from shared import db
from tests.helpers import Inbox, free_port, wait_until
from tests.integration.test_notifier_delivery import NOTIFIER_TABLES, notifier_config

RAW = b"From: Guichet <noreply@univ.example>\r\nTo: alice@univ.example\r\nSubject: test\r\n\r\nBonjour.\r\n"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 / localhost: (cert file, key file)."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


class TlsInbox(Inbox):
    """Keeps what it accepted, and whether each message came over TLS, authenticated."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: list[tuple[bool, str | None]] = []
        self.mail_from_seen = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        self.mail_from_seen += 1
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.sessions.append((session.ssl is not None, "guichet" if session.authenticated else None))
        return await super().handle_DATA(server, session, envelope)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"guichet" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


class Relay:
    """aiosmtpd on ``port``: with STARTTLS (and AUTH over it) or, ``starttls=False``, an
    old relay that offers neither."""

    def __init__(self, port: int, certificate: tuple[str, str] | None) -> None:
        self.port = port
        self.certificate = certificate
        self.inbox = TlsInbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        options = {}
        if self.certificate:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.certificate)
            options = {"tls_context": context, "require_starttls": True, "authenticator": authenticator,
                       "auth_required": True, "auth_require_tls": True}
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def test_starttls_then_auth_then_the_message(certificate):
    relay = Relay(free_port(), certificate)
    relay.start()
    try:
        settings = SmtpSettings.from_url(f"smtp+starttls://guichet:s3cret@127.0.0.1:{relay.port}", ca_file=certificate[0])
        assert settings.starttls and not settings.tls
        transport = SmtpTransport(settings, timeout=10)
        transport.send("noreply@univ.example", "alice@univ.example", "<a@guichet>", RAW)
        transport.close()
        assert relay.inbox.sessions == [(True, "guichet")]
        assert relay.inbox.messages[0]["Subject"] == "test"
    finally:
        relay.stop()


def test_an_untrusted_certificate_or_wrong_password_sends_nothing(certificate):
    relay = Relay(free_port(), certificate)
    relay.start()
    try:
        untrusted = SmtpTransport(SmtpSettings.from_url(f"smtp+starttls://guichet:s3cret@127.0.0.1:{relay.port}"), 10)
        with pytest.raises(StartTlsRefused, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            untrusted.send("noreply@univ.example", "alice@univ.example", "<a@guichet>", RAW)
        wrong = SmtpTransport(SmtpSettings.from_url(f"smtp+starttls://guichet:nope@127.0.0.1:{relay.port}",
                                                    ca_file=certificate[0]), 10)
        with pytest.raises(TransientFailure, match="authentication refused"):
            wrong.send("noreply@univ.example", "alice@univ.example", "<a@guichet>", RAW)
        assert relay.inbox.messages == [] and relay.inbox.mail_from_seen == 0
    finally:
        relay.stop()


def test_credentials_over_plain_smtp_are_refused_up_front():
    with pytest.raises(ValueError, match="smtp\\+starttls"):
        SmtpSettings.from_url("smtp://guichet:s3cret@relay.example:25")
    assert SmtpSettings.from_url("smtp+starttls://relay.example").port == 587
    assert SmtpSettings.from_url("smtps://relay.example").port == 465


def test_a_relay_without_starttls_keeps_the_email_waiting_until_it_offers_it(
        container_factory, broker_uri, database_url, tickets_db, certificate, monkeypatch):
    with db.connect(database_url) as conn:
        conn.execute(f"TRUNCATE {NOTIFIER_TABLES}")
    port = free_port()
    clear = Relay(port, None)  # offers no STARTTLS
    clear.start()
    monkeypatch.setenv("SMTP_CA_FILE", certificate[0])
    container_factory(NotifierService, notifier_config(
        broker_uri, database_url, SMTP_URL=f"smtp+starttls://guichet:s3cret@127.0.0.1:{port}")).start()
    with db.connect(database_url) as conn:
        notifier_storage.queue_emails(conn, [notifier_storage.QueuedEmail(
            str(uuid4()), "alice", str(uuid4()), 7, "TicketSubmitted", dt.datetime.now(dt.UTC), "alice@univ.example",
            f"<{uuid4()}@guichet>", RAW)])
        notifier_storage.wake_sender(conn)

    def email():
        with db.connect(database_url) as conn:
            return conn.execute("SELECT status, attempts, last_error FROM notifier.emails").fetchone()

    try:
        waiting = wait_until(lambda: (row := email())["attempts"] >= 2 and row, what="two attempts")
        assert waiting["status"] == "pending"
        assert "STARTTLS" in waiting["last_error"]
        assert clear.inbox.messages == [] and clear.inbox.mail_from_seen == 0  # nothing said in clear
    finally:
        clear.stop()
    secure = Relay(port, certificate)  # the relay is fixed: same address, STARTTLS offered
    secure.start()
    try:
        wait_until(lambda: email()["status"] == "sent", what="the email to go once STARTTLS is offered", timeout=20)
        assert secure.inbox.sessions == [(True, "guichet")]
    finally:
        secure.stop()
