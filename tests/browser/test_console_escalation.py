"""Referents and the central support in a real Chromium (seed 003, "Transmettre la
demande au support"), against every service running for real.

A student of the Lycée Henri Poincaré (0540001A) asks the ENT referents; the referent in
charge transmits the request to the support; the support member finds it in the
escalations list, answers publicly and returns it to the referent with a comment; the
referent and the requester both read the answer, the thread naming who wrote each
message (requester, referent, support).
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.browser.conftest import Browser, Stack, wait_for

BOB = ("bob", "Bob Durand")
NAMES = {"smartin": "Sophie Martin", "plefebvre": "Pierre Lefebvre", "vchevalier": "Valérie Chevalier",
         "olambert": "Olivier Lambert"}
ANSWER = "Le support a réinitialisé votre accès au cahier de textes : reconnectez-vous."


def row(stack: Stack, number: int) -> dict[str, Any] | None:
    with stack.pool.connection() as conn:
        return conn.execute("SELECT status, assignee_id, department_id, escalation FROM tickets.ticket_view"
                            " WHERE number = %s", (number,)).fetchone()


def open_ticket(browser: Browser, number: int) -> None:
    browser.open(f"/tickets/{number}")
    wait_for(lambda: f"n°{number}" in browser.text(".ticket-kicker"), what=f"ticket {number}'s page")


def test_a_referent_transmits_and_the_support_answers_and_returns(stack: Stack, browser: Browser):
    filed = stack.api("POST", "tickets", "/api/v1/tickets", "bob", name="Bob Durand", establishment="0540001A",
                      headers={"Idempotency-Key": str(uuid.uuid4())},
                      json={"category_id": "assistance-ent", "subject": "Le cahier de textes refuse ma connexion",
                            "description": "Erreur 403 depuis ce matin."})
    assert filed.status_code == 201, filed.text
    number = int(filed.json()["number"])
    referent = wait_for(lambda: (r := row(stack, number)) and r["assignee_id"], what="the referent assigned")
    assert referent in ("smartin", "plefebvre")

    # The referent: the ticket in "Mes tickets", and the link to the support.
    browser.sign_in(referent, NAMES[referent], establishment="0540001A")
    browser.open("/console")
    assert browser.path.startswith("/console/departments/referents-ent"), "one department: straight to its queue"
    browser.open("/console/departments/referents-ent:0540001A?tab=mine")
    wait_for(lambda: browser.find_all(f"tr[data-number='{number}']"), what="the ticket in Mes tickets")
    open_ticket(browser, number)
    browser.button("Transmettre la demande au support").click()
    browser.press("Transmettre au support")
    assert "Indiquez la raison." in browser.text("#escalate-reason-error"), "a reason is required"
    browser.fill("#escalate-reason", "Problème d'habilitation côté plateforme.")
    browser.press("Transmettre au support")
    assert "La demande est transmise au support." in browser.text(".notice-success")
    # Escalated, then released by the referent and assigned by the support's policy.
    escalated = wait_for(lambda: (r := row(stack, number)) and r["escalation"] == "escalated"
                         and r["assignee_id"] in ("vchevalier", "olambert") and r, timeout=30, what="the escalation")
    assert escalated["department_id"] == "support-ent"
    support = escalated["assignee_id"]
    assert support in ("vchevalier", "olambert")
    # The referents still see it, under "Transmis".
    browser.open("/console/departments/referents-ent:0540001A?tab=escalated")
    wait_for(lambda: browser.find_all(f"tr[data-number='{number}']"), what="the ticket under Transmis")
    browser.check_page("console-queue-transmis")

    # The support: the escalations list, a public answer, the return to the referent.
    browser.sign_in(support, NAMES[support], establishment="")
    browser.open("/console/escalations")
    entry = browser.text(f"tr.escalation-row[data-number='{number}']")
    assert "0540001A" in entry and NAMES[referent] in entry and "transmise" in entry
    browser.check_page("console-escalations")
    open_ticket(browser, number)
    assert "Transmettre la demande au support" not in browser.text("aside")
    browser.button("Ajouter commentaire").click()
    browser.fill("#comment-body", ANSWER)
    browser.press("Ajouter le commentaire")
    browser.button("Retourner au référent").click()
    browser.fill("#return-comment", "Accès rétabli, à confirmer avec l'élève.")
    browser.find("form[action$='/return-to-referent'] button[type=submit]").click()
    wait_for(lambda: "La demande est retournée au référent." in browser.text(), what="the return's message")
    assert browser.path == "/console/escalations", "the support no longer sees the ticket: back to its list"
    wait_for(lambda: row(stack, number)["escalation"] == "returned", what="the return")
    assert row(stack, number)["department_id"] == "referents-ent:0540001A"

    # The referent and the requester read the answer; the thread says who wrote it.
    for login, name, establishment in ((referent, NAMES[referent], "0540001A"), (*BOB, "0540001A")):
        browser.sign_in(login, name, establishment=establishment)
        open_ticket(browser, number)
        history = browser.text("#historique")
        assert ANSWER in history
        assert f"{NAMES[support]} a ajouté un commentaire. (support)" in history, history
        if login == referent:
            assert f"{NAMES[referent]} a demandé la transmission au support. (référent)" in history, history
            assert "Accès rétabli, à confirmer avec l'élève." in history
            browser.check_page("console-ticket-returned")
    feed = stack.api("GET", "notifier", "/api/v1/feed?limit=50", "bob")
    assert feed.status_code == 200 and f"{number}" in feed.text
