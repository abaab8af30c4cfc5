"""The portal's defences against the running services: a POST without its CSRF token is
refused (403) and changes nothing; HTML typed into a ticket shows as text and never
runs; the session cookie's flags and the security headers; nothing changes on a GET;
the main flow works with JavaScript turned off (progressive enhancement)."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator

import pytest
import requests
from selenium.webdriver.common.by import By

from tests.browser.conftest import CHROMIUM_FLAGS, Browser, Stack

XSS_SUBJECT = "<b>Sujet</b> piégé"
XSS_DESCRIPTION = '<script>window.pwned = 1</script> et <img src="x" onerror="window.pwned = 2"> voilà'


def signed_in(stack: Stack, login: str) -> tuple[requests.Session, str]:
    """A plain HTTP client signed in through /dev/sign-in; its CSRF token."""
    client = requests.Session()
    form = client.get(stack.portal + "/dev/sign-in", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    done = client.post(stack.portal + "/dev/sign-in", data={"login": login, "csrf_token": token}, timeout=10,
                       allow_redirects=False)
    assert done.status_code == 303, done.text
    home = client.get(stack.portal + "/", timeout=10)
    return client, re.search(r'name="csrf_token" value="([^"]+)"', home.text).group(1)


def file_ticket(client: requests.Session, token: str, stack: Stack, **fields: str) -> int:
    body = {"csrf_token": token, "category_id": "impression", "subject": "Imprimante en panne",
            "description": "Bourrage papier", "priority": "3", "op": "create", **fields}
    answer = client.post(stack.portal + "/tickets/new", data=body, files={"files": ("", b"")}, timeout=20,
                         allow_redirects=False)
    assert answer.status_code == 303, answer.text
    return int(re.search(r"/tickets/(\d+)/created", answer.headers["Location"]).group(1))


def count_tickets(stack: Stack) -> int:
    with stack.pool.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM tickets.ticket_view").fetchone()["n"]


def status_of(stack: Stack, number: int) -> str:
    with stack.pool.connection() as conn:
        return conn.execute("SELECT status FROM tickets.ticket_view WHERE number = %s", (number,)).fetchone()["status"]


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(stack: Stack):
    client, token = signed_in(stack, "carla")
    number = file_ticket(client, token, stack)
    before = count_tickets(stack)
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token + "x"}):
        filed = client.post(stack.portal + "/tickets/new", data={**data, "category_id": "impression", "subject": "S",
                                                                 "description": "D", "op": "create"}, timeout=10)
        assert filed.status_code == 403 and "Ce formulaire a expiré" in filed.text
        cancel = client.post(stack.portal + f"/tickets/{number}/actions/cancel", data=data, timeout=10)
        assert cancel.status_code == 403
        comment = client.post(stack.portal + f"/tickets/{number}/comment", data={**data, "body": "x"}, timeout=10)
        assert comment.status_code == 403
    assert count_tickets(stack) == before
    assert status_of(stack, number) in ("FREE", "IN_PROGRESS")
    # Another person's token does not do either.
    _, other_token = signed_in(stack, "dylan")
    assert client.post(stack.portal + f"/tickets/{number}/actions/cancel", data={"csrf_token": other_token},
                       timeout=10).status_code == 403
    # With its token, the same form works: the refusals above were the token's doing.
    done = client.post(stack.portal + f"/tickets/{number}/actions/cancel", data={"csrf_token": token}, timeout=10,
                       allow_redirects=False)
    assert done.status_code == 303
    assert status_of(stack, number) == "CANCELLED"


def test_a_double_submit_files_one_ticket(stack: Stack):
    client, token = signed_in(stack, "emma")
    before = count_tickets(stack)
    fields = {"idem": "7b0e8f3c-double-submit", "subject": "Deux clics"}
    first, second = file_ticket(client, token, stack, **fields), file_ticket(client, token, stack, **fields)
    assert first == second and count_tickets(stack) == before + 1


def test_nothing_changes_on_a_get(stack: Stack):
    client, token = signed_in(stack, "fanny")
    number = file_ticket(client, token, stack)
    for path in ("approve-closure", "refuse-closure", "answer", "actions/cancel", "comment"):
        answer = client.get(stack.portal + f"/tickets/{number}/{path}", timeout=10)
        assert answer.status_code in (200, 404, 405)
    assert status_of(stack, number) in ("FREE", "IN_PROGRESS")


def test_the_session_cookie_and_the_headers(stack: Stack):
    form = requests.get(stack.portal + "/dev/sign-in", timeout=10)
    cookie = form.headers["Set-Cookie"]
    assert cookie.startswith("guichet_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # development mode over plain http (Secure outside it: tests/unit/portal)
    headers = form.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert "frame-ancestors 'self' https://ent.univ.example" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Cache-Control"] == "no-store"


def test_html_in_a_ticket_shows_as_text_and_never_runs(stack: Stack, browser: Browser):
    browser.sign_in("gaspard")
    browser.open("/tickets/new?category=impression")
    browser.fill("#subject", XSS_SUBJECT)
    browser.fill("#description", XSS_DESCRIPTION)
    browser.press("Créer le ticket")
    number = int(re.search(r"n°(\d+)", browser.text("h1")).group(1))
    browser.open(f"/tickets/{number}")
    assert browser.text("h1") == XSS_SUBJECT
    description = browser.find("#historique .description")
    assert description.text == XSS_DESCRIPTION
    assert not description.find_elements(By.CSS_SELECTOR, "script, img, b")
    assert browser.driver.execute_script("return typeof window.pwned") == "undefined"
    # A comment, the same.
    browser.button("Ajouter commentaire").click()
    browser.fill("#comment-body", '<img src=x onerror="window.pwned = 3">**vraiment**')
    browser.press("Ajouter le commentaire")
    assert browser.find(".history-CommentAdded strong").text == "vraiment"
    assert '<img src=x onerror="window.pwned = 3">' in browser.text(".history-CommentAdded")
    assert browser.driver.execute_script("return typeof window.pwned") == "undefined"
    browser.screenshots("ticket-with-html-typed")


def test_a_large_file_uploads_with_a_progress_bar(stack: Stack, browser: Browser, tmp_path):
    browser.sign_in("ines2")
    browser.open("/tickets/new?category=impression")
    browser.fill("#subject", "Journal de l'imprimante")
    browser.fill("#description", "Le journal est joint.")
    browser.press("Créer le ticket")
    number = int(re.search(r"n°(\d+)", browser.text("h1")).group(1))
    browser.open(f"/tickets/{number}")
    log = tmp_path / "journal-imprimante.txt"
    log.write_text("ligne du journal de l'imprimante\n" * 25_000, encoding="utf-8")  # ~850 KB: the XHR path
    browser.button("Ajouter commentaire").click()
    browser.fill("#comment-body", "Voici le journal complet.")
    browser.find("#comment-files").send_keys(str(log))
    browser.driver.execute_script("window.guichetMarker = 'same window'")
    browser.click_and_wait(browser.button("Ajouter le commentaire"))
    assert "Votre commentaire a été ajouté." in browser.text(".notice-success")
    assert "journal-imprimante.txt" in browser.text("#fichiers")
    assert browser.path == f"/tickets/{number}"
    # The page came through portal.js's XMLHttpRequest (with its progress bar), not a navigation.
    assert browser.driver.execute_script("return window.guichetMarker") == "same window"


@pytest.fixture(scope="module")
def no_js_browser(stack: Stack) -> Iterator[Browser]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="guichet-chromium-nojs-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=360,800"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    try:
        yield Browser(driver, stack.portal)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_the_main_flow_works_without_javascript(no_js_browser: Browser, stack: Stack):
    browser = no_js_browser
    browser.sign_in("hugo")
    browser.open("/tickets/new")
    browser.fill("#category-filter", "eduroam")
    browser.submit("form[action='/tickets/new'] button[type=submit]")  # "Appliquer": a plain GET
    assert "q=eduroam" in browser.path and "Apogée" not in browser.text("#category-tree")
    browser.click_and_wait(browser.driver.find_element(By.LINK_TEXT, "Wi-Fi (eduroam)"))
    browser.fill("#subject", "Sans JavaScript")
    browser.fill("#description", "Le formulaire marche sans script.")
    browser.press("Créer le ticket")
    number = int(re.search(r"n°(\d+)", browser.text("h1")).group(1))
    browser.open("/")
    browser.fill("#q", "script")
    browser.submit("form[role=search] button[type=submit]")
    assert f"n°{number}" in browser.text("#results")
    browser.open(f"/tickets/{number}")
    browser.button("Ajouter commentaire").click()  # <details>: no script needed
    browser.fill("#comment-body", "Un commentaire, toujours sans script.")
    browser.press("Ajouter le commentaire")
    assert "Votre commentaire a été ajouté." in browser.text(".notice-success")
    browser.open("/feed")
    assert browser.text("h1") == "Fil de nouveautés"
