"""Attachments end to end: the tickets and attachments services running for real (HTTP
on free local ports, RPC and ticket events over a throwaway RabbitMQ vhost, the test
database, a blob store in a temporary folder).

Uploads (what is accepted, what is refused and leaves nothing behind), files joining
tickets at creation, with a comment or later, and who may download them: the uploader
before they are attached, then whoever may see them on their ticket (internal files:
managers and admins), everyone else 404.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from nameko import config
from nameko.standalone.rpc import ServiceRpcClient
from nameko.testing.services import entrypoint_hook

from services.attachments.service import AttachmentsService
from shared import db
from tests.e2e.conftest import ALICE, BOB, INES, MARC, MONA, OSCAR, ROOT, Api, User
from tests.helpers import free_port, wait_until

LIMIT = 256 * 1024  # MAX_ATTACHMENT_BYTES in these tests
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 100


class Files:
    """The attachments service over HTTP, and a look at its database rows and blobs."""

    def __init__(self, api: Api, base_url: str, root: Path, database_url: str, container: Any) -> None:
        self.api = api
        self.base_url = base_url
        self.root = root
        self.database_url = database_url
        self.container = container

    def upload(self, user: User | None, content: bytes = PNG, filename: str = "capture.png", *,
               token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.api.token(user)}"} if user or token else {}
        headers.update(kwargs.pop("headers", {}))
        if "data" not in kwargs and "files" not in kwargs:
            kwargs["files"] = {"file": (filename, content, "image/png")}
        return self.api.session.post(f"{self.base_url}/api/v1/attachments", headers=headers, timeout=30, **kwargs)

    def uploaded(self, user: User, data: bytes = PNG, filename: str = "capture.png") -> dict[str, Any]:
        response = self.upload(user, data, filename)
        assert response.status_code == 201, response.text
        return response.json()

    def download(self, user: User | None, attachment_id: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.api.token(user)}"} if user else {}
        return self.api.session.get(f"{self.base_url}/api/v1/attachments/{attachment_id}", headers=headers, timeout=30)

    def rows(self) -> list[dict[str, Any]]:
        with db.connect(self.database_url) as conn:
            return conn.execute("SELECT * FROM attachments.files ORDER BY created_at").fetchall()

    def row(self, attachment_id: str) -> dict[str, Any] | None:
        with db.connect(self.database_url) as conn:
            return conn.execute("SELECT * FROM attachments.files WHERE id = %s", (attachment_id,)).fetchone()

    def blobs(self) -> list[Path]:
        return sorted(p for p in (self.root / "blobs").glob("*/*"))

    def temporary(self) -> list[Path]:
        return sorted((self.root / "tmp").iterdir())

    def nothing_stored(self) -> bool:
        return not self.rows() and not self.blobs() and not self.temporary()


@pytest.fixture
def files(api, container_factory, tmp_path, database_url) -> Files:
    with db.connect(database_url) as conn:
        conn.execute("TRUNCATE attachments.files, attachments.processed_events, attachments.idempotency_keys")
    port = free_port()
    root = tmp_path / "store"
    addresses = {**(config.get("HTTP_ADDRESSES") or {}), "attachments": f"127.0.0.1:{port}"}
    container = container_factory(AttachmentsService, {
        "HTTP_ADDRESSES": addresses, "ATTACHMENTS_DIR": str(root), "MAX_ATTACHMENT_BYTES": LIMIT,
    })
    container.start()
    return Files(api, f"http://127.0.0.1:{port}", root, database_url, container)


def route(ticket: dict[str, Any], department: str = "dnum-ent") -> None:
    with ServiceRpcClient("tickets") as tickets:
        tickets.route({"id": "system:routing", "kind": "system"}, ticket["id"], department)


def filed_with(api: Api, files: Files, *uploads: dict[str, Any], invite: bool = True) -> dict[str, Any]:
    """alice's ticket filed with ``uploads``, routed to dnum-ent, ines invited."""
    ticket = api.submit(ALICE, attachment_ids=[u["id"] for u in uploads])
    route(ticket)
    if invite:
        api.get("/api/v1/tickets", INES)  # the directory learns who ines is
        invited = api.post(f"/api/v1/tickets/{ticket['id']}/invitations", ALICE, json={"user": "ines"})
        assert invited.status_code == 201, invited.text
        return invited.json()
    return ticket


def assert_problem(response: requests.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, f"{response.status_code}: {response.text[:500]}"
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["detail"] and "Traceback" not in response.text
    if field:
        assert field in (body.get("errors") or {}), body
    return body


def history_types(api: Api, ticket: dict[str, Any]) -> list[str]:
    return [e["type"] for e in api.get(f"/api/v1/tickets/{ticket['id']}/history", ROOT).json()["items"]]


# -- uploading ----------------------------------------------------------------------------


def test_upload_answers_the_files_metadata(files):
    response = files.upload(ALICE, PNG, "Capture d'écran.png")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body == {"id": body["id"], "filename": "Capture d'écran.png", "size": len(PNG),
                    "content_type": "image/png", "sha256": hashlib.sha256(PNG).hexdigest()}
    assert response.headers["Location"] == f"/api/v1/attachments/{body['id']}"
    assert [b.name for b in files.blobs()] == [body["sha256"]]
    assert files.temporary() == []


def test_the_type_is_read_from_the_bytes_not_the_client(files):
    odt = io.BytesIO()
    with zipfile.ZipFile(odt, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text", compress_type=zipfile.ZIP_STORED)
        archive.writestr("content.xml", "<office:document-content/>")
    cases = [(PDF, "facture.png", "application/pdf"), (odt.getvalue(), "cours.odt", "application/vnd.oasis.opendocument.text"),
             ("Bonjour, l'écran reste noir.\n".encode(), "notes.txt", "text/plain; charset=utf-8")]
    for data, name, expected in cases:
        response = files.upload(ALICE, files={"file": (name, data, "application/x-whatever")})
        assert response.status_code == 201, response.text
        assert response.json()["content_type"] == expected


def test_an_executable_renamed_png_is_415_and_nothing_is_stored(files):
    exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 50_000
    body = assert_problem(files.upload(ALICE, exe, "vacances.png"), 415)
    assert "executable" in body["detail"]
    assert_problem(files.upload(ALICE, b"\x7fELF\x02\x01\x01" + b"\x00" * 100, "photo.jpg"), 415)
    assert files.nothing_stored()


def test_over_the_size_limit_is_413_and_nothing_is_stored(files):
    too_big = PDF * (LIMIT // len(PDF) + 2)
    assert_problem(files.upload(ALICE, too_big, "gros.pdf"), 413)
    assert files.nothing_stored()

    def chunks():  # no Content-Length: the limit is found while streaming
        multipart = (b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"gros.pdf\"\r\n"
                     b"Content-Type: application/pdf\r\n\r\n" + too_big + b"\r\n--b0undary--\r\n")
        for start in range(0, len(multipart), 16 * 1024):
            yield multipart[start:start + 16 * 1024]

    response = files.upload(ALICE, data=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b0undary"})
    assert_problem(response, 413)
    assert files.nothing_stored()
    # Exactly the limit is fine.
    exact = (PDF * (LIMIT // len(PDF) + 1))[:LIMIT]
    assert files.upload(ALICE, exact, "juste.pdf").status_code == 201


def raw_multipart(filename_bytes: bytes, data: bytes = PNG) -> tuple[bytes, dict[str, str]]:
    body = (b"--XbX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + filename_bytes + b"\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + data + b"\r\n--XbX--\r\n")
    return body, {"Content-Type": "multipart/form-data; boundary=XbX"}


@pytest.mark.parametrize(("sent", "kept"), [
    (b"../../etc/passwd.png", "passwd.png"),
    (b"..\\..\\Windows\\win.png", "win.png"),
    (b"capture\x00.png", "capture.png"),
    (b"capture\x07\x1b.png", "capture.png"),
    ("écran noir – 2024.png".encode(), "écran noir – 2024.png"),
    ("e\u0301cran.png".encode(), "écran.png"),  # NFD in, NFC out
    ("截图.png".encode(), "截图.png"),
    (b"x" * 1000 + b".png", "x" * 196 + ".png"),
    (b"rapport %22final%22.png", 'rapport "final".png'),
    (b"a%0D%0AX-Injected: 1.png", "aX-Injected: 1.png"),
    (b"", "fichier"),
])
def test_file_names_are_cleaned_and_offered_back_safely(files, sent, kept):
    body, headers = raw_multipart(sent)
    response = files.upload(ALICE, data=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == kept
    download = files.download(ALICE, response.json()["id"])
    assert download.status_code == 200
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="')
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == kept
    assert "X-Injected" not in download.headers


def test_a_raw_newline_in_a_file_name_cannot_inject_a_header(files):
    body, headers = raw_multipart(b"a\r\nX-Injected: 1\r\n.png")
    response = files.upload(ALICE, data=body, headers=headers)
    # The newline ends the Content-Disposition line: the name is cut, or the part is refused.
    assert response.status_code in (201, 400), response.text
    if response.status_code == 201:
        assert "\n" not in response.json()["filename"] and "\r" not in response.json()["filename"]
        assert "X-Injected" not in files.download(ALICE, response.json()["id"]).headers


def test_empty_missing_and_garbage_uploads(files):
    body = assert_problem(files.upload(ALICE, b"", "vide.png"), 422, "file")
    assert "empty" in body["errors"]["file"][0]
    assert_problem(files.upload(ALICE, files={"comment": (None, "pas de fichier")}), 422, "file")
    assert_problem(files.upload(ALICE, files={"file": (None, "not a file part")}), 422, "file")
    garbage = {"Content-Type": "multipart/form-data; boundary=XbX"}
    assert_problem(files.upload(ALICE, data=b"\x00\x01 definitely not multipart", headers=garbage), 400)
    assert_problem(files.upload(ALICE, data=b"--XbX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\""
                                b"\r\n\r\n" + PNG, headers=garbage), 400)  # never closed
    assert_problem(files.upload(ALICE, data=b"--XbX\r\n\r\n\r\n--XbX--", headers=garbage), 400)
    assert_problem(files.upload(ALICE, data=PNG, headers={"Content-Type": "image/png"}), 415)
    assert_problem(files.upload(ALICE, data=b'{"file": "x"}', headers={"Content-Type": "application/json"}), 415)
    assert_problem(files.upload(ALICE, data=b"x", headers={"Content-Type": "multipart/form-data"}), 400)
    assert files.nothing_stored()


def test_without_a_valid_token_is_401(files):
    assert_problem(files.upload(None), 401)
    assert_problem(files.upload(None, token="not.a.token"), 401)
    expired = files.api.token(ALICE, ttl_seconds=-3600)
    assert_problem(files.upload(None, token=expired), 401)
    upload = files.uploaded(ALICE)
    assert_problem(files.download(None, upload["id"]), 401)
    assert files.rows()[0]["id"].hex == upload["id"].replace("-", "")


# -- joining tickets and downloading -------------------------------------------------------


def test_attached_at_creation_each_role_downloads_or_gets_404(api, files):
    upload = files.uploaded(ALICE, PNG, "écran.png")
    ticket = filed_with(api, files, upload)
    assert ticket["attachments"] == [{"id": upload["id"], "filename": "écran.png", "size": len(PNG),
                                      "content_type": "image/png", "visibility": "public"}]
    for user in (ALICE, INES, MARC, ROOT):
        response = files.download(user, upload["id"])
        assert response.status_code == 200, (user.login, response.text)
        assert response.content == PNG
        assert response.headers["Content-Type"] == "image/png"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Length"] == str(len(PNG))
        assert response.headers["Content-Disposition"] == (
            "attachment; filename=\"ecran.png\"; filename*=UTF-8''%C3%A9cran.png")
    for user in (BOB, OSCAR):
        assert_problem(files.download(user, upload["id"]), 404)
    # The attachments service hears of it: the claim is confirmed.
    wait_until(lambda: (files.row(upload["id"]) or {}).get("attached_at"), what="AttachmentAdded consumed")


def test_before_it_is_attached_only_the_uploader_downloads(api, files):
    upload = files.uploaded(ALICE)
    assert files.download(ALICE, upload["id"]).content == PNG
    for user in (BOB, INES, MARC, ROOT):
        assert_problem(files.download(user, upload["id"]), 404)
    for unknown in ("00000000-0000-0000-0000-000000000000", "not-an-id", "1"):
        assert_problem(files.download(ALICE, unknown), 404)


def test_attached_later_public_and_internal(api, files):
    ticket = filed_with(api, files)
    mine = files.uploaded(ALICE, PDF, "facture.pdf")
    response = api.post(f"/api/v1/tickets/{ticket['id']}/attachments", ALICE, json={"attachment_id": mine["id"]})
    assert response.status_code == 201, response.text
    assert [a["id"] for a in response.json()["attachments"]] == [mine["id"]]
    # Attaching it again to the same ticket changes nothing.
    again = api.post(f"/api/v1/tickets/{ticket['id']}/attachments", ALICE, json={"attachment_id": mine["id"]})
    assert again.status_code == 201 and again.json()["version"] == response.json()["version"]
    assert history_types(api, ticket).count("AttachmentAdded") == 1

    note = files.uploaded(MARC, b"Notes internes du service.\n", "notes.txt")
    internal = api.post(f"/api/v1/tickets/{ticket['id']}/attachments", MARC,
                        json={"attachment_id": note["id"], "visibility": "internal"})
    assert internal.status_code == 201, internal.text
    for user, status in ((ALICE, 200), (INES, 200), (MARC, 200), (ROOT, 200), (BOB, 404), (OSCAR, 404)):
        assert files.download(user, mine["id"]).status_code == status, user.login
    for user, status in ((MARC, 200), (MONA, 200), (ROOT, 200), (ALICE, 404), (INES, 404), (BOB, 404), (OSCAR, 404)):
        assert files.download(user, note["id"]).status_code == status, user.login
    assert [a["id"] for a in api.get(f"/api/v1/tickets/{ticket['id']}", ALICE).json()["attachments"]] == [mine["id"]]


def test_an_invitee_attaches_with_a_comment(api, files):
    ticket = filed_with(api, files)
    upload = files.uploaded(INES, PDF, "trace.pdf")
    response = api.post(f"/api/v1/tickets/{ticket['id']}/comments", INES,
                        json={"body": "Voici la trace.", "attachment_ids": [upload["id"]]})
    assert response.status_code == 201, response.text
    after = response.json()
    assert [a["id"] for a in after["attachments"]] == [upload["id"]]
    assert after["comments"][-1]["attachment_ids"] == [upload["id"]]
    assert history_types(api, ticket)[-2:] == ["AttachmentAdded", "CommentAdded"]
    assert files.download(ALICE, upload["id"]).content == PDF
    # A comment may name a file already on the ticket.
    again = api.post(f"/api/v1/tickets/{ticket['id']}/comments", ALICE,
                     json={"body": "Merci.", "attachment_ids": [upload["id"]]})
    assert again.status_code == 201, again.text
    assert history_types(api, ticket).count("AttachmentAdded") == 1


def test_someone_elses_upload_is_422_and_changes_nothing(api, files):
    ticket = filed_with(api, files)
    bobs = files.uploaded(BOB)
    before = api.get("/api/v1/tickets", ROOT, params={"scope": "all"}).json()
    assert_problem(api.post("/api/v1/tickets", ALICE, json={
        "category_id": "wifi", "subject": "Wi-Fi", "description": "Coupé.", "attachment_ids": [bobs["id"]]}),
        422, "attachment_ids")
    assert_problem(api.post(f"/api/v1/tickets/{ticket['id']}/comments", ALICE,
                            json={"body": "Regardez", "attachment_ids": [bobs["id"]]}), 422, "attachment_ids")
    assert_problem(api.post(f"/api/v1/tickets/{ticket['id']}/attachments", ALICE,
                            json={"attachment_id": bobs["id"]}), 422, "attachment_id")
    unknown = "7d7c2a3e-3c1f-4b7a-9f0e-2b1d7f9c0a11"
    assert_problem(api.post(f"/api/v1/tickets/{ticket['id']}/attachments", ALICE,
                            json={"attachment_id": unknown}), 422, "attachment_id")
    assert api.get("/api/v1/tickets", ROOT, params={"scope": "all"}).json() == before
    assert files.row(bobs["id"])["ticket_id"] is None


def test_a_file_on_one_ticket_cannot_join_another_409(api, files):
    upload = files.uploaded(ALICE)
    first = filed_with(api, files, upload, invite=False)
    second = api.submit(ALICE)
    before = api.get("/api/v1/tickets", ROOT, params={"scope": "all"}).json()
    assert_problem(api.post(f"/api/v1/tickets/{second['id']}/attachments", ALICE,
                            json={"attachment_id": upload["id"]}), 409, "attachment_id")
    assert_problem(api.post("/api/v1/tickets", ALICE, json={
        "category_id": "wifi", "subject": "Encore", "description": "Même capture.", "attachment_ids": [upload["id"]]}),
        409, "attachment_ids")
    assert api.get("/api/v1/tickets", ROOT, params={"scope": "all"}).json() == before
    assert str(files.row(upload["id"])["ticket_id"]) == first["id"]


def test_a_refused_attach_releases_the_claim(api, files):
    ticket = filed_with(api, files)
    upload = files.uploaded(ALICE)
    # The requester may not add an internal file: 403, and the upload stays free.
    assert_problem(api.post(f"/api/v1/tickets/{ticket['id']}/attachments", ALICE,
                            json={"attachment_id": upload["id"], "visibility": "internal"}), 403)
    assert files.row(upload["id"])["ticket_id"] is None
    other = api.submit(ALICE)
    assert api.post(f"/api/v1/tickets/{other['id']}/attachments", ALICE,
                    json={"attachment_id": upload["id"]}).status_code == 201


def test_a_crashed_claim_blocks_no_retry(api, files, database_url):
    """A claim whose AttachmentAdded never got appended (the tickets service died in
    between): the same ticket may claim it at once; another one after the lease."""
    ticket = filed_with(api, files, invite=False)
    upload = files.uploaded(ALICE)
    alice = {"id": "alice", "kind": "user"}
    with ServiceRpcClient("attachments") as attachments:
        attachments.claim(alice, upload["id"], ticket["id"], "public")  # ... and then nothing
    retried = api.post(f"/api/v1/tickets/{ticket['id']}/attachments", ALICE, json={"attachment_id": upload["id"]})
    assert retried.status_code == 201, retried.text

    orphan = files.uploaded(ALICE, PDF, "orphelin.pdf")
    with ServiceRpcClient("attachments") as attachments:
        attachments.claim(alice, orphan["id"], ticket["id"], "public")  # never appended
    other = api.submit(ALICE)
    assert_problem(api.post(f"/api/v1/tickets/{other['id']}/attachments", ALICE,
                            json={"attachment_id": orphan["id"]}), 409)  # within the lease
    with db.connect(database_url) as conn:
        conn.execute("UPDATE attachments.files SET claimed_at = claimed_at - interval '10 minutes' WHERE id = %s",
                     (orphan["id"],))
    taken = api.post(f"/api/v1/tickets/{other['id']}/attachments", ALICE, json={"attachment_id": orphan["id"]})
    assert taken.status_code == 201, taken.text
    assert str(files.row(orphan["id"])["ticket_id"]) == other["id"]


def test_identical_files_share_one_blob_and_removal_keeps_it_for_the_other(api, files):
    first, second = files.uploaded(ALICE, PDF, "a.pdf"), files.uploaded(ALICE, PDF, "b.pdf")
    assert first["sha256"] == second["sha256"] and first["id"] != second["id"]
    assert len(files.blobs()) == 1
    ticket = filed_with(api, files, first, second, invite=False)
    removed = api.act(ticket, "remove-attachment", ALICE, attachment_id=first["id"], comment="Doublon")
    assert removed.status_code == 200, removed.text
    assert [a["id"] for a in removed.json()["attachments"]] == [second["id"]]
    assert history_types(api, ticket)[-1] == "AttachmentRemoved"
    assert_problem(files.download(ALICE, first["id"]), 404)
    wait_until(lambda: files.row(first["id"])["removed_at"], what="AttachmentRemoved consumed")
    assert len(files.blobs()) == 1
    assert files.download(MARC, second["id"]).content == PDF
    # The last user of the blob goes: so does the blob.
    assert api.act(ticket, "remove-attachment", MARC, attachment_id=second["id"], comment="Données personnelles"
                   ).status_code == 200
    wait_until(lambda: not files.blobs(), what="the unused blob deleted")
    assert_problem(files.download(MARC, second["id"]), 404)
    assert len(files.rows()) == 2  # the metadata stays for the ticket's history


def test_remove_attachment_needs_a_comment(api, files):
    upload = files.uploaded(ALICE)
    ticket = filed_with(api, files, upload)
    for body in ({"attachment_id": upload["id"]}, {"attachment_id": upload["id"], "comment": "   "}):
        assert_problem(api.act(ticket, "remove-attachment", ALICE, **body), 422, "comment")
    assert_problem(api.act(ticket, "remove-attachment", INES, attachment_id=upload["id"], comment="Non"), 403)
    assert files.download(INES, upload["id"]).status_code == 200


def test_uploads_never_attached_are_swept_after_24_hours(api, files):
    kept = files.uploaded(ALICE, PDF, "gardé.pdf")
    filed_with(api, files, kept, invite=False)
    forgotten = files.uploaded(ALICE, PNG, "oublié.png")
    same_bytes = files.uploaded(BOB, PDF, "même contenu.pdf")
    backend = next(d for d in files.container.dependencies if d.attr_name == "backend").wrapped
    with entrypoint_hook(files.container, "sweep_unattached") as sweep:
        assert sweep()["uploads"] == 0  # too young
        real_clock = backend.clock
        backend.clock = lambda: real_clock() + __import__("datetime").timedelta(hours=25)
        try:
            counts = sweep()
        finally:
            backend.clock = real_clock
    assert counts["uploads"] == 2
    assert files.row(forgotten["id"]) is None and files.row(same_bytes["id"]) is None
    assert [b.name for b in files.blobs()] == [kept["sha256"]]  # shared with the attached file: kept
    assert files.download(ALICE, kept["id"]).content == PDF
    assert_problem(files.download(ALICE, forgotten["id"]), 404)


def test_health_and_openapi(files):
    assert requests.get(f"{files.base_url}/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{files.base_url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    document = requests.get(f"{files.base_url}/api/v1/openapi.json", timeout=10).json()
    assert set(document["paths"]) >= {"/api/v1/attachments", "/api/v1/attachments/{attachment_id}"}


def test_without_the_attachments_service_naming_an_upload_is_503(api):
    """The tickets service alone: a well-formed upload id cannot be checked, nothing changes."""
    ticket = api.submit(ALICE)
    upload_id = "0e3c5a0e-4f0a-4d8e-9a55-3c1f0c2f7a10"
    assert_problem(api.post(f"/api/v1/tickets/{ticket['id']}/attachments", ALICE, json={"attachment_id": upload_id}), 503)
    assert_problem(api.post(f"/api/v1/tickets/{ticket['id']}/comments", ALICE,
                            json={"body": "Voir la capture", "attachment_ids": [upload_id]}), 503)
    assert_problem(api.post("/api/v1/tickets", ALICE, json={
        "category_id": "wifi", "subject": "Wi-Fi", "description": "Coupé.", "attachment_ids": [upload_id]}), 503)
    assert api.get(f"/api/v1/tickets/{ticket['id']}", ALICE).json()["version"] == ticket["version"]
    assert len(api.get("/api/v1/tickets", ROOT, params={"scope": "all"}).json()["items"]) == 1


def test_an_unreadable_ticket_event_is_dead_lettered_and_the_next_one_handled(api, files, broker_uri):
    import kombu

    from shared.outbox import event_exchange

    bodies = ({"event_type": "AttachmentAdded"}, {"event_id": "x", "event_type": "AttachmentRemoved",
                                                  "ticket": {"id": "y"}, "data": {}, "occurred_at": "z"})
    with kombu.Connection(broker_uri) as connection:
        producer = connection.Producer(serializer="json")
        for body in bodies:
            producer.publish(body, exchange=event_exchange(), routing_key=body["event_type"], declare=[event_exchange()])
        dead = connection.SimpleQueue("attachments.ticket-events.dead-letters")
        try:
            letters = [dead.get(timeout=20) for _ in bodies]
            for letter in letters:
                letter.ack()
        finally:
            dead.close()
    assert sorted(letter.payload["event_type"] for letter in letters) == ["AttachmentAdded", "AttachmentRemoved"]
    assert {letter.headers["x-guichet-error-type"] for letter in letters} == {"UnreadableEvent"}
    upload = files.uploaded(ALICE)
    filed_with(api, files, upload, invite=False)
    wait_until(lambda: (files.row(upload["id"]) or {}).get("attached_at"), what="the next event still handled")
