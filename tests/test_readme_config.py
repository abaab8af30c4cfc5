"""The README's configuration table names every variable the services read."""

from __future__ import annotations

import re

from tests.conftest import ROOT

# How the code reads a setting: the environment, or Nameko's config (which falls back to it).
READS = re.compile(r"(?:os\.environ\.get|os\.getenv|\benv\.get|_setting|\bconfig\.get|_env_number|number)"
                   r"\(\s*(f?)\"([A-Z{][A-Za-z0-9_{}.()]*)\"")
# Files whose tables of settings name them as plain strings (claims, LDAP attributes, URLs).
TABLES = ("shared/config.py", "services/portal/settings.py", "shared/nameko_deps.py", "services/notifier/sender.py")
NAMES = re.compile(r"\"((?:[A-Z][A-Z0-9]*_)+[A-Z0-9]+)\"")
# Nameko config keys the tests set (not environment variables).
NOT_VARIABLES = {"HTTP_ADDRESSES"}


def variables_read() -> set[str]:
    found = set()
    for path in [*(ROOT / "shared").rglob("*.py"), *(ROOT / "services").rglob("*.py")]:
        for formatted, name in READS.findall(path.read_text()):
            if formatted:  # f"{service.upper()}_DB_POOL_SIZE" is written <SERVICE>_DB_POOL_SIZE
                name = re.sub(r"\{[^}]*\}", "<SERVICE>", name)
            if name not in NOT_VARIABLES:
                found.add(name)
    for table in TABLES:
        found |= set(NAMES.findall((ROOT / table).read_text())) - NOT_VARIABLES
    return found


def test_every_variable_read_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration: every variable"):]
    table = table[:table.index("\n## ")]
    missing = sorted(name for name in variables_read() if f"`{name}`" not in table and name not in table)
    assert not missing, f"not in README.md's configuration table: {missing}"
    assert len(variables_read()) > 40
