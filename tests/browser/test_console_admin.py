"""The console's administration in a real Chromium, against every service running for
real: an admin adds a category with an FAQ entry; a student sees it in step 1/2 and its
FAQ in step 2/2 at once (no restart); a category an open ticket uses cannot be deleted
(routing's 409, its message shown, nothing changed); a rename shows to the student.
"""

from __future__ import annotations

import uuid

from selenium.webdriver.common.by import By

from tests.browser.conftest import Browser, Stack

ROOT = ("root", "Rose Admin")
ALICE = ("alice", "Alice Martin")
QUESTION = "Comment rejoindre une classe virtuelle ?"


def category_exists(stack: Stack, category_id: str) -> bool:
    answer = stack.api("GET", "routing", f"/api/v1/categories/{category_id}", "root", admin=True)
    return answer.status_code == 200


def test_an_admin_adds_a_category_and_a_student_sees_it_and_its_faq(stack: Stack, browser: Browser):
    browser.sign_in(*ROOT, admin=True)
    browser.click_and_wait(browser.find("nav.main-nav a[href='/console']"))
    browser.click_and_wait(browser.driver.find_element(By.LINK_TEXT, "Les catégories et leur FAQ"))
    assert browser.path == "/console/admin/categories"
    browser.check_page("console-admin-categories")
    # Nothing filled: the errors show next to their fields, nothing is added.
    browser.press("Ajouter la catégorie")
    assert "lettres, chiffres" in browser.text("#cat-id-error").casefold()
    assert "Indiquez le libellé en français." in browser.text("#cat-label_fr-error")
    browser.fill("#cat-id", "visio")
    browser.fill("#cat-label_fr", "Visioconférence")
    browser.fill("#cat-label_en", "Video conferencing")
    browser.find("#cat-department_id option[value='dnum-ent']").click()
    browser.fill("#cat-faq_question", QUESTION)
    browser.fill("#cat-faq_answer", "Cliquez sur le lien de l'invitation, puis sur **Rejoindre**.")
    browser.press("Ajouter la catégorie")
    assert "La catégorie « Visioconférence » est ajoutée." in browser.text(".notice-success")
    assert "Visioconférence" in browser.text(".tree")
    # The same id again: routing's refusal shows, nothing changes.
    browser.fill("#cat-id", "visio")
    browser.fill("#cat-label_fr", "Doublon")
    browser.press("Ajouter la catégorie")
    assert "Refusé" in browser.text("form[action='/console/admin/categories']")
    assert "Doublon" not in browser.text(".tree")

    browser.sign_in(*ALICE)
    browser.open("/tickets/new")
    browser.click_and_wait(browser.driver.find_element(By.LINK_TEXT, "Visioconférence"))
    assert browser.path == "/tickets/new?category=visio"
    assert QUESTION in browser.text("main")
    assert "<strong>Rejoindre</strong>" in browser.driver.page_source, "the answer, formatted, under its question"


def test_a_used_category_is_not_deleted_and_a_rename_shows(stack: Stack, browser: Browser):
    filed = stack.api("POST", "tickets", "/api/v1/tickets", "alice", name="Alice Martin",
                      headers={"Idempotency-Key": str(uuid.uuid4())},
                      json={"category_id": "visio", "subject": "Pas de son", "description": "Micro muet."})
    assert filed.status_code == 201, filed.text
    browser.sign_in(*ROOT, admin=True)
    browser.open("/console/admin/categories/visio")
    browser.check_page("console-admin-category")
    browser.press("Supprimer la catégorie")
    assert "La catégorie n'est pas supprimée" in browser.text(".notice-error")
    assert "open ticket" in browser.text(".notice-error")
    assert category_exists(stack, "visio")
    browser.fill("#cat-label_fr", "Visioconférence (BBB)")
    browser.press("Enregistrer la catégorie")
    assert "est enregistrée" in browser.text(".notice-success")
    # The FAQ entry was kept by the rename.
    assert QUESTION in browser.text("main")
    browser.sign_in(*ALICE)
    browser.open("/tickets/new")
    assert "Visioconférence (BBB)" in browser.text("#category-tree")


def test_an_admin_edits_a_department_and_an_establishments_escalation(stack: Stack, browser: Browser):
    browser.sign_in(*ROOT, admin=True)
    browser.open("/console")
    browser.click_and_wait(browser.driver.find_element(By.PARTIAL_LINK_TEXT, "Les services"))
    assert browser.path == "/console/admin/departments"
    browser.check_page("console-admin-departments")
    before = [m["user"] for m in stack.api("GET", "routing", "/api/v1/departments/triage", "root",
                                           admin=True).json()["managers"]]
    browser.click_and_wait(browser.driver.find_element(By.LINK_TEXT, "Tri des demandes"))
    browser.find("#dep-assignment_policy option[value='round_robin']").click()
    browser.fill("#dep-new_user", "cfaure")
    browser.fill("#dep-new_name", "Camille Faure")
    browser.fill("#dep-new_email", "camille.faure@univ.example")
    browser.press("Enregistrer le service")
    assert "Le service « Tri des demandes » est enregistré." in browser.text(".notice-success")
    browser.check_page("console-admin-department")
    team = stack.api("GET", "routing", "/api/v1/departments/triage", "root", admin=True).json()
    assert team["assignment_policy"] == "round_robin"
    users = [m["user"] for m in team["managers"]]
    assert sorted(users) == sorted([*before, "cfaure"])
    row = users.index("cfaure")  # the page lists the managers in the API's order
    # Camille unavailable, then removed again: the table's checkboxes.
    browser.find(f"input[name='available'][value='{row}']").click()
    browser.press("Enregistrer le service")
    team = stack.api("GET", "routing", "/api/v1/departments/triage", "root", admin=True).json()
    assert [m["available"] for m in team["managers"] if m["user"] == "cfaure"] == [False]
    browser.find(f"input[name='remove_manager'][value='{row}']").click()
    browser.find("#dep-assignment_policy option[value='none']").click()
    browser.press("Enregistrer le service")
    team = stack.api("GET", "routing", "/api/v1/departments/triage", "root", admin=True).json()
    assert sorted(m["user"] for m in team["managers"]) == sorted(before) and team["assignment_policy"] == "none"

    browser.open("/console/admin/departments")
    browser.fill("#uai", "0540001A")
    browser.press("Voir les réglages")
    assert browser.path == "/console/admin/establishments/0540001A"
    browser.fill("#est-first_response_hours", "douze")
    browser.press("Enregistrer les réglages")
    assert "Un nombre d'heures." in browser.text("#est-first_response_hours-error")
    browser.fill("#est-first_response_hours", "24")
    browser.press("Enregistrer les réglages")
    assert "sont enregistrés" in browser.text(".notice-success")
    browser.check_page("console-admin-establishment")
    settings = stack.api("GET", "escalation", "/api/v1/establishments/0540001A/escalation", "root", admin=True).json()
    assert settings["first_response_hours"] == 24 and settings["enabled"] is True
    assert settings["support_department_id"] == "support-ent"
