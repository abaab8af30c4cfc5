"""No service imports another service's modules, and ``shared/`` imports no service.

What crosses a boundary lives in ``shared/`` (``shared.contract``: errors over RPC,
event type names, statuses). ``services/cli.py`` starts every service, so it may import
them all. The walk reads each module's ``import`` statements with ``ast``, including the
ones inside functions, so a lazy import cannot slip through.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shared import contract, events

ROOT = Path(__file__).resolve().parent.parent
EXEMPT = {Path("services/cli.py")}


def imported_modules(source: str, module: str) -> list[str]:
    """Every module ``source`` (the text of ``module``, dotted) imports, relative ones resolved."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".")[: -node.level]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.append(base)
            # ``from services import tickets`` imports a service too.
            names.extend(f"{base}.{alias.name}" for alias in node.names)
    return names


def violations(root: Path) -> list[str]:
    """``path: imports module`` for each import that crosses a boundary under ``root``."""
    found: list[str] = []
    for path in sorted([*root.glob("services/**/*.py"), *root.glob("shared/**/*.py")]):
        relative = path.relative_to(root)
        if relative in EXEMPT:
            continue
        module = ".".join(relative.with_suffix("").parts)
        if module.endswith(".__init__"):
            module = module.removesuffix(".__init__") + ".x"  # relative imports resolve from the package
        parts = relative.parts
        own = parts[1] if parts[0] == "services" and len(parts) > 2 else None
        for name in imported_modules(path.read_text(encoding="utf-8"), module):
            target = name.split(".")
            if target[0] != "services" or len(target) < 2:
                continue
            if parts[0] == "shared":
                found.append(f"{relative}: imports {name} (shared/ must not depend on a service)")
            elif own is not None and target[1] != own:
                found.append(f"{relative}: imports {name} (another service's module)")
    return found


def test_no_service_imports_another_service_and_shared_imports_no_service() -> None:
    assert violations(ROOT) == []


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("services/routing/service.py", "from services.tickets import domain\n", True),
        ("services/routing/service.py", "import services.tickets.commands\n", True),
        ("services/routing/service.py", "def f():\n    from services.attachments.errors import X\n", True),
        ("services/routing/service.py", "from services import tickets\n", True),
        ("services/routing/service.py", "from ..tickets import domain\n", True),
        ("shared/web.py", "from services.tickets.domain import FINAL\n", True),
        ("services/routing/service.py", "from services.routing import catalogue\nfrom shared import contract\n", False),
        ("services/routing/service.py", "from . import catalogue\n", False),
        ("services/cli.py", "from services.tickets.service import TicketsService\n", False),
    ],
)
def test_the_walk_catches_each_kind_of_crossing(tmp_path: Path, path: str, source: str, expected: bool) -> None:
    # The check itself can fail: a tree holding one crossing import is caught.
    target = tmp_path / path
    target.parent.mkdir(parents=True)
    target.write_text(source, encoding="utf-8")
    assert bool(violations(tmp_path)) is expected


def test_the_contract_names_every_event_the_schemas_know() -> None:
    assert contract.EVENT_TYPES == frozenset(events.EVENT_SCHEMAS)


def test_the_contract_errors_are_the_ones_the_services_raise() -> None:
    from services.attachments import errors
    from services.tickets import commands, domain

    assert domain.DomainError is contract.DomainError and domain.InvalidTransition is contract.InvalidTransition
    assert commands.TicketNotFound is contract.TicketNotFound and commands.Conflict is contract.Conflict
    assert errors.AttachmentInUse is contract.AttachmentInUse
    assert domain.FINAL == contract.FINAL and domain.OPEN == contract.OPEN
