"""Signing in to the portal through an ENT's CAS 3.0 server, in Chromium: the CAS
login page, the service ticket validated with its attributes, "Mes demandes" as that
person; a sign-out ends the portal's session and goes through CAS's logout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By

from tests.browser.conftest import Browser, Stack, wait_for
from tests.identity_servers import CasServer

ATTRIBUTES = {"mail": "marc.leroy@univ.example", "displayName": "Marc Leroy",
              "supannEtablissement": "{UAI}0540001A", "eduPersonAffiliation": ["staff", "member"]}


@pytest.fixture(scope="module")
def cas() -> Iterator[CasServer]:
    with CasServer("mleroy", "mot-de-passe", ATTRIBUTES) as running:
        yield running


@pytest.fixture(scope="module")
def stack_env(cas: CasServer) -> dict[str, str]:
    return {"CAS_SERVER_URL": cas.url}


def cas_sign_in(browser: Browser, cas: CasServer, password: str = "mot-de-passe") -> None:
    wait_for(lambda: browser.driver.current_url.startswith(cas.url + "/login"), what="the CAS login page")
    browser.fill("input[name=username]", "mleroy")
    browser.fill("input[name=password]", password)
    browser.click_and_wait(browser.driver.find_element(By.CSS_SELECTOR, "form button[type=submit], form input[type=submit]"))


def test_a_wrong_password_stays_on_the_cas_page(browser: Browser, stack: Stack, cas: CasServer) -> None:
    browser.sign_out()
    browser.open("/")
    cas_sign_in(browser, cas, password="pas-le-bon")
    assert browser.driver.current_url.startswith(cas.url)
    assert not browser.driver.get_cookie("guichet_session") or "/sign-in" not in browser.path


def test_cas_sign_in_lands_on_my_requests_and_sign_out_ends_the_session(
        browser: Browser, stack: Stack, cas: CasServer) -> None:
    browser.sign_out()
    browser.open("/feed")
    cas_sign_in(browser, cas)
    wait_for(lambda: browser.driver.current_url.startswith(stack.portal) and "/sign-in" not in browser.path,
             what=f"the way back to the portal, past the ticket's validation ({browser.driver.current_url})")
    assert browser.path == "/feed", "back to the page asked for"
    assert "Marc Leroy" in browser.text("header")
    browser.open("/")
    assert "Mes demandes" in browser.text("main h1")
    browser.check_page("sign-in-cas-my-requests")

    browser.press("Se déconnecter")
    wait_for(lambda: browser.driver.current_url.startswith(cas.url), what="CAS's logout")
    browser.driver.get(stack.portal + "/")
    wait_for(lambda: browser.driver.current_url.startswith(cas.url + "/login"),
             what="a new sign-in after the sign-out")
