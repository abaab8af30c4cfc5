"""psycopg must not block eventlet's hub: slow queries in green threads overlap."""

import eventlet

from shared import db


def test_five_slow_queries_in_green_threads_run_at_the_same_time(database_url):
    """While five green threads each sleep in PostgreSQL, a sixth sees all five running.

    With psycopg's default C wait function the first query would hold the whole process,
    the others would start one after another, and the observer would see at most one.
    """
    marker = "guichet-hub-test"

    def slow_query() -> None:
        with db.connect(database_url) as conn:
            conn.execute(f"SELECT pg_sleep(1.5) /* {marker} */")

    def running() -> int:
        with db.connect(database_url) as conn:
            return conn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s"
                " AND pid <> pg_backend_pid()",
                (f"%{marker}%",),
            ).fetchone()["n"]

    sleepers = [eventlet.spawn(slow_query) for _ in range(5)]
    seen = 0
    for _ in range(20):
        eventlet.sleep(0.05)
        seen = max(seen, running())
        if seen == 5:
            break
    for sleeper in sleepers:
        sleeper.wait()
    assert seen == 5
