"""The category filter of "Créer un ticket" step 1: accents, case and punctuation ignored."""

from services.portal.pages import filter_tree, find_path, fold

TREE = [
    {"id": "assistance-ent", "label": "Assistance ENT", "faq": [{"id": "p"}], "children": [
        {"id": "wifi", "label": "Wi-Fi (eduroam)", "faq": [{"id": "w"}], "children": []},
        {"id": "impression", "label": "Impression", "children": []},
    ]},
    {"id": "scolarite", "label": "Support technique pour les applications de scolarité", "children": [
        {"id": "apogee", "label": "Apogée", "children": [
            {"id": "apogee-diplomes", "label": "Édition des relevés de notes et diplômes", "children": []}]},
    ]},
]


def test_fold_ignores_accents_case_and_punctuation():
    assert fold("Wi-Fi (eduroam)") == "wifieduroam"
    assert fold("ÉDITION des relevés") == "editiondesreleves"


def test_wifi_finds_wi_fi_with_its_path():
    assert filter_tree(TREE, "wifi") == [{**TREE[0], "children": [TREE[0]["children"][0]]}]


def test_an_accentless_query_finds_accented_labels_and_keeps_the_path():
    found = filter_tree(TREE, "edition")
    assert [n["id"] for n in found] == ["scolarite"]
    assert found[0]["children"][0]["children"][0]["id"] == "apogee-diplomes"


def test_a_matching_parent_keeps_all_its_children():
    assert filter_tree(TREE, "apogee")[0]["children"][0] == TREE[1]["children"][0]


def test_no_match_and_empty_query():
    assert filter_tree(TREE, "zzz") == []
    assert filter_tree(TREE, " -- ") == TREE


def test_find_path_from_the_root():
    assert [n["id"] for n in find_path(TREE, "apogee-diplomes")] == ["scolarite", "apogee", "apogee-diplomes"]
    assert find_path(TREE, "nope") is None
