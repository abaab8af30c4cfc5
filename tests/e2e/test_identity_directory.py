"""Invitations of people who never signed in, found in a real slapd by the tickets
service (API.md: ``POST /api/v1/tickets/{id}/invitations`` ``{"user": login or email}``),
and what happens when the directory is down: a clear 503, nothing else breaks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ALICE, BOB
from tests.identity_servers import Slapd

PEOPLE = [
    {"uid": "jdupont", "mail": "jean.dupont@univ.example", "cn": "Jean Dupont", "displayName": "Jean Dupont",
     "supannEtablissement": "{UAI}0540001A", "eduPersonAffiliation": ["staff"]},
    {"uid": "cmartin", "mail": "Clara.Martin@univ.example", "cn": "Clara Martin"},
    {"uid": "lpetit", "mail": "louise.petit@univ.example", "cn": "Louise Petit"},
]


@pytest.fixture(scope="module")
def slapd() -> Iterator[Slapd]:
    with Slapd(PEOPLE) as running:
        yield running


@pytest.fixture
def directory(slapd, monkeypatch) -> Slapd:
    """The services' directory is this slapd (read when a lookup happens), and it is up."""
    for name, value in {**slapd.env(), "LDAP_TIMEOUT": "2"}.items():
        monkeypatch.setenv(name, value)
    if slapd.process is None:
        slapd.start()
    return slapd


def invite(api, ticket, user, who=ALICE):
    return api.post(f"/api/v1/tickets/{ticket['id']}/invitations", who, json={"user": user})


def test_someone_who_never_signed_in_is_invited_by_login(api, directory):
    ticket = api.submit(ALICE)
    invited = invite(api, ticket, "jdupont")
    assert invited.status_code == 201, invited.text
    assert {"id": "jdupont", "name": "Jean Dupont", "email": "jean.dupont@univ.example"} in invited.json()["invitees"]
    # Jean signs in later and finds the ticket he was invited to.
    from tests.e2e.conftest import User

    jean = User("jdupont", "jean.dupont@univ.example", "Jean Dupont")
    assert api.get(f"/api/v1/tickets/{ticket['id']}", jean).status_code == 200
    assert [t["id"] for t in api.get("/api/v1/tickets", jean, params={"scope": "invited"}).json()["items"]] == [ticket["id"]]


def test_someone_who_never_signed_in_is_invited_by_email(api, directory):
    ticket = api.submit(ALICE)
    invited = invite(api, ticket, "clara.martin@UNIV.example")
    assert invited.status_code == 201, invited.text
    assert [i["id"] for i in invited.json()["invitees"]] == ["cmartin"]


def test_someone_in_neither_guichet_nor_the_directory_is_422(api, directory):
    ticket = api.submit(ALICE)
    refused = invite(api, ticket, "nobody@univ.example")
    assert refused.status_code == 422
    assert "nobody known as nobody@univ.example" in refused.json()["detail"]


def test_with_the_directory_down_the_invitation_is_a_clear_503_and_nothing_else_breaks(api, directory):
    ticket = api.submit(ALICE)
    api.get("/api/v1/tickets", BOB)  # bob has signed in: Guichet knows him
    before = api.get(f"/api/v1/tickets/{ticket['id']}", ALICE).json()
    directory.stop()
    refused = invite(api, ticket, "lpetit")
    assert refused.status_code == 503, refused.text
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert refused.headers["Retry-After"]
    assert "directory" in refused.json()["detail"]
    assert api.get(f"/api/v1/tickets/{ticket['id']}", ALICE).json() == before
    # People Guichet knows are still invited, and everything else works.
    assert invite(api, ticket, "bob").status_code == 201
    assert api.post(f"/api/v1/tickets/{ticket['id']}/comments", ALICE, json={"body": "Merci", "visibility": "public"}
                    ).status_code == 201
    assert api.submit(BOB)["requester"]["id"] == "bob"
    # The directory is back: the invitation works.
    directory.start()
    assert invite(api, ticket, "lpetit").status_code == 201
