"""The migration runner: versioned, idempotent, and strict about edited history."""

import pytest

from shared import db
from shared.migrations import MigrationError, migrate


@pytest.fixture
def schema(pool):
    with pool.connection() as conn:
        conn.execute("DROP SCHEMA IF EXISTS migration_test CASCADE")
    yield "migration_test"
    with pool.connection() as conn:
        conn.execute("DROP SCHEMA IF EXISTS migration_test CASCADE")


def test_applies_pending_files_once_in_order(database_url, schema, tmp_path):
    (tmp_path / "0001_create.sql").write_text("CREATE TABLE migration_test.t (x int);")
    (tmp_path / "0002_fill.sql").write_text("INSERT INTO migration_test.t VALUES (1); INSERT INTO t VALUES (2);")
    with db.connect(database_url) as conn:
        assert [m.version for m in migrate(conn, schema, tmp_path)] == [1, 2]
        assert migrate(conn, schema, tmp_path) == []
        assert conn.execute("SELECT count(*) AS n FROM migration_test.t").fetchone()["n"] == 2


def test_a_file_changed_after_it_was_applied_is_refused(database_url, schema, tmp_path):
    path = tmp_path / "0001_create.sql"
    path.write_text("CREATE TABLE migration_test.t (x int);")
    with db.connect(database_url) as conn:
        migrate(conn, schema, tmp_path)
        path.write_text("CREATE TABLE migration_test.t (x bigint);")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrate(conn, schema, tmp_path)


def test_a_failing_file_leaves_nothing_half_applied(database_url, schema, tmp_path):
    (tmp_path / "0001_create.sql").write_text("CREATE TABLE migration_test.t (x int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE migration_test.u (y int); SELECT nonsense;")
    with db.connect(database_url) as conn:
        with pytest.raises(Exception, match="nonsense"):
            migrate(conn, schema, tmp_path)
        conn.rollback()
        tables = conn.execute(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'migration_test'"
        ).fetchone()["n"]
    assert tables == 0


@pytest.mark.parametrize("name", ["1_create.sql", "0001-create.sql", "0001_Create.sql"])
def test_badly_named_files_are_refused(database_url, schema, tmp_path, name):
    (tmp_path / name).write_text("SELECT 1;")
    with db.connect(database_url) as conn, pytest.raises(MigrationError, match="name must look like"):
        migrate(conn, schema, tmp_path)
