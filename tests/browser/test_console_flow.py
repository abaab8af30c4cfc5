"""The managers' console in a real Chromium, against every service running for real
(``conftest.stack``) and a real SMTP server.

A manager (Marc Leroy, of the "Tri des demandes" team, whose policy leaves tickets
"Libre") watches a new ticket arrive in "Libre" without reloading the page (htmx
polling), takes it, asks for information; the student answers in the portal; the ticket
comes back with the marker; an internal comment stays out of the requester's and the
invitee's pages, emails and feed; the manager requests closure; the student approves.
Each step is checked on both screens. Then two managers take the same free ticket at
once: one wins, the other reads who did, and the requester gets one "prise en charge"
email; a take-over asks for confirmation first.

The tests of this module run in order and share the ticket (``Flow``).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By

from tests.browser.conftest import Browser, Stack, portal_client, wait_for

ALICE = ("alice", "Alice Martin")
INES = ("ines", "Inès Petit")
BOB = ("bob", "Bob Durand")
MARC = ("mleroy", "Marc Leroy")
CAMILLE = ("cfaure", "Camille Faure")
SECRET_NOTE = "Note interne : mot de passe du compte de service zx81"


@dataclass
class Flow:
    number: int | None = None


@pytest.fixture(scope="module")
def flow() -> Flow:
    return Flow()


def file_ticket(stack: Stack, login: str, name: str, subject: str) -> int:
    """A ticket in "Autre demande" (the triage team: nobody is assigned automatically)."""
    response = stack.api("POST", "tickets", "/api/v1/tickets", login, name=name,
                         headers={"Idempotency-Key": str(uuid.uuid4())},
                         json={"category_id": "autre", "subject": subject, "description": "Rien ne marche."})
    assert response.status_code == 201, response.text
    return int(response.json()["number"])


def ticket_row(stack: Stack, number: int) -> dict[str, Any]:
    with stack.pool.connection() as conn:
        return conn.execute("SELECT status, assignee_id, department_id FROM tickets.ticket_view WHERE number = %s",
                            (number,)).fetchone()


def routed(stack: Stack, number: int) -> bool:
    row = ticket_row(stack, number)
    return row is not None and row["department_id"] == "triage"


def open_ticket(browser: Browser, number: int) -> None:
    browser.open(f"/tickets/{number}")
    wait_for(lambda: f"n°{number}" in browser.text(".ticket-kicker"), what=f"ticket {number}'s page")


def open_action(browser: Browser, summary: str) -> None:
    browser.button(summary).click()


def test_a_new_ticket_appears_in_libre_without_a_reload(stack: Stack, browser: Browser, flow: Flow):
    browser.sign_in(*MARC)
    link = browser.find("nav.main-nav a[href='/console']")
    assert link.text == "Console"
    browser.click_and_wait(link)
    assert browser.path == "/console"
    browser.check_page("console-home")
    browser.click_and_wait(browser.driver.find_element(By.LINK_TEXT, "Tri des demandes"))
    assert browser.path == "/console/departments/triage"
    browser.driver.execute_script("window.sameDocument = 'yes'")
    flow.number = file_ticket(stack, *ALICE, "Mon emploi du temps ne s'affiche plus")
    row_css = f"tr[data-number='{flow.number}']"
    wait_for(lambda: browser.find_all(row_css), timeout=30, what="the new ticket in the queue")
    assert browser.driver.execute_script("return window.sameDocument") == "yes", "the page was reloaded"
    row = browser.text(row_css)
    for expected in (f"n°{flow.number}", "Mon emploi du temps ne s'affiche plus", "Alice Martin", "0540001A",
                     "Libre", "personne", "jour"):
        assert expected in row, f"{expected!r} not in the row: {row}"
    assert "(1)" in browser.text("a[data-tab='free']")
    browser.check_page("console-queue-libre")


def test_the_manager_takes_it_and_asks_for_information(stack: Stack, browser: Browser, flow: Flow):
    # The row links to the ticket (followed by address: the polling swaps the rows every second).
    href = browser.driver.execute_script(
        f"return document.querySelector(\"tr[data-number='{flow.number}'] a\").getAttribute('href')")
    assert href == f"/tickets/{flow.number}"
    open_ticket(browser, flow.number)
    browser.check_page("console-ticket-free")
    browser.press("Prendre en charge")
    assert "Vous avez pris en charge la demande." in browser.text(".notice-success")
    assert ticket_row(stack, flow.number)["assignee_id"] == "mleroy"
    # An empty question is refused next to its field and changes nothing.
    open_action(browser, "Demander un complément d'information")
    browser.submit("form[action$='/request-information'] button[type=submit]")
    assert "Écrivez votre question au demandeur." in browser.text("#ask-question-error")
    assert ticket_row(stack, flow.number)["status"] == "IN_PROGRESS"
    browser.fill("#ask-question", "Quel navigateur utilisez-vous ?")
    browser.submit("form[action$='/request-information'] button[type=submit]")
    assert "La question est envoyée au demandeur." in browser.text(".notice-success")
    assert ticket_row(stack, flow.number)["status"] == "WAITING_FOR_INFO"
    # The student's screen: the question, and who handles the ticket.
    browser.sign_in(*ALICE)
    open_ticket(browser, flow.number)
    assert "Quel navigateur utilisez-vous ?" in browser.text(".notice-warning")
    assert not browser.find_all(".manager-actions"), "a requester sees no manager action"
    browser.open("/")
    assert "suivie par Marc Leroy" in browser.text("#results")


def test_the_student_answers_and_the_ticket_comes_back_with_the_marker(stack: Stack, browser: Browser, flow: Flow):
    browser.open(f"/tickets/{flow.number}/answer")
    browser.fill("#answer-body", "Firefox 128, sous Windows.")
    browser.press("Envoyer ma réponse")
    assert ticket_row(stack, flow.number)["status"] == "IN_PROGRESS"
    browser.sign_in(*MARC, next_path="/console/departments/triage?tab=mine")
    row_css = f"tr[data-number='{flow.number}']"
    wait_for(lambda: browser.find_all(row_css), what="the ticket in Mes tickets")
    assert "waits" in browser.find(row_css).get_attribute("class")
    assert "À traiter" in browser.text(row_css)
    assert "En cours" in browser.text(row_css)
    browser.check_page("console-queue-mine")
    # In "Libre" it is no more.
    browser.open("/console/departments/triage?tab=free")
    assert not browser.find_all(row_css)


def test_an_internal_comment_never_reaches_the_requester_nor_an_invitee(stack: Stack, browser: Browser, flow: Flow):
    browser.sign_in(*INES)  # ines signs in once, so the directory knows her
    browser.sign_in(*MARC)
    open_ticket(browser, flow.number)
    open_action(browser, "Inviter un utilisateur")
    browser.fill("#invite-user", "ines")
    browser.press("Inviter")
    assert "ines est invité(e) sur la demande." in browser.text(".notice-success")
    open_action(browser, "Ajouter un commentaire interne")
    browser.fill("#internal-body", SECRET_NOTE)
    browser.press("Ajouter le commentaire interne")
    entry = browser.find("li.history-entry.internal")
    assert "INTERNE" in entry.text and SECRET_NOTE in entry.text
    browser.check_page("console-ticket-internal")
    # A public comment after it, so the requester and the invitee do get an email.
    open_action(browser, "Ajouter commentaire")
    browser.fill("#comment-body", "Merci, je regarde.")
    browser.press("Ajouter le commentaire")
    for login, name in (ALICE, INES):
        address = f"{login}@univ.example"
        wait_for(lambda address=address: any("Merci, je regarde." in m.get_body(("plain",)).get_content()
                                             for m in stack.mails_to(address)), what=f"the comment's email to {login}")
        assert not any(SECRET_NOTE in m.as_string() for m in stack.mails_to(address))
        browser.sign_in(login, name)
        open_ticket(browser, flow.number)
        page = browser.text("main")
        assert "Merci, je regarde." in page
        assert SECRET_NOTE not in page and "commentaire interne" not in page
        assert SECRET_NOTE not in browser.driver.page_source
        browser.open("/feed")
        assert SECRET_NOTE not in browser.driver.page_source
        feed = stack.api("GET", "notifier", "/api/v1/feed?limit=100", login)
        assert feed.status_code == 200 and SECRET_NOTE not in feed.text


def test_the_manager_requests_closure_and_the_student_approves(stack: Stack, browser: Browser, flow: Flow):
    browser.sign_in(*MARC)
    open_ticket(browser, flow.number)
    open_action(browser, "Demander la clôture")
    browser.fill("#closure-resolution", "Videz le cache de Firefox : l'emploi du temps revient.")
    browser.press("Proposer la clôture au demandeur")
    assert ticket_row(stack, flow.number)["status"] == "CLOSURE_REQUESTED"
    browser.open("/console/departments/triage?tab=closure")
    wait_for(lambda: browser.find_all(f"tr[data-number='{flow.number}']"), what="the ticket in Clôture demandée")
    browser.sign_in(*ALICE)
    open_ticket(browser, flow.number)
    assert "Videz le cache de Firefox" in browser.text(".notice-info")
    browser.open(f"/tickets/{flow.number}/approve-closure")
    browser.press("Approuver la clôture")
    assert ticket_row(stack, flow.number)["status"] == "CLOSED"
    browser.sign_in(*MARC)
    open_ticket(browser, flow.number)
    assert "Clôturé" in browser.text(".ticket-head, main")
    assert not browser.find_all(".manager-actions button[data-action='take']")


def _with_camille_in_triage(stack: Stack) -> None:
    """Camille Faure joins the triage team (an admin's change through routing's API)."""
    current = stack.api("GET", "routing", "/api/v1/departments/triage", "root", admin=True).json()
    managers = [{k: v for k, v in m.items() if v is not None} for m in current["managers"]]
    if not any(m["user"] == "cfaure" for m in managers):
        managers.append({"user": "cfaure", "name": "Camille Faure", "email": "cfaure@univ.example"})
    body = {k: current[k] for k in ("label", "per_establishment", "assignment_policy", "escalation_enabled")}
    body["managers"] = managers
    answer = stack.api("PUT", "routing", "/api/v1/departments/triage", "root", admin=True, json=body,
                       headers={"Idempotency-Key": str(uuid.uuid4())})
    assert answer.status_code == 200, answer.text

    def copied() -> bool:
        with stack.pool.connection() as conn:
            return conn.execute("SELECT 1 FROM tickets.department_managers WHERE department_id = 'triage'"
                                " AND user_id = 'cfaure'").fetchone() is not None

    wait_for(copied, timeout=30, what="the tickets service's copy of the triage team")


def test_two_managers_take_the_same_ticket_at_once(stack: Stack):
    _with_camille_in_triage(stack)
    number = file_ticket(stack, *BOB, "Mon imprimante imprime des pages blanches")
    wait_for(lambda: routed(stack, number), what="the ticket routed to triage")
    clients = [portal_client(stack, *MARC), portal_client(stack, *CAMILLE)]
    start = threading.Barrier(2)
    answers: list[requests.Response] = []

    def take(client: requests.Session, token: str) -> None:
        start.wait()
        answers.append(client.post(f"{stack.portal}/console/tickets/{number}/take", timeout=20,
                                   data={"csrf_token": token, "idem": str(uuid.uuid4())}, allow_redirects=False))

    threads = [threading.Thread(target=take, args=pair) for pair in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [303, 409], [(a.status_code, a.text[:300]) for a in answers]
    lost = next(a for a in answers if a.status_code == 409)
    winner = ticket_row(stack, number)["assignee_id"]
    winner_name = dict([MARC, CAMILLE])[winner]
    assert f"{winner_name} a pris en charge cette demande juste avant vous" in lost.text

    def taken_mails() -> list[Any]:
        return [m for m in stack.mails_to("bob@univ.example") if "prise en charge" in str(m["Subject"]).casefold()
                and f"n°{number}" in str(m["Subject"])]

    wait_for(taken_mails, timeout=30, what="the requester's 'prise en charge' email")
    time.sleep(2)  # a second email would have come by now
    assert len(taken_mails()) == 1


def test_a_stale_take_says_who_was_first_and_a_take_over_asks_first(stack: Stack, browser: Browser):
    number = file_ticket(stack, *BOB, "Le scanner ne répond plus")
    wait_for(lambda: routed(stack, number), what="the ticket routed to triage")
    browser.sign_in(*MARC)
    open_ticket(browser, number)
    camille, token = portal_client(stack, *CAMILLE)
    done = camille.post(f"{stack.portal}/console/tickets/{number}/take", data={"csrf_token": token}, timeout=20,
                        allow_redirects=False)
    assert done.status_code == 303
    browser.press("Prendre en charge")
    assert "Camille Faure a pris en charge cette demande juste avant vous : rien n'a été modifié." in browser.text()
    assert ticket_row(stack, number)["assignee_id"] == "cfaure"
    open_ticket(browser, number)
    browser.click_and_wait(browser.button("Reprendre la demande"))
    assert browser.path == f"/console/tickets/{number}/take-over"
    assert ticket_row(stack, number)["assignee_id"] == "cfaure", "nothing changes before the confirmation"
    browser.check_page("console-take-over")
    browser.press("Confirmer : je reprends la demande")
    assert "Vous avez repris la demande." in browser.text(".notice-success")
    assert ticket_row(stack, number)["assignee_id"] == "mleroy"
    wait_for(lambda: [m for m in stack.mails_to("cfaure@univ.example") if "reprise" in str(m["Subject"]).casefold()],
             timeout=30, what="the previous assignee's email")


def test_the_availability_of_a_manager(stack: Stack, browser: Browser):
    browser.sign_in(*MARC, next_path="/console/departments/triage")
    assert "Vous êtes disponible dans ce service." in browser.text(".availability")
    browser.press("Me rendre indisponible")
    assert "Vous êtes indisponible dans ce service." in browser.text(".availability")
    team = stack.api("GET", "routing", "/api/v1/departments/triage", "root", admin=True).json()
    assert [m["available"] for m in team["managers"] if m["user"] == "mleroy"] == [False]
    browser.press("Me rendre disponible")
    team = stack.api("GET", "routing", "/api/v1/departments/triage", "root", admin=True).json()
    assert [m["available"] for m in team["managers"] if m["user"] == "mleroy"] == [True]


def test_a_requester_has_no_console(stack: Stack, browser: Browser):
    browser.sign_in(*ALICE)
    assert not browser.find_all("nav.main-nav a[href='/console']")
    browser.open("/console")
    assert "La console est réservée aux gestionnaires d'un service." in browser.text()
    browser.open("/console/departments/triage")
    assert "gestionnaires" in browser.text()
