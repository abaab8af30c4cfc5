"""A first real request through the running service."""

from tests.e2e.conftest import ALICE, MARC


def test_file_a_ticket_and_take_it(api, routed):
    assert routed["department"]["id"] == "dnum-ent"
    taken = api.act(routed, "take", MARC)
    assert taken.status_code == 200, taken.text
    assert taken.headers["ETag"] == f'"{taken.json()["version"]}"'
    assert api.get(f"/api/v1/tickets/{routed['number']}", ALICE).json()["assignee"]["id"] == "marc"
