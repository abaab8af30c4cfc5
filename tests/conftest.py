"""Test fixtures on the real PostgreSQL and RabbitMQ.

They use ``DATABASE_URL`` / ``AMQP_URI`` when set, else the local servers. Each test
session migrates a fresh ``<name>_test`` database; each RabbitMQ test gets a throwaway
vhost from Nameko's pytest plugin (it needs the ``rabbitmq_management`` plugin).
"""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import os  # noqa: E402

# Services started by the tests without a key of their own accept the development
# secret, as under `make run`; the fail-closed tests remove this (shared/auth.py).
os.environ.setdefault("GUICHET_ENV", "development")
import socket  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import pytest  # noqa: E402

from shared import db  # noqa: E402  (chooses psycopg's eventlet-friendly wait function)

db.use_eventlet_wait()
from shared.config import database_name, with_database  # noqa: E402
from shared.migrations import migrate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TICKET_TABLES = (
    "tickets.outbox, tickets.events, tickets.ticket_view, tickets.idempotency_keys,"
    " tickets.department_managers, tickets.users, tickets.categories, tickets.departments,"
    " tickets.catalogue_revision, tickets.escalable_teams, tickets.escalable_known"
)

# The category catalogue every ticket test starts from (routing will own the real one).
CATEGORIES = [
    ("ent-connexion", "Problème de connexion à l'ENT", "ENT login problem"),
    ("wifi", "Wi-Fi (eduroam)", "Wi-Fi (eduroam)"),
    ("impression", "Impression", "Printing"),
    ("apogee", "Support technique pour les applications de scolarité", "Student records applications"),
]


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("AMQP_URI"):
        config.option.RABBIT_AMQP_URI = os.environ["AMQP_URI"]


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    base = os.environ.get("DATABASE_URL", "postgresql://127.0.0.1/guichet")
    parts = urlsplit(base)
    if not _reachable(parts.hostname or "127.0.0.1", parts.port or 5432):
        pytest.exit(
            f"PostgreSQL is not reachable at {parts.hostname}:{parts.port or 5432}. Start it"
            " (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)"
            " or set DATABASE_URL.",
            returncode=3,
        )
    # One database per test run, so runs side by side (CI, a developer, a helper) never
    # share tables.
    url = with_database(base, f"{database_name(base)}_test_{os.getpid()}")
    db.drop_database(url)
    db.ensure_database(url)
    from services.cli import SCHEMAS, SERVICES_DIR

    with db.connect(url) as conn:
        for service, schema in SCHEMAS.items():
            migrate(conn, schema, SERVICES_DIR / service / "migrations")
    yield url
    db.drop_database(url)


@pytest.fixture(scope="session")
def pool(database_url: str) -> Iterator[db.ConnectionPool]:
    pool = db.create_pool(database_url, min_size=2, max_size=20, name="tests")
    yield pool
    pool.close()


@pytest.fixture
def tickets_db(pool: db.ConnectionPool) -> db.ConnectionPool:
    """The pool, on empty ticket tables."""
    with pool.connection() as conn:
        conn.execute(f"TRUNCATE {TICKET_TABLES} RESTART IDENTITY")
        conn.execute("ALTER SEQUENCE tickets.ticket_number RESTART WITH 1000")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO tickets.categories (id, label_fr, label_en) VALUES (%s, %s, %s)", CATEGORIES
            )
    from services.tickets.views import LABELS

    LABELS.forget()
    return pool


@pytest.fixture
def broker_uri(request: pytest.FixtureRequest) -> str:
    """An AMQP URI on a throwaway vhost, also set as Nameko's ``AMQP_URI``."""
    uri = urlsplit(request.config.getoption("RABBIT_AMQP_URI"))
    if not _reachable(uri.hostname or "localhost", uri.port or 5672):
        pytest.fail(
            f"RabbitMQ is not reachable at {uri.hostname}:{uri.port or 5672}."
            " Start it (rabbitmq-server -detached) or set AMQP_URI."
        )
    request.getfixturevalue("rabbit_config")
    from nameko import config

    return config["AMQP_URI"]


def add_manager(pool: db.ConnectionPool, department_id: str, user_id: str, name: str | None = None) -> None:
    """Make ``user_id`` a manager of ``department_id`` (routing will feed this table)."""
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO tickets.department_managers (department_id, user_id, name, email)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (department_id, user_id, name or user_id, f"{user_id}@univ.example"),
        )
