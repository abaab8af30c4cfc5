"""The notifier's email sender draining a backlog: emails per second handed to a real
SMTP server (aiosmtpd in its own process), with one SMTP connection and with several,
in the same run.

Queues ``--emails`` pending emails (default 5,000) in a scratch database
(``guichet_bench_email``), runs ``MailSender`` until every one is marked sent, and
times it; then again with ``--connections`` delivery loops. Prints a table and writes
``bench/results/mail.json``::

    .venv/bin/python bench/mail.py --emails 5000 --connections 4
"""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared import db  # noqa: E402

db.use_eventlet_wait()
import psycopg  # noqa: E402

from services.notifier.sender import MailSender, transport_for  # noqa: E402
from shared.config import with_database  # noqa: E402

BODY = (
    "From: Guichet <guichet@univ.example>\r\nTo: {to}\r\nSubject: =?utf-8?q?=5BTicket_n=C2=B0{n}=5D_Connexion_impossible?=\r\n"
    "Message-ID: {mid}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    + "Votre demande n=C2=B0{n} a bien =C3=A9t=C3=A9 enregistr=C3=A9e.\r\n" * 20
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(url: str) -> None:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[-1]}" WITH (FORCE)')
    subprocess.run([sys.executable, "-m", "services.cli", "migrate"], cwd=ROOT, check=True,
                   env={**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning"})


def queue(url: str, count: int) -> None:
    """``count`` pending emails, as the notifier queues them."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE notifier.delivery_attempts, notifier.emails")
        rows = []
        for i in range(count):
            mid = f"<bench-{uuid.uuid4().hex}@univ.example>"
            to = f"etudiant{i}@univ.example"
            rows.append((str(uuid.uuid4()), f"user{i}", str(uuid.uuid4()), 50000 + i, "TicketSubmitted", to, mid,
                         BODY.format(to=to, n=50000 + i, mid=mid).encode("ascii")))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO notifier.emails (event_id, recipient_id, ticket_id, ticket_number, event_type,"
                " event_occurred_at, to_address, message_id, message) VALUES (%s, %s, %s, %s, %s, now(), %s, %s, %s)",
                rows)


def sent(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM notifier.emails WHERE status = 'sent'").fetchone()[0]


def drain(url: str, smtp_url: str, count: int, connections: int, timeout: float) -> dict[str, float]:
    queue(url, count)
    sender = MailSender(url, transport_for(smtp_url, ROOT / "var" / "bench-mail"), "guichet@univ.example",
                        poll_interval=0.2, connections=connections)
    started = time.monotonic()
    loop = eventlet.spawn(sender.run)
    done = 0
    while time.monotonic() - started < timeout:
        done = sent(url)
        if done >= count:
            break
        eventlet.sleep(0.2)
    seconds = time.monotonic() - started
    sender.stop()
    loop.kill()
    return {"connections": connections, "emails": done, "seconds": round(seconds, 2),
            "emails_per_second": round(done / seconds, 1), "complete": done >= count}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--database", default="guichet_bench_email")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/mail.json")
    args = parser.parse_args()

    url = with_database(os.environ.get("DATABASE_URL", "postgresql://127.0.0.1/guichet"), args.database)
    prepare(url)
    port = free_port()
    smtp = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                             "-l", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        runs = [drain(url, f"smtp://127.0.0.1:{port}", args.emails, c, args.timeout)
                for c in sorted({1, args.connections})]
    finally:
        smtp.terminate()
        smtp.wait(timeout=10)
    print(f"\nEmails from a backlog of {args.emails} to a real SMTP server (aiosmtpd, its own process)")
    print(f"{'connections':>12} {'seconds':>9} {'emails/s':>9} {'complete':>9}")
    for run in runs:
        print(f"{run['connections']:>12} {run['seconds']:>9} {run['emails_per_second']:>9} {str(run['complete']):>9}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"backlog": args.emails, "runs": runs}, indent=2))
    return 0 if all(r["complete"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
