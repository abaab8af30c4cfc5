"""shared/directory.py against a real slapd (Debian's OpenLDAP) started by the fixture:
lookups by login and email, search by name, the attribute mapping, filter escaping, a
configured filter, and a directory that is down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.auth import Identity
from shared.config import Settings
from shared.directory import Directory, DirectoryUnavailable, find_person, search_people
from tests.identity_servers import Slapd

PEOPLE = [
    {"uid": "jdupont", "mail": "jean.dupont@univ.example", "cn": "Jean Dupont", "displayName": "Jean Dupont",
     "supannEtablissement": "{UAI}0540001A", "eduPersonAffiliation": ["staff", "employee"]},
    {"uid": "cmartin", "mail": "Clara.Martin@univ.example", "cn": "Clara Martin", "sn": "Martin",
     "eduPersonAffiliation": ["student"], "supannEtablissement": "{UAI}0541234B"},
    {"uid": "lpetit", "mail": "louise.petit@univ.example", "cn": "Louise Petit", "displayName": "Louise Petit"},
    {"uid": "ppetit", "mail": "paul.petit@univ.example", "cn": "Paul Petit", "employeeType": "retired"},
    {"uid": "nomail", "cn": "Sans Adresse"},
]


@pytest.fixture(scope="module")
def slapd() -> Iterator[Slapd]:
    with Slapd(PEOPLE) as running:
        yield running


def settings_for(slapd: Slapd, **extra: str) -> Settings:
    return Settings.from_env({**slapd.env(), **extra})


def test_a_person_is_found_by_login_or_email_with_the_supann_mapping(slapd):
    directory = Directory(settings_for(slapd))
    jean = Identity("jdupont", "jean.dupont@univ.example", "Jean Dupont", "0540001A", ("staff", "employee"))
    assert directory.find("jdupont") == jean
    assert directory.find("JEAN.DUPONT@univ.example") == jean
    assert directory.find("  jdupont ") == jean
    clara = directory.find("cmartin")
    assert clara == Identity("cmartin", "Clara.Martin@univ.example", "Clara Martin", "0541234B", ("student",))


def test_unknown_people_and_entries_without_an_email_are_not_found(slapd):
    directory = Directory(settings_for(slapd))
    assert directory.find("nobody") is None
    assert directory.find("nomail") is None


@pytest.mark.parametrize("text", ["*", "j*", "*)(uid=*", "jdupont)(|(uid=*", "\\2a"])
def test_filter_characters_are_escaped(slapd, text):
    assert Directory(settings_for(slapd)).find(text) is None


def test_search_by_part_of_a_name_login_or_email(slapd):
    directory = Directory(settings_for(slapd))
    assert sorted(p.login for p in directory.search("petit")) == ["lpetit", "ppetit"]
    assert [p.login for p in directory.search("clara.mar")] == ["cmartin"]
    assert [p.login for p in directory.search("dupon")] == ["jdupont"]
    assert directory.search("p") == []  # too short to search
    assert directory.search("*") == []  # a literal star matches nobody
    assert len(directory.search("univ.example", limit=2)) <= 2


def test_the_configured_filter_and_attributes_are_used(slapd):
    only_retired = Directory(settings_for(slapd, LDAP_FILTER="(employeeType=retired)"))
    assert only_retired.find("ppetit") is not None and only_retired.find("jdupont") is None
    by_cn = Directory(settings_for(slapd, LDAP_ATTR_NAME="sn"))
    assert by_cn.find("cmartin").name == "Martin"


def test_without_a_directory_nobody_is_found_and_nothing_is_asked():
    assert find_person("jdupont", Settings.from_env({})) is None
    assert search_people("petit", Settings.from_env({})) == []


def test_a_wrong_bind_password_or_a_stopped_directory_is_unavailable(slapd):
    with pytest.raises(DirectoryUnavailable) as refused:
        Directory(settings_for(slapd, LDAP_BIND_PASSWORD="wrong")).find("jdupont")
    assert refused.value.status == 503 and refused.value.headers["Retry-After"]
    nowhere = Settings.from_env({**slapd.env(), "LDAP_URL": "ldap://127.0.0.1:1", "LDAP_TIMEOUT": "1"})
    with pytest.raises(DirectoryUnavailable):
        find_person("jdupont", nowhere)
