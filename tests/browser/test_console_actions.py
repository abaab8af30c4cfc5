"""The other manager actions of the ticket page in a real Chromium, against every
service running for real: "Prendre en charge et demander info", "Prendre en charge et
clore", assign (the department's managers with their availability and open tickets),
release, postpone with a date then resume, move with the category picker, refuse with a
reason, remove an attachment with its comment; and the queue's search and sorts.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

from tests.browser.conftest import Browser, Stack, wait_for

MARC = ("mleroy", "Marc Leroy")


def file_ticket(stack: Stack, subject: str, priority: int = 3, attachment: str | None = None) -> int:
    body: dict[str, Any] = {"category_id": "autre", "subject": subject, "description": "Détails.", "priority": priority}
    if attachment:
        body["attachment_ids"] = [attachment]
    response = stack.api("POST", "tickets", "/api/v1/tickets", "alice", name="Alice Martin",
                         headers={"Idempotency-Key": str(uuid.uuid4())}, json=body)
    assert response.status_code == 201, response.text
    number = int(response.json()["number"])
    wait_for(lambda: (r := row(stack, number)) and r["department_id"] == "triage", what="the routing")
    return number


def row(stack: Stack, number: int) -> dict[str, Any] | None:
    with stack.pool.connection() as conn:
        return conn.execute("SELECT status, assignee_id, category_id, department_id, state FROM tickets.ticket_view"
                            " WHERE number = %s", (number,)).fetchone()


def open_ticket(browser: Browser, number: int) -> None:
    browser.open(f"/tickets/{number}")
    wait_for(lambda: f"n°{number}" in browser.text(".ticket-kicker"), what=f"ticket {number}'s page")


def test_take_and_ask_then_take_and_close(stack: Stack, browser: Browser):
    first = file_ticket(stack, "Première demande")
    second = file_ticket(stack, "Deuxième demande")
    browser.sign_in(*MARC)
    open_ticket(browser, first)
    browser.button("Prendre en charge et demander info").click()
    browser.press("Prendre en charge et envoyer la question")
    assert "Écrivez votre question au demandeur." in browser.text("#take-ask-question-error")
    assert row(stack, first)["assignee_id"] is None, "nothing taken while the question is missing"
    browser.fill("#take-ask-question", "Depuis quand ?")
    browser.press("Prendre en charge et envoyer la question")
    assert "posé votre question" in browser.text(".notice-success")
    assert (row(stack, first)["status"], row(stack, first)["assignee_id"]) == ("WAITING_FOR_INFO", "mleroy")
    open_ticket(browser, second)
    browser.button("Prendre en charge et clore").click()
    browser.fill("#take-close-resolution", "Déjà réglé par la mise à jour de ce matin.")
    browser.press("Prendre en charge et proposer la clôture")
    assert (row(stack, second)["status"], row(stack, second)["assignee_id"]) == ("CLOSURE_REQUESTED", "mleroy")


def test_assign_release_postpone_resume(stack: Stack, browser: Browser):
    number = file_ticket(stack, "Demande à attribuer")
    browser.sign_in(*MARC)
    open_ticket(browser, number)
    browser.button("Attribuer à un gestionnaire").click()
    choices = browser.text("form[action$='/assign'] fieldset")
    assert "Marc Leroy" in choices and "disponible" in choices and "demande" in choices
    browser.check_page("console-ticket-assign")
    browser.find("form[action$='/assign'] input[value='mleroy']").click()
    browser.press("Attribuer")
    assert row(stack, number)["assignee_id"] == "mleroy"
    browser.press("Libérer la demande")
    assert (row(stack, number)["status"], row(stack, number)["assignee_id"]) == ("FREE", None)
    browser.press("Prendre en charge")
    browser.button("Reporter").click()
    browser.press("Reporter la demande")
    assert "Indiquez la raison." in browser.text("#postpone-reason-error")
    recall = date.today() + timedelta(days=10)
    # The date picker's value (its typed form depends on the browser's locale).
    browser.driver.execute_script("arguments[0].value = arguments[1]", browser.find("#postpone-until"),
                                  recall.isoformat())
    browser.fill("#postpone-reason", "En attente du prestataire.")
    browser.press("Reporter la demande")
    assert row(stack, number)["status"] == "POSTPONED"
    assert recall.isoformat() in str(row(stack, number)["state"].get("postponed_until"))
    browser.open("/console/departments/triage?tab=postponed")
    wait_for(lambda: browser.find_all(f"tr[data-number='{number}']"), what="the ticket under Reporté")
    open_ticket(browser, number)
    browser.press("Reprendre le traitement")
    assert row(stack, number)["status"] == "IN_PROGRESS"


def test_move_refuse_and_remove_an_attachment(stack: Stack, browser: Browser, tmp_path):
    upload = stack.api("POST", "attachments", "/api/v1/attachments", "alice",
                       files={"file": ("notes.txt", b"quelques notes\n", "text/plain")})
    assert upload.status_code == 201, upload.text
    number = file_ticket(stack, "Demande avec un fichier", attachment=upload.json()["id"])
    browser.sign_in(*MARC)
    open_ticket(browser, number)
    browser.button("Retirer un fichier").click()
    browser.find(f"#remove-file option[value='{upload.json()['id']}']").click()
    browser.press("Retirer le fichier")
    assert "Expliquez pourquoi." in browser.text("#remove-comment-error")
    browser.fill("#remove-comment", "Fichier envoyé par erreur.")
    browser.press("Retirer le fichier")
    assert "Le fichier est retiré." in browser.text(".notice-success")
    assert "notes.txt" not in browser.text("#fichiers")
    other = file_ticket(stack, "Demande à refuser")
    open_ticket(browser, other)
    browser.button("Refuser la demande").click()
    browser.fill("#refuse-reason", "Hors du périmètre de l'assistance.")
    browser.find("form[action$='/refuse'] button[type=submit]").click()
    wait_for(lambda: row(stack, other)["status"] == "REFUSED", what="the refusal")
    open_ticket(browser, number)
    browser.button("Déplacer vers une autre catégorie").click()
    browser.find("#move-category option[value='impression']").click()
    browser.press("Déplacer")
    wait_for(lambda: row(stack, number)["category_id"] == "impression", what="the move")


def test_the_queue_searches_and_sorts(stack: Stack, browser: Browser):
    low = file_ticket(stack, "Clavier bloqué", priority=1)
    high = file_ticket(stack, "Clavier cassé", priority=5)
    browser.sign_in(*MARC, next_path="/console/departments/triage?tab=free")
    browser.fill("#q", "clavier")
    browser.find("#sort option[value='priority']").click()
    browser.press("Appliquer")
    wait_for(lambda: len(browser.find_all("tr.queue-row")) == 2, what="the two keyboard tickets")
    numbers = [int(r.get_attribute("data-number")) for r in browser.find_all("tr.queue-row")]
    assert numbers == [high, low]
    browser.find("#sort option[value='age']").click()
    browser.press("Appliquer")
    wait_for(lambda: [int(r.get_attribute("data-number")) for r in browser.find_all("tr.queue-row")] == [low, high],
             what="the oldest first")
    browser.fill("#q", "introuvablexyz")
    browser.press("Appliquer")
    assert "Aucune demande ne correspond" in browser.text("#results")
