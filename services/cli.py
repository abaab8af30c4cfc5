"""The ``guichet`` command: migrate, run the services, relay, rebuild projections,
dead letters.

Eventlet patches the standard library first, as Nameko needs, and before psycopg is
imported (``shared.db`` then picks psycopg's eventlet-friendly wait function).
"""

import warnings

# Eventlet warns of its own deprecation at import; Nameko 3 still runs on it.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import structlog  # noqa: E402

from shared import db  # noqa: E402

db.use_eventlet_wait()
from shared.config import Settings, database_name  # noqa: E402
from shared.logging import configure_logging  # noqa: E402
from shared.migrations import migrate  # noqa: E402

log = structlog.stdlib.get_logger("guichet.cli")

SERVICES_DIR = Path(__file__).resolve().parent

# Every service, in the order they migrate and start; one that has no folder yet is
# left out. Each owns the schema of its name (migrations in services/<name>/migrations)
# and its Nameko service class is the one named <name> in services/<name>/service.py.
ORDER = ("tickets", "routing", "notifier", "attachments", "escalation", "reporting", "portal")
PRESENT = tuple(name for name in ORDER if (SERVICES_DIR / name / "service.py").exists())
SCHEMAS = {name: name for name in PRESENT if (SERVICES_DIR / name / "migrations").is_dir()}


def service_classes() -> dict[str, type]:
    import importlib

    classes = {}
    for name in PRESENT:
        module = importlib.import_module(f"services.{name}.service")
        [cls] = [c for c in vars(module).values()
                 if isinstance(c, type) and c.__module__ == module.__name__ and getattr(c, "name", None) == name]
        classes[name] = cls
    return classes


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    if db.ensure_database(settings.database_url):
        log.info("database created", database=database_name(settings.database_url))
    with db.connect(settings.database_url) as conn:
        for service, schema in SCHEMAS.items():
            applied = migrate(conn, schema, SERVICES_DIR / service / "migrations")
            for m in applied:
                log.info("migration applied", schema=schema, version=m.version, name=m.name)
            if not applied:
                log.info("schema up to date", schema=schema)
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from nameko import config
    from nameko.runners import ServiceRunner

    available = service_classes()
    names = args.services or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        log.error("unknown service", services=unknown, known=sorted(available))
        return 2
    from shared.auth import IdentityMisconfigured, refuse_to_start

    try:
        refuse_to_start(settings)  # one clear line instead of a traceback per service
    except IdentityMisconfigured:
        return 1
    config.setup(settings.nameko_config())
    from shared.tracing import configure_tracing

    # One process, one resource: named after its services (OTEL_SERVICE_NAME overrides).
    configure_tracing("+".join(names))
    runner = ServiceRunner()
    for name in names:
        runner.add_service(available[name])

    def shutdown(signum: int, frame: object) -> None:
        eventlet.spawn_n(runner.stop)

    signal.signal(signal.SIGTERM, shutdown)
    runner.start()
    from shared.web import http_address

    broker = settings.amqp_uri.split("@")[-1]
    # The portal (the people's web pages) first: it is the address to open.
    for name in sorted(names, key=lambda n: n != "portal"):
        address = http_address(name)
        if name == "portal":
            address = os.environ.get("PORTAL_HTTP_ADDRESS", "0.0.0.0:8005")
        host, _, port = address.rpartition(":")
        url = f"http://{'localhost' if host in ('0.0.0.0', '') else host}:{port}"
        if name == "portal":
            log.info("portal running: open it in a browser", service=name, http=f"{url}/",
                     dev_sign_in=f"{url}/dev/sign-in" if os.environ.get("GUICHET_ENV") == "development" else None)
            continue
        log.info(
            "service running", service=name, http=f"{url}/api/v1", openapi=f"{url}/api/v1/openapi.json",
            rpc=f"'{name}' over RabbitMQ {broker}",
        )
    log.info(
        "guichet is up",
        services=names,
        events_exchange="tickets.events",
        database=database_name(settings.database_url),
        stop="Ctrl-C",
    )
    try:
        runner.wait()
    except KeyboardInterrupt:
        log.info("stopping")
        runner.stop()
    return 0


def cmd_relay(settings: Settings, args: argparse.Namespace) -> int:
    """A relay on its own, for operators who run it outside the tickets service."""
    from shared.outbox import OutboxRelay

    relay = OutboxRelay(settings.database_url, settings.amqp_uri, batch_size=args.batch_size)
    signal.signal(signal.SIGTERM, lambda *_: relay.stop())
    try:
        relay.run()
    except KeyboardInterrupt:
        relay.stop()
    return 0


def cmd_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from services.tickets.projections import rebuild
    from shared.eventstore import EventStore

    with db.connect(settings.database_url) as conn, conn.transaction():
        count = rebuild(conn, EventStore("tickets"))
    log.info("projections rebuilt", tickets=count)
    if "reporting" in SCHEMAS:
        from services.reporting.storage import rebuild as rebuild_reporting
        from shared.calendar import WorkingCalendar

        with db.connect(settings.database_url) as conn, conn.transaction():
            events = rebuild_reporting(conn, WorkingCalendar.from_env())
        log.info("reporting projection rebuilt", events=events)
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    """Print a token for local use (signed with GUICHET_JWT_SECRET or the dev secret)."""
    from shared.auth import issue_token

    sys.stdout.write(
        issue_token(
            settings, sub=args.sub, email=args.email, name=args.name,
            establishment=args.establishment, admin=args.admin, ttl_seconds=args.ttl,
        )
        + "\n"
    )
    return 0


def cmd_config_load(settings: Settings, args: argparse.Namespace) -> int:
    """Load a routing configuration file: all of it, or nothing with every error listed."""
    from services.routing import storage
    from services.routing.config import ConfigError, read_config

    try:
        catalogue = read_config(Path(args.file))
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("configuration refused", file=exc.source, problem=problem)
        return 1
    with db.connect(settings.database_url) as conn, conn.transaction():
        storage.lock_catalogue(conn)
        current = storage.load_catalogue(conn)
        if args.if_empty and current.departments:
            log.info("configuration already present, not loaded", file=args.file)
            return 0
        if storage.same_catalogue(current, catalogue):
            log.info("configuration unchanged", file=args.file)
            return 0
        storage.replace_catalogue(conn, catalogue)
    log.info(
        "configuration loaded", file=args.file, departments=len(catalogue.departments),
        categories=len(catalogue.categories), teams=len(catalogue.teams()),
    )
    return 0


def cmd_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    """``list`` or ``replay`` the dead letters of a service's ticket-event consumer."""
    from shared import dead_letters

    consumers = sorted(dead_letters.consumers())
    if args.service not in consumers:
        log.error("no dead-letter queue for this service", service=args.service, known=consumers)
        return 2
    if args.action == "list":
        for letter in dead_letters.peek(settings.amqp_uri, args.service, limit=args.limit):
            sys.stdout.write(json.dumps(letter, ensure_ascii=False, default=str) + "\n")
        return 0
    replayed = dead_letters.replay(settings.amqp_uri, args.service, limit=args.limit)
    log.info("dead letters replayed", service=args.service, count=replayed,
             queue=f"{args.service}.ticket-events")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guichet", description="Guichet helpdesk")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create the database if missing and apply migrations").set_defaults(
        func=cmd_migrate
    )
    run = sub.add_parser("run", help="run services in the foreground (all by default)")
    run.add_argument("services", nargs="*", help="service names, e.g. tickets")
    run.set_defaults(func=cmd_run)
    relay = sub.add_parser("relay", help="run the outbox relay alone")
    relay.add_argument("--batch-size", type=int, default=200)
    relay.set_defaults(func=cmd_relay)
    sub.add_parser("rebuild-projections", help="rebuild every read model from the events").set_defaults(
        func=cmd_rebuild
    )
    config = sub.add_parser("config", help="routing configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    load = config_sub.add_parser("load", help="load departments, managers, categories and FAQ from YAML")
    load.add_argument("file")
    load.add_argument("--if-empty", action="store_true", help="only when no department exists yet (first start)")
    load.set_defaults(func=cmd_config_load)
    letters = sub.add_parser("dead-letters", help="look at or replay a consumer's dead-letter queue")
    letters.add_argument("action", choices=("list", "replay"),
                         help="list: print each dead letter (JSON lines), leaving it queued; replay: move each back"
                              " to the service's queue, to be handled again")
    letters.add_argument("service", help="the consuming service, e.g. routing")
    letters.add_argument("--limit", type=int, default=None, help="at most this many (default: all)")
    letters.set_defaults(func=cmd_dead_letters)
    token = sub.add_parser("token", help="print a bearer token for local use")
    token.add_argument("--sub", required=True, help="login")
    token.add_argument("--email", required=True)
    token.add_argument("--name")
    token.add_argument("--establishment", help="UAI, e.g. 0540001A")
    token.add_argument("--admin", action="store_true")
    token.add_argument("--ttl", type=int, default=8 * 3600, help="seconds")
    token.set_defaults(func=cmd_token)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    return args.func(settings, args)


if __name__ == "__main__":
    sys.exit(main())
