"""A student's whole journey in a real Chromium, against every service running for real
(``conftest.stack``) and a real SMTP server: file a ticket in two steps with an
attachment, find it, follow the emails' links, answer the manager's question, refuse
the closure (first without a justification), approve it with a rating; an invitee sees
the ticket, another student gets the 404 page. axe-core runs on every page, and every
page is photographed at 1280 px and 360 px (``tests/browser/artefacts/``).

The tests of this module run in order and share the ticket (``Journey``); the manager
acts through the API, as the managers' console is not built yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.browser.conftest import Browser, Stack, wait_for

ALICE = ("alice", "Alice Martin")
INES = ("ines", "Inès Petit")
BOB = ("bob", "Bob Durand")
REFERENTS = {"smartin", "plefebvre"}  # referents-ent of 0540001A (deploy/config/example.yaml)


@dataclass
class Journey:
    number: int | None = None
    ticket_id: str | None = None
    assignee: str | None = None
    assignee_name: str | None = None


@pytest.fixture(scope="module")
def journey() -> Journey:
    return Journey()


def link_in(message: Any, page: str) -> str:
    """The first link of the email's text part that ends with ``page``."""
    text = message.get_body(("plain",)).get_content()
    for url in re.findall(r"https?://\S+", text):
        if url.rstrip(".>)").endswith(page):
            return url.rstrip(".>)")
    raise AssertionError(f"no link ending with {page!r} in:\n{text}")


def mail(stack: Stack, address: str, subject_part: str, timeout: float = 30) -> Any:
    def found() -> Any:
        for message in reversed(stack.mails_to(address)):
            if subject_part.casefold() in str(message["Subject"]).casefold():
                return message
        return None

    return wait_for(found, timeout=timeout, what=f"an email to {address} about {subject_part!r}")


def ticket_json(stack: Stack, journey: Journey) -> dict[str, Any]:
    response = stack.api("GET", "tickets", f"/api/v1/tickets/{journey.ticket_id}", "root", admin=True)
    assert response.status_code == 200, response.text
    return response.json()


def manager_act(stack: Stack, journey: Journey, action: str, body: dict[str, Any]) -> dict[str, Any]:
    response = stack.api("POST", "tickets", f"/api/v1/tickets/{journey.ticket_id}/actions/{action}",
                         journey.assignee, name=journey.assignee_name, json=body, establishment="0540001A")
    assert response.status_code == 200, response.text
    return response.json()


def test_the_sign_in_page_and_an_empty_home(browser: Browser):
    browser.sign_out()
    browser.open("/")
    assert browser.path.startswith("/dev/sign-in"), "a page needing a person sends to the sign-in"
    browser.check_page("dev-sign-in")
    browser.sign_in(*ALICE)
    assert browser.path == "/"
    assert "Aucune demande pour le moment." in browser.text()
    browser.check_page("home-empty")


def test_a_student_files_a_ticket_in_two_steps_with_an_attachment(browser: Browser, stack: Stack,
                                                                   journey: Journey, tmp_path):
    browser.open("/")
    browser.click_and_wait(browser.driver.find_element(By.LINK_TEXT, "Créer un ticket"))
    assert "étape 1/2" in browser.driver.title
    browser.check_page("new-ticket-step-1")
    # The filter ignores accents, case and punctuation: "wifi" finds "Wi-Fi (eduroam)".
    browser.find("#category-filter").send_keys("wifi")
    wait_for(lambda: "Apogée" not in browser.text("#category-tree"), what="the filtered tree")
    assert "Wi-Fi (eduroam)" in browser.text("#category-tree")
    browser.screenshots("new-ticket-step-1-filtered")
    browser.click_and_wait(browser.driver.find_element(By.LINK_TEXT, "Wi-Fi (eduroam)"))

    assert "étape 2/2" in browser.driver.title
    assert "Éléments de FAQs en liaison avec cette catégorie" in browser.text()
    browser.check_page("new-ticket-step-2")
    # Nothing typed: the errors show next to the fields, nothing is filed.
    browser.press("Créer le ticket")
    assert "Indiquez le sujet de votre demande." in browser.text("#subject-error")
    assert "Décrivez votre problème." in browser.text("#description-error")
    browser.check_page("new-ticket-step-2-errors")

    screenshot = tmp_path / "capture-eduroam.png"
    screenshot.write_bytes(browser.driver.get_screenshot_as_png())
    browser.fill("#subject", "Wi-Fi eduroam refuse mon mot de passe")
    browser.fill("#description", "Depuis lundi, **eduroam** refuse ma connexion en bibliothèque.\n"
                                 "- sur mon portable\n- sur mon téléphone")
    browser.fill("#phone", "03 83 00 00 00")
    browser.find("#files").send_keys(str(screenshot))
    browser.press("Transférer")
    assert "Fichiers attachés (1)" in browser.text()
    assert "capture-eduroam.png" in browser.text(".files")
    browser.press("Créer le ticket")

    heading = browser.text("h1")
    number = int(re.search(r"n°(\d+)", heading).group(1))
    assert heading == f"Votre demande n°{number} est créée"
    assert "capture-eduroam.png" in browser.text()
    assert "Wi-Fi (eduroam)" in browser.text()
    browser.check_page("ticket-created")
    journey.number = number
    with stack.pool.connection() as conn:
        rows = conn.execute("SELECT id FROM tickets.ticket_view WHERE number = %s", (number,)).fetchall()
    assert len(rows) == 1, "one ticket filed"
    journey.ticket_id = str(rows[0]["id"])


def test_it_shows_in_my_requests_and_by_search(browser: Browser, journey: Journey):
    browser.open("/")
    assert f"n°{journey.number}" in browser.text("#results")
    browser.check_page("home-with-ticket")
    browser.fill("#q", "bibliotheque")  # French full text, accents ignored
    browser.find("#q").submit()
    wait_for(lambda: "q=bibliotheque" in browser.path, what="the search")
    wait_for(lambda: f"n°{journey.number}" in browser.text("#results"), what="the search result")
    browser.fill("#q", "imprimante")
    browser.find("#q").submit()
    wait_for(lambda: "Aucune demande ne correspond" in browser.text("#results"), what="no result")
    browser.open("/?scope=invited")
    assert "Aucune demande" in browser.text("#results")


def test_the_acknowledgement_email_links_to_the_ticket(browser: Browser, stack: Stack, journey: Journey):
    acknowledgement = mail(stack, "alice@univ.example", f"n°{journey.number}")
    browser.open(link_in(acknowledgement, f"/tickets/{journey.ticket_id}").removeprefix(stack.portal))
    assert browser.text("h1") == "Wi-Fi eduroam refuse mon mot de passe"
    assert f"TICKET n°{journey.number}" in browser.text(".ticket-kicker")
    assert "Alice Martin a créé la demande." in browser.text("#historique")
    assert "capture-eduroam.png" in browser.text("#fichiers")
    # The description's formatting, rendered safely.
    assert browser.find("#historique .description strong").text == "eduroam"
    assert len(browser.find_all("#historique .description li")) == 2
    # Routing sent it to the establishment's ENT referents, one of whom took it.
    ticket = wait_for(lambda: (t := ticket_json(stack, journey))["assignee"] and t, what="routing to assign")
    journey.assignee, journey.assignee_name = ticket["assignee"]["id"], ticket["assignee"]["name"]
    assert journey.assignee in REFERENTS
    browser.driver.refresh()
    browser.check_page("ticket")


def test_the_attachment_downloads_through_the_portal(browser: Browser, stack: Stack, journey: Journey):
    import requests

    link = browser.find("#fichiers a").get_attribute("href")
    cookies = {c["name"]: c["value"] for c in browser.driver.get_cookies()}
    response = requests.get(link, cookies=cookies, timeout=10)
    assert response.status_code == 200
    assert response.content.startswith(b"\x89PNG")
    assert "capture-eduroam.png" in response.headers["Content-Disposition"]
    assert requests.get(link, timeout=10, allow_redirects=False).status_code == 303  # no session: sign in


def test_the_student_invites_a_colleague(browser: Browser, stack: Stack, journey: Journey):
    browser.sign_in(*INES)  # ines signs in once, so the directory knows her
    browser.sign_in(*ALICE, next_path=f"/tickets/{journey.number}")
    browser.button("Inviter un utilisateur").click()
    browser.fill("#invite-user", "ines")
    browser.submit("form[action$='/actions/invite'] button[type=submit]")
    assert "ines est invité(e) sur la demande." in browser.text(".notice-success")
    assert "Inès Petit" in browser.text("#invites")
    browser.check_page("ticket-invited")


def test_the_manager_asks_for_information_and_the_student_answers_from_the_email(
        browser: Browser, stack: Stack, journey: Journey):
    manager_act(stack, journey, "request-information", {"question": "Quel système utilise votre portable ?"})
    question = mail(stack, "alice@univ.example", "information")
    browser.open(link_in(question, "/answer").removeprefix(stack.portal))
    assert "Quel système utilise votre portable ?" in browser.text()
    browser.check_page("answer")
    browser.press("Envoyer ma réponse")  # empty: refused, nothing sent
    assert "Écrivez votre message." in browser.text("#answer-body-error")
    assert ticket_json(stack, journey)["status"] == "WAITING_FOR_INFO"
    browser.fill("#answer-body", "Windows 11, et Android 14 sur le téléphone.")
    browser.press("Envoyer ma réponse")
    assert "Votre réponse a été transmise au gestionnaire." in browser.text(".notice-success")
    assert ticket_json(stack, journey)["status"] == "IN_PROGRESS"
    assert "a répondu à la demande d'information" in browser.text("#historique")


def test_refusing_the_closure_needs_a_justification(browser: Browser, stack: Stack, journey: Journey):
    manager_act(stack, journey, "request-closure", {"resolution": "Profil eduroam réinstallé à distance."})
    closure = mail(stack, "alice@univ.example", "clôture")
    refuse = link_in(closure, "/refuse-closure").removeprefix(stack.portal)
    link_in(closure, "/approve-closure")
    # Mail scanners open links: a GET changes nothing.
    browser.open(refuse)
    browser.open(refuse)
    assert ticket_json(stack, journey)["status"] == "CLOSURE_REQUESTED"
    assert "Profil eduroam réinstallé à distance." in browser.text()
    browser.check_page("refuse-closure")
    browser.submit("form[action$='/refuse-closure'] button[type=submit]")
    assert "Expliquez pourquoi" in browser.text("#justification-error")
    assert browser.find("#justification").get_attribute("aria-invalid") == "true"
    assert ticket_json(stack, journey)["status"] == "CLOSURE_REQUESTED", "nothing changed"
    browser.check_page("refuse-closure-error")
    browser.fill("#justification", "Toujours refusé ce matin en salle B12.")
    browser.submit("form[action$='/refuse-closure'] button[type=submit]")
    assert "La clôture est refusée" in browser.text(".notice-success")
    ticket = ticket_json(stack, journey)
    assert ticket["status"] == "IN_PROGRESS"
    assert "Alice Martin a refusé la clôture." in browser.text("#historique")


def test_approving_the_closure_with_a_rating(browser: Browser, stack: Stack, journey: Journey):
    before = len(stack.mails_to("alice@univ.example"))
    manager_act(stack, journey, "request-closure", {"resolution": "Certificat du serveur RADIUS renouvelé."})
    wait_for(lambda: len(stack.mails_to("alice@univ.example")) > before, what="the second closure email")
    closure = mail(stack, "alice@univ.example", "clôture")
    browser.open(link_in(closure, "/approve-closure").removeprefix(stack.portal))
    assert ticket_json(stack, journey)["status"] == "CLOSURE_REQUESTED"
    assert "Certificat du serveur RADIUS renouvelé." in browser.text()
    browser.check_page("approve-closure")
    browser.find("label[for=rating-4]").click()
    browser.fill("#feedback", "Merci pour la rapidité !")
    browser.submit("form[action$='/approve-closure'] button[type=submit]")
    assert "la clôture de la demande est approuvée" in browser.text(".notice-success")
    ticket = ticket_json(stack, journey)
    assert (ticket["status"], ticket["resolution"], ticket["rating"]) == ("CLOSED", "approved", 4)
    assert "Clôturé" in browser.text(".ticket-facts")
    browser.check_page("ticket-closed")


def test_the_invitee_sees_the_ticket(browser: Browser, journey: Journey):
    browser.sign_in(*INES)
    browser.open("/?scope=invited")
    assert f"n°{journey.number}" in browser.text("#results")
    browser.open(f"/tickets/{journey.number}")
    assert browser.text("h1") == "Wi-Fi eduroam refuse mon mot de passe"
    assert "Ré-ouvrir" not in browser.text(".ticket-actions"), "only what the service allows her"


def test_another_student_gets_the_404_page(browser: Browser, journey: Journey):
    browser.sign_in(*BOB)
    browser.open(f"/tickets/{journey.number}")
    assert "Page introuvable" in browser.text("h1")
    assert "Wi-Fi eduroam" not in browser.driver.page_source
    browser.check_page("ticket-404")
    browser.open(f"/tickets/{journey.ticket_id}/approve-closure")
    assert "Page introuvable" in browser.text("h1")


def test_feed_and_preferences(browser: Browser, stack: Stack, journey: Journey):
    browser.sign_in(*ALICE)
    browser.open("/feed")
    entries = browser.find_all(".feed-entry.unread")
    assert entries, "alice's feed has unread entries"
    badge = int(browser.find("#unread-count").text.split()[0])
    browser.check_page("feed")
    entries[0].find_element(By.CSS_SELECTOR, "button").click()  # htmx: the list is swapped in place
    wait_for(lambda: len(browser.find_all(".feed-entry.unread")) == len(entries) - 1, what="one entry read")
    browser.press("Tout marquer comme lu")
    wait_for(lambda: not browser.find_all(".feed-entry.unread"), what="every entry read")
    assert badge >= 1 and not browser.find_all("#unread-count")
    browser.open("/preferences")
    browser.check_page("preferences")
    browser.find("label[for=lang-en]").click()
    browser.submit("form[action='/preferences'] button[type=submit]")
    assert browser.driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert "Your preferences are saved." in browser.text(".notice-success")
    browser.open("/")
    assert browser.text("h1") == "My requests"
    browser.screenshots("home-english")
    browser.find("label[for=lang-fr]") if browser.path == "/preferences" else browser.open("/preferences")
    browser.find("label[for=lang-fr]").click()
    browser.submit("form[action='/preferences'] button[type=submit]")
    assert browser.driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "fr"
