"""The portal's cost: "Mes demandes" and a ticket page under N concurrent sessions,
beside the tickets API's own latency for the same data.

Starts tickets, routing, notifier and the portal (one process each) on a scratch
database (``guichet_bench_portal``), files a few tickets per person through the API,
signs each person in through the portal's development sign-in, then for a fixed time
has N clients alternate, each as its own person: ``GET /`` and ``GET /tickets/{n}``
on the portal, and ``GET /api/v1/tickets?scope=mine`` and ``GET /api/v1/tickets/{id}``
(+ ``/history``) on the API. Prints p50/p99 per kind and writes
``bench/results/portal.json``::

    .venv/bin/python bench/portal.py --clients 16 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import SECRET, drop_database, load_catalogue, percentile, prepare_database, wait_ready  # noqa: E402

from shared.auth import issue_token  # noqa: E402
from shared.config import Settings, with_database  # noqa: E402

SERVICES = ("tickets", "routing", "notifier", "portal")


def start(url: str, ports: dict[str, int]) -> list[subprocess.Popen]:
    env = {**os.environ, "DATABASE_URL": url, "GUICHET_JWT_SECRET": SECRET, "GUICHET_ENV": "development",
           "LOG_LEVEL": "warning", "LOG_FORMAT": "json", "MAIL_DIR": str(ROOT / "var" / "bench-mail"),
           **{f"{name.upper()}_HTTP_ADDRESS": f"127.0.0.1:{port}" for name, port in ports.items()},
           **{f"{name.upper()}_URL": f"http://127.0.0.1:{port}" for name, port in ports.items() if name != "portal"}}
    return [subprocess.Popen([sys.executable, "-m", "services.cli", "run", name], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for name in ports]


def sign_in(portal: str, login: str) -> requests.Session:
    client = requests.Session()
    form = client.get(f"{portal}/dev/sign-in", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    client.post(f"{portal}/dev/sign-in", data={"login": login, "csrf_token": token}, timeout=10)
    return client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--tickets", type=int, default=5, help="tickets per person")
    parser.add_argument("--port", type=int, default=18100)
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/portal.json")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgresql://127.0.0.1/guichet")
    url = with_database(base, "guichet_bench_portal")
    drop_database(url)
    prepare_database(url)
    load_catalogue(url)
    ports = {name: args.port + i for i, name in enumerate(SERVICES)}
    processes = start(url, ports)
    api, portal = f"http://127.0.0.1:{ports['tickets']}", f"http://127.0.0.1:{ports['portal']}"
    samples: dict[str, list[float]] = {"portal /": [], "portal ticket": [], "api list": [], "api ticket+history": []}
    errors: dict[str, int] = dict.fromkeys(samples, 0)
    lock = threading.Lock()
    try:
        for port in ports.values():
            wait_ready(port)
        settings = Settings.from_env({"GUICHET_JWT_SECRET": SECRET})
        people = []
        for i in range(args.clients):
            login = f"bench{i}"
            token = issue_token(settings, sub=login, email=f"{login}@univ.example", establishment="0540001A")
            headers = {"Authorization": f"Bearer {token}"}
            tickets = []
            for n in range(args.tickets):
                answer = requests.post(f"{api}/api/v1/tickets", headers=headers, timeout=10, json={
                    "category_id": "ent-connexion", "subject": f"Connexion impossible {n}",
                    "description": "Écran blanc après l'authentification."})
                answer.raise_for_status()
                tickets.append(answer.json())
            people.append((sign_in(portal, login), headers, tickets))
        stop_at = time.monotonic() + args.seconds

        def timed(kind: str, call) -> None:  # noqa: ANN001 - a request
            started = time.perf_counter()
            try:
                ok = call()
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                if ok:
                    samples[kind].append(elapsed)
                else:
                    errors[kind] += 1

        def client(session: requests.Session, headers: dict[str, str], tickets: list[dict]) -> None:
            api_session = requests.Session()
            i = 0
            while time.monotonic() < stop_at:
                ticket = tickets[i % len(tickets)]
                i += 1
                timed("portal /", lambda: session.get(f"{portal}/", timeout=10).status_code == 200)
                timed("portal ticket", lambda t=ticket: session.get(f"{portal}/tickets/{t['number']}",
                                                                    timeout=10).status_code == 200)
                timed("api list", lambda: api_session.get(f"{api}/api/v1/tickets?scope=mine&limit=20",
                                                          headers=headers, timeout=10).status_code == 200)
                timed("api ticket+history", lambda t=ticket: all(
                    api_session.get(f"{api}/api/v1/tickets/{t['id']}{suffix}", headers=headers,
                                    timeout=10).status_code == 200 for suffix in ("", "/history")))

        threads = [threading.Thread(target=client, args=person) for person in people]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        drop_database(url)
    result = {
        kind: {"requests": len(values), "errors": errors[kind], "p50_ms": round(percentile(values, 50) * 1000, 1),
               "p99_ms": round(percentile(values, 99) * 1000, 1)}
        for kind, values in samples.items()
    }
    result["_run"] = {"clients": args.clients, "seconds": args.seconds, "tickets_per_person": args.tickets}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{'':22} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, row in result.items():
        if not kind.startswith("_"):
            print(f"{kind:22} {row['requests']:>9} {row['errors']:>7} {row['p50_ms']:>8} {row['p99_ms']:>8}")
    print("(a portal ticket page = the API's ticket + history + the owner's latest tickets + the feed's count)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
