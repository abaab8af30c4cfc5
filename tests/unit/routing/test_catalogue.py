"""The pure routing core: the category tree, team resolution and the assignment policies
(``WORKFLOW.md``, "Categories and departments")."""

from __future__ import annotations

from collections import Counter

import pytest

from services.routing.catalogue import (
    DEFAULT_CLOSURE_EXPIRY_DAYS,
    TRIAGE,
    Catalogue,
    Category,
    Department,
    Manager,
    choose_assignee,
    team_id,
)

MARC = Manager("marc", "Marc Leroy", "marc.leroy@univ.example")
CAMILLE = Manager("camille", "Camille Faure", "camille.faure@univ.example")
NADIA = Manager("nadia", "Nadia Benali", "nadia.benali@univ.example")
SOPHIE = Manager("sophie", "Sophie Martin", "sophie.martin@lycee.example", establishment="0540001A")
PIERRE = Manager("pierre", "Pierre Lefebvre", "pierre.lefebvre@lycee.example", establishment="0540001A")
AURELIE = Manager("aurelie", "Aurélie Moreau", "aurelie.moreau@lycee.example", establishment="0880012B")
TRIAGIST = Manager("claire", "Claire Robert", "claire.robert@univ.example")


def catalogue(*categories: Category, departments: tuple[Department, ...] | None = None) -> Catalogue:
    """A university + ENT catalogue: a global DNUM, per-establishment referents, triage."""
    departments = departments or (
        Department("dnum-ent", "DNUM - ENT", "IT - ENT", assignment_policy="least_loaded", closure_expiry_days=10,
                   managers=(MARC, CAMILLE)),
        Department("referents-ent", "Référents ENT", "ENT referents", per_establishment=True,
                   assignment_policy="round_robin", escalation_enabled=True, managers=(SOPHIE, PIERRE, AURELIE)),
        Department("dnum-scolarite", "DNUM - Scolarité", managers=(NADIA,)),
        Department(TRIAGE, "Tri des demandes", "Triage", managers=(TRIAGIST,)),
    )
    return Catalogue({d.id: d for d in departments}, {c.id: c for c in categories})


TREE = (
    Category("ent", "ENT", department_id="dnum-ent"),
    Category("ent-connexion", "Problème de connexion", parent_id="ent"),
    Category("ent-connexion-impossible", "Connexion impossible", parent_id="ent-connexion",
             assignment_policy="round_robin", closure_expiry_days=7),
    Category("ent-connexion-mdp", "Mot de passe", parent_id="ent-connexion-impossible"),
    Category("scolarite", "Support technique pour les applications de scolarité", department_id="dnum-scolarite"),
    Category("apogee", "Apogée", parent_id="scolarite"),
    Category("assistance-ent", "Assistance ENT", department_id="referents-ent"),
    Category("wifi", "Wi-Fi (eduroam)", parent_id="assistance-ent"),
    Category("impression", "Impression", parent_id="assistance-ent", assignment_policy="least_loaded",
             closure_expiry_days=5),
)


# -- the tree -----------------------------------------------------------------------------


def test_the_tree_is_usable():
    assert catalogue(*TREE).problems() == []


def test_a_category_uses_its_department_and_its_departments_settings():
    route = catalogue(*TREE).route("ent", None)
    assert (route.team, route.department_id, route.policy, route.closure_expiry_days) == (
        "dnum-ent", "dnum-ent", "least_loaded", 10)
    assert route.reason == "category ent -> dnum-ent"


def test_a_sub_category_inherits_its_parents_department():
    route = catalogue(*TREE).route("ent-connexion", "0540001A")
    assert (route.team, route.department_id, route.policy, route.closure_expiry_days) == (
        "dnum-ent", "dnum-ent", "least_loaded", 10)


def test_policy_and_expiry_overrides_apply_to_the_category_and_below_nearest_first():
    cat = catalogue(*TREE)
    own = cat.route("ent-connexion-impossible", None)
    assert (own.team, own.policy, own.closure_expiry_days) == ("dnum-ent", "round_robin", 7)
    below = cat.route("ent-connexion-mdp", None)
    assert (below.team, below.policy, below.closure_expiry_days) == ("dnum-ent", "round_robin", 7)
    nearest = catalogue(*TREE, Category("ent-connexion-vpn", "VPN", parent_id="ent-connexion-impossible",
                                        assignment_policy="none", closure_expiry_days=3)).route("ent-connexion-vpn", "")
    assert (nearest.policy, nearest.closure_expiry_days) == ("none", 3)


def test_closure_expiry_defaults_to_fourteen_days():
    route = catalogue(*TREE).route("apogee", None)
    assert (route.team, route.policy, route.closure_expiry_days) == ("dnum-scolarite", "none", 14)
    assert DEFAULT_CLOSURE_EXPIRY_DAYS == 14


def test_a_parents_overrides_do_not_follow_a_sub_category_to_another_department():
    # Bug fixed: "ent-connexion-impossible" asks round_robin and 7 days of dnum-ent; a
    # sub-category sending its tickets to dnum-scolarite gets dnum-scolarite's settings.
    cat = catalogue(*TREE, Category("ent-apogee", "Accès à Apogée depuis l'ENT", parent_id="ent-connexion-impossible",
                                    department_id="dnum-scolarite"))
    route = cat.route("ent-apogee", None)
    assert (route.team, route.policy, route.closure_expiry_days) == ("dnum-scolarite", "none", 14)


# -- teams per establishment -------------------------------------------------------------


def test_two_establishments_reach_their_own_referents():
    cat = catalogue(*TREE)
    nancy, epinal = cat.route("wifi", "0540001A"), cat.route("wifi", "0880012B")
    assert (nancy.team, epinal.team) == ("referents-ent:0540001A", "referents-ent:0880012B")
    assert nancy.department_id == epinal.department_id == "referents-ent"
    assert nancy.policy == "round_robin"
    assert "referents of 0540001A" in nancy.reason
    assert cat.team_managers(nancy.team) == [SOPHIE, PIERRE]
    assert cat.team_managers(epinal.team) == [AURELIE]


def test_a_sub_category_of_the_referents_keeps_its_own_overrides():
    route = catalogue(*TREE).route("impression", "0880012B")
    assert (route.team, route.policy, route.closure_expiry_days) == ("referents-ent:0880012B", "least_loaded", 5)


@pytest.mark.parametrize("establishment", ["0570034C", None, ""])
def test_an_establishment_without_referents_or_no_establishment_goes_to_triage(establishment):
    route = catalogue(*TREE).route("wifi", establishment)
    assert (route.team, route.department_id, route.policy, route.closure_expiry_days) == (
        TRIAGE, TRIAGE, "none", 14)
    assert route.reason.startswith("triage: referents-ent has no referents")


def test_an_establishment_whose_referents_are_all_unavailable_still_reaches_them():
    away = Department("referents-ent", "Référents ENT", per_establishment=True, assignment_policy="round_robin",
                      managers=(Manager("sophie", establishment="0540001A", available=False),))
    route = catalogue(*TREE, departments=(away, Department(TRIAGE, "Tri"))).route("wifi", "0540001A")
    assert route.team == "referents-ent:0540001A"


def test_an_unknown_category_goes_to_triage():
    route = catalogue(*TREE).route("cafeteria", "0540001A")
    assert (route.team, route.department_id) == (TRIAGE, TRIAGE)
    assert route.reason == "triage: unknown category 'cafeteria'"


def test_triage_uses_the_triage_departments_settings_or_none():
    triage = Department(TRIAGE, "Tri", assignment_policy="round_robin", closure_expiry_days=3)
    route = catalogue(*TREE, departments=(triage,)).route("nowhere", None)
    assert (route.team, route.policy, route.closure_expiry_days) == (TRIAGE, "round_robin", 3)
    bare = Catalogue({}, {}).route("nowhere", None)
    assert (bare.team, bare.policy, bare.closure_expiry_days) == (TRIAGE, "none", 14)


def test_a_category_in_a_cycle_goes_to_triage_rather_than_loop():
    cat = catalogue(Category("a", "A", parent_id="b", department_id="dnum-ent"), Category("b", "B", parent_id="a"))
    route = cat.route("a", None)
    assert route.team == TRIAGE and "cycle" in route.reason


def test_team_id():
    referents = Department("referents-ent", "Référents ENT", per_establishment=True)
    assert team_id(referents, "0540001A") == "referents-ent:0540001A"
    assert team_id(Department("dnum-ent", "DNUM - ENT"), "0540001A") == "dnum-ent"


# -- teams and their managers ------------------------------------------------------------


def test_teams_lists_global_departments_and_one_team_per_establishment_with_referents():
    teams = catalogue(*TREE).teams()
    assert sorted(teams) == ["dnum-ent", "dnum-scolarite", "referents-ent:0540001A", "referents-ent:0880012B",
                             TRIAGE]
    department, managers = teams["referents-ent:0540001A"]
    assert department.id == "referents-ent" and managers == [SOPHIE, PIERRE]
    assert teams["dnum-ent"][1] == [MARC, CAMILLE]
    assert teams[TRIAGE][1] == [TRIAGIST]


def test_a_per_establishment_department_without_referents_has_no_team():
    empty = Department("referents-ent", "Référents ENT", per_establishment=True)
    assert "referents-ent" not in Catalogue({"referents-ent": empty}, {}).teams()
    assert not [t for t in Catalogue({"referents-ent": empty}, {}).teams() if t.startswith("referents-ent")]


def test_team_managers_matches_teams():
    cat = catalogue(*TREE)
    for team, (_, managers) in cat.teams().items():
        assert cat.team_managers(team) == managers


def test_team_managers_of_unknown_or_incomplete_teams_is_empty():
    cat = catalogue(*TREE)
    assert cat.team_managers("cafeteria") == []
    assert cat.team_managers("referents-ent") == []  # no establishment
    assert cat.team_managers("referents-ent:0570034C") == []  # no referents there
    assert cat.team_managers("dnum-ent:0540001A") == []  # a global department has no such team


def test_team_managers_of_a_global_department_are_all_its_managers():
    # Bug fixed: team_managers kept only managers without an establishment, while
    # teams() (hence ticket access) listed them all; the two now agree.
    odd = Department("dnum-ent", "DNUM - ENT", managers=(MARC, Manager("luc", establishment="0540001A")))
    cat = Catalogue({"dnum-ent": odd}, {})
    assert cat.team_managers("dnum-ent") == cat.teams()["dnum-ent"][1] == list(odd.managers)


# -- assignment policies -----------------------------------------------------------------

TEAM = [Manager("camille"), Manager("alice"), Manager("bruno")]  # not in login order on purpose


def test_policy_none_leaves_the_ticket_free():
    chosen, why = choose_assignee("none", TEAM, None, {})
    assert chosen is None and "stays free" in why


def test_round_robin_cycles_in_login_order_and_wraps():
    last, order = None, []
    for _ in range(7):
        chosen, why = choose_assignee("round_robin", TEAM, last, {})
        assert chosen is not None and why.startswith("round_robin")
        order.append(chosen.user_id)
        last = chosen.user_id
    assert order == ["alice", "bruno", "camille", "alice", "bruno", "camille", "alice"]


def test_round_robin_after_someone_who_left_the_team_continues_in_order():
    chosen, _ = choose_assignee("round_robin", TEAM, "benoit", {})
    assert chosen.user_id == "bruno"
    chosen, _ = choose_assignee("round_robin", TEAM, "zoe", {})
    assert chosen.user_id == "alice"


def test_least_loaded_picks_the_fewest_open_tickets():
    chosen, why = choose_assignee("least_loaded", TEAM, None, {"alice": 4, "bruno": 1, "camille": 2})
    assert chosen.user_id == "bruno"
    assert why.startswith("least_loaded: 1 open tickets")


def test_least_loaded_breaks_ties_by_login():
    chosen, _ = choose_assignee("least_loaded", TEAM, None, {"alice": 3, "bruno": 2, "camille": 2})
    assert chosen.user_id == "bruno"
    chosen, _ = choose_assignee("least_loaded", TEAM, None, {})
    assert chosen.user_id == "alice"


def test_least_loaded_spreads_300_tickets_evenly_over_3_available_managers():
    team = [*TEAM, Manager("denis", available=False)]
    loads: Counter[str] = Counter()
    for _ in range(300):
        chosen, _ = choose_assignee("least_loaded", team, None, dict(loads))
        loads[chosen.user_id] += 1
    assert set(loads) == {"alice", "bruno", "camille"}
    assert all(abs(n - 100) <= 1 for n in loads.values()), loads


def test_least_loaded_evens_out_a_team_that_started_unbalanced():
    loads: Counter[str] = Counter({"alice": 10})
    for _ in range(290):
        chosen, _ = choose_assignee("least_loaded", TEAM, None, dict(loads))
        loads[chosen.user_id] += 1
    assert all(abs(n - 100) <= 1 for n in loads.values()), loads


@pytest.mark.parametrize("policy", ["round_robin", "least_loaded"])
def test_unavailable_managers_are_skipped(policy):
    team = [Manager("alice", available=False), Manager("bruno"), Manager("camille", available=False)]
    for last in (None, "alice", "bruno", "camille"):
        chosen, _ = choose_assignee(policy, team, last, {"bruno": 50})
        assert chosen.user_id == "bruno"


@pytest.mark.parametrize("policy", ["round_robin", "least_loaded"])
@pytest.mark.parametrize("team", [[], [Manager("alice", available=False)]])
def test_no_available_manager_leaves_the_ticket_free_and_says_why(policy, team):
    chosen, why = choose_assignee(policy, team, None, {})
    assert chosen is None
    assert why == f"policy {policy}: no available manager, the ticket stays free"


def test_an_unknown_policy_assigns_nobody():
    chosen, why = choose_assignee("lottery", TEAM, None, {})
    assert chosen is None and "unknown policy 'lottery'" in why


# -- problems ----------------------------------------------------------------------------


def test_problems_of_departments():
    departments = (
        Department(TRIAGE, "Tri", per_establishment=True),
        Department("a:b", "Colon"),
        Department("dnum-ent", "DNUM", assignment_policy="fastest", managers=(MARC, MARC, SOPHIE)),
        Department("referents-ent", "Référents", per_establishment=True, managers=(Manager("luc"),)),
    )
    assert catalogue(departments=departments).problems() == [
        "department triage: must be global (it takes what no other team can)",
        "department a:b: an id must not contain ':'",
        "department dnum-ent: unknown assignment policy 'fastest'",
        "department dnum-ent: manager marc listed twice",
        "department dnum-ent: manager sophie has an establishment (0540001A) but the department is global",
        "department referents-ent: manager luc needs an establishment (the department is per establishment)",
    ]


def test_problems_of_categories():
    cat = catalogue(
        Category("orphan", "Orphelin", parent_id="missing"),
        Category("lost", "Perdu", department_id="nowhere", assignment_policy="fastest"),
        Category("a", "A", parent_id="b"),
        Category("b", "B", parent_id="a", department_id="dnum-ent"),
        Category("below", "Dessous", parent_id="a"),
    )
    assert cat.problems() == [
        "category orphan: unknown parent 'missing'",
        "category orphan: no department on it or any category above it",
        "category lost: unknown department 'nowhere'",
        "category lost: unknown assignment policy 'fastest'",
        "category a: its parents form a cycle (a -> b -> a)",
        "category b: its parents form a cycle (b -> a -> b)",
        "category below: its parents form a cycle (below -> a -> b -> a)",
    ]
