"""Signing in to the portal through the university's OpenID Connect provider, in
Chromium: the provider's own login page, back to "Mes demandes" as the person the
provider vouched for (claims mapped from SupAnn names), and a sign-out that ends the
portal's session and goes through the provider's end-session endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By

from tests.browser.conftest import Browser, Stack, wait_for
from tests.identity_servers import OidcProvider

SUB = "5f0c1e2a-opaque-uuid-of-claire"
CLAIRE = {"email": "claire.fontaine@univ.example", "preferred_username": "cfontaine", "given_name": "Claire",
          "family_name": "Fontaine", "supannEtablissement": "{UAI}0540001A", "eduPersonAffiliation": ["student"]}


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider({SUB: CLAIRE}) as running:
        yield running


@pytest.fixture(scope="module")
def stack_env(provider: OidcProvider) -> dict[str, str]:
    return {"OIDC_ISSUER": provider.issuer, "OIDC_CLIENT_ID": "guichet-portal", "OIDC_CLIENT_SECRET": "portal-secret"}


def provider_sign_in(browser: Browser, provider: OidcProvider, sub: str) -> None:
    """On the provider's login page (not the portal's), name the person and authorize."""
    wait_for(lambda: browser.driver.current_url.startswith(provider.issuer), what="the provider's login page")
    field = browser.driver.find_element(By.CSS_SELECTOR, "input[name=sub]")
    field.send_keys(sub)
    browser.click_and_wait(browser.driver.find_element(By.XPATH, "//button[normalize-space()='Authorize']"))


def test_sign_in_through_the_provider_lands_on_my_requests_as_the_mapped_person(
        browser: Browser, stack: Stack, provider: OidcProvider) -> None:
    browser.sign_out()
    browser.open("/")  # a page that needs a person sends the browser to the provider
    provider_sign_in(browser, provider, SUB)
    wait_for(lambda: browser.driver.current_url.startswith(stack.portal) and "/sign-in" not in browser.path,
             what="the way back to the portal, past the callback")
    assert browser.path == "/"
    assert "Mes demandes" in browser.text("main h1")
    # The provider's opaque sub is not the login: preferred_username is, with the name.
    assert "Claire Fontaine" in browser.text("header")
    cookie = browser.driver.get_cookie("guichet_session") or next(
        c for c in browser.driver.get_cookies() if c.get("httpOnly"))
    assert cookie["httpOnly"] and cookie.get("sameSite") == "Lax"
    browser.check_page("sign-in-oidc-my-requests")

    # The portal calls the services as that person: a ticket filed now is Claire's.
    browser.open("/tickets/new")
    assert browser.find_all("a[href*='category=']"), "the category tree of step 1/2"


def test_sign_out_ends_the_session_and_goes_through_the_provider(
        browser: Browser, stack: Stack, provider: OidcProvider) -> None:
    if not browser.driver.current_url.startswith(stack.portal) or "/sign-in" in browser.path:
        browser.open("/")
        provider_sign_in(browser, provider, SUB)
    browser.open("/")
    browser.press("Se déconnecter")
    # The provider's end-session endpoint: it asks to confirm, then sends the browser back.
    wait_for(lambda: browser.driver.current_url.startswith(provider.issuer), what="the provider's end session")
    assert "end" in browser.driver.current_url.lower() or "logout" in browser.driver.current_url.lower()
    confirm = browser.driver.find_elements(By.XPATH, "//button[normalize-space()='End session']")
    if confirm:
        browser.click_and_wait(confirm[0])
    # Back on the portal the session is gone: "Mes demandes" asks for a sign-in again.
    browser.driver.get(stack.portal + "/")
    wait_for(lambda: browser.driver.current_url.startswith(provider.issuer),
             what="a new sign-in after the sign-out")
    assert browser.driver.find_elements(By.CSS_SELECTOR, "input[name=sub]")
