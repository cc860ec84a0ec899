"""The same requests through the real HTTP stack: gunicorn with the
project's settings (DEBUG off, a real SECRET_KEY, the whole middleware),
started here on 127.0.0.1 and stopped at the end.

gunicorn runs as it would behind the TLS proxy of docs/deploy.md:
DJANGO_BEHIND_PROXY=1, and every request carries X-Forwarded-Proto: https
(plain HTTP would be redirected to HTTPS, as it must be in production).
Each client has its own logged-in session (the app saves the session on
every request, so clients sharing one would queue on its row).

Per endpoint: sequential requests (one at a time), then 50 concurrent
clients for a fixed time, each sending its next request when the last one
is answered. gunicorn's sync workers close every connection, so each
request opens a new TCP connection, as a client behind nginx does to its
upstream. The client is plain asyncio in this process: it shares the two
cores with gunicorn and PostgreSQL, and its CPU time is reported.

Endpoints: the floors (`/bench/floor`: a constant response through the
whole middleware; `/bench/floor-auth`: the same behind login), `/healthz`
(one `SELECT 1`), the coding page (rotating over sections across the
course), and the first page of all segments of the busiest code.

Prints one JSON line per endpoint ("http_<endpoint>").
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common

# A request not answered within this counts as an error (status 0), as
# nginx's proxy_read_timeout in docs/deploy.md would cut it.
REQUEST_TIMEOUT = 60.0
MAX_REQUESTS_PER_PHASE = 200_000  # a bound, whatever the duration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """gunicorn serving balint.wsgi with the bench settings, on loopback only."""

    def __init__(self, workers: int, log_dir: str):
        self.port = free_port()
        self.workers = workers
        self.log = os.path.join(log_dir, "gunicorn.log")
        self.proc = None

    def start(self) -> None:
        env = dict(os.environ)
        env.update({
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_BEHIND_PROXY": "1",
            "DJANGO_DEBUG": "0",
            "LOG_LEVEL": "WARNING",
        })
        # The key the sessions were made with (setup_django or the runner set
        # it): the login's session hash is signed with it.
        env["DJANGO_SECRET_KEY"] = os.environ["DJANGO_SECRET_KEY"]
        gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [gunicorn, "balint.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
                 "--workers", str(self.workers), "--worker-class", "sync", "--timeout", "60",
                 "--graceful-timeout", "5", "--error-logfile", "-", "--log-level", "warning",
                 "--forwarded-allow-ips", "127.0.0.1"],
                cwd=common.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited with {self.proc.returncode}; see {self.log}")
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{self.port}/bench/floor",
                                                 headers={"X-Forwarded-Proto": "https"})
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"gunicorn did not answer within 60 s; see {self.log}")

    def pids(self) -> list[int]:
        """The master and its workers."""
        if self.proc is None:
            return []
        out = [self.proc.pid]
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                out += [int(p) for p in f.read().split()]
        except OSError:
            pass
        return out

    def cpu_seconds(self) -> float:
        return sum(process_cpu(pid) for pid in self.pids())

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # the master stops its workers
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def process_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def system_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / os.sysconf("SC_CLK_TCK"), total / os.sysconf("SC_CLK_TCK")


async def get(port: int, path: str, cookie: str | None) -> tuple[int, float, int]:
    """One GET on a new connection: (status, seconds, body bytes). Status 0 means a transport error."""
    t = time.perf_counter()
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "X-Forwarded-Proto: https",
             "User-Agent: balint-bench", "Connection: close"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), REQUEST_TIMEOUT)
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = await asyncio.wait_for(reader.read(-1), REQUEST_TIMEOUT)
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
        head, _, body = data.partition(b"\r\n\r\n")
        return status, time.perf_counter() - t, len(body)
    except (OSError, asyncio.TimeoutError, ValueError, IndexError):
        return 0, time.perf_counter() - t, 0
    finally:
        if writer is not None:
            writer.close()


async def sequential(port: int, paths, cookie: str, count: int, max_seconds: float) -> dict:
    """`count` requests one after another, or as many as fit in max_seconds."""
    durations, errors = [], 0
    t0 = time.perf_counter()
    while len(durations) < count and (len(durations) < 5 or time.perf_counter() - t0 < max_seconds):
        status, seconds, _size = await get(port, next(paths), cookie)
        durations.append(seconds)
        errors += status != 200
    elapsed = time.perf_counter() - t0
    return {**common.summary_ms(durations, "seq_"), "seq_rps": round(len(durations) / elapsed, 1),
            "seq_errors": errors, "seq_requests": len(durations)}


async def concurrent(port: int, paths, cookies: list[str], seconds: float, server: Gunicorn) -> dict:
    durations, statuses = [], {}
    stop_at = time.perf_counter() + seconds
    budget = itertools.count()

    async def client(cookie):
        while time.perf_counter() < stop_at and next(budget) < MAX_REQUESTS_PER_PHASE:
            status, took, _size = await get(port, next(paths), cookie)
            durations.append(took)
            statuses[status] = statuses.get(status, 0) + 1

    cpu_self0 = time.process_time()
    cpu_server0 = server.cpu_seconds()
    busy0, total0 = system_busy()
    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in cookies))
    elapsed = time.perf_counter() - t0
    busy1, total1 = system_busy()
    ok = statuses.get(200, 0)
    return {
        **common.summary_ms(durations, "conc_"),
        "conc_rps": round(ok / elapsed, 1),
        "conc_requests": len(durations),
        "conc_errors": len(durations) - ok,
        "conc_elapsed_s": round(elapsed, 2),
        "conc_server_cpu_s": round(server.cpu_seconds() - cpu_server0, 2),
        "conc_client_cpu_s": round(time.process_time() - cpu_self0, 2),
        "conc_machine_busy_cores": round((busy1 - busy0) / elapsed, 2),
        "conc_machine_cores": round((total1 - total0) / elapsed, 2),
        "_statuses": statuses,
    }


def postmaster_started() -> str:
    """When PostgreSQL last started: a change during a phase means something
    else on the machine restarted it, and that phase's errors are its 503s."""
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_postmaster_start_time()")
            return str(cursor.fetchone()[0])
    except Exception as error:  # down right now: that is a restart too
        return f"unavailable ({type(error).__name__})"
    finally:
        connection.close()


def run(workers: int, clients: int, seconds: float, seq_count: int) -> list[dict]:
    from django.conf import settings
    from django.db import connections
    from django.urls import reverse

    world = common.bench_world()
    course = world["course"]
    notes = common.notes_loaded(course)
    cookies = []
    for _ in range(clients):
        c = common.secure_client(world["researcher"])
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={c.cookies[settings.SESSION_COOKIE_NAME].value}")
    sections = common.sample_sections(course, 100)
    search = reverse("analysis:segment_search", args=[course.pk]) + f"?codes={world['code'].pk}&page=1"
    endpoints = {
        "floor": ["/bench/floor"],
        "floor_auth": ["/bench/floor-auth"],
        "healthz": ["/healthz"],
        "coding_page": [reverse("analysis:coding_page", args=[pk]) for pk in sections],
        "segments_first_page": [search],
    }
    connections.close_all()  # the server has its own; this process only looks in between phases

    log_dir = tempfile.mkdtemp(prefix="balint-bench-gunicorn-")
    server = Gunicorn(workers, log_dir)
    results = {}
    try:
        server.start()
        for name, paths in endpoints.items():
            started = postmaster_started()
            rotation = itertools.cycle(paths)
            # Warm every worker: compiled templates, open database connections.
            asyncio.run(sequential(server.port, rotation, cookies[0], max(20, 4 * workers), seconds))
            seq = asyncio.run(sequential(server.port, rotation, cookies[0], seq_count, min(seconds, 5.0)))
            conc = asyncio.run(concurrent(server.port, rotation, cookies, seconds, server))
            results[name] = {**seq, **conc, "_restarted": postmaster_started() != started}
    finally:
        server.stop()
    shutil.rmtree(log_dir, ignore_errors=True)  # kept only when something failed, for its log
    for metrics in results.values():
        # gunicorn's CPU per answered request: other load on the machine
        # slows everything, but hardly changes this (PostgreSQL's CPU is not in it).
        done = max(1, metrics["conc_requests"])
        metrics["conc_server_cpu_ms_per_request"] = round(metrics["conc_server_cpu_s"] * 1000 / done, 2)
    lines = []
    floor_cpu = results["floor"]["conc_server_cpu_ms_per_request"]
    floor_rps = results["floor"]["conc_rps"]
    floor_auth_rps = results["floor_auth"]["conc_rps"]
    for name, metrics in results.items():
        statuses = metrics.pop("_statuses")
        restarted = metrics.pop("_restarted")
        metrics["conc_rps_ratio_to_floor"] = round(metrics["conc_rps"] / floor_rps, 3) if floor_rps else None
        metrics["conc_rps_ratio_to_floor_auth"] = (round(metrics["conc_rps"] / floor_auth_rps, 3)
                                                   if floor_auth_rps else None)
        metrics["conc_cpu_ratio_to_floor"] = round(metrics["conc_server_cpu_ms_per_request"] / floor_cpu, 1)
        lines.append(common.emit(
            f"http_{name}", notes, metrics,
            units={"seq_errors": "count", "seq_requests": "count", "conc_requests": "count",
                   "conc_errors": "count", "conc_server_cpu_s": "CPU s", "conc_client_cpu_s": "CPU s",
                   "conc_machine_busy_cores": "cores", "conc_machine_cores": "cores",
                   "conc_rps_ratio_to_floor": "x", "conc_rps_ratio_to_floor_auth": "x",
                   "conc_server_cpu_ms_per_request": "CPU ms", "conc_cpu_ratio_to_floor": "x"},
            statuses={str(k): v for k, v in sorted(statuses.items())}, postgres_restarted=restarted,
            workers=workers, clients=clients, duration_s=seconds, path=endpoints[name][0],
            how="gunicorn sync workers on 127.0.0.1 behind no proxy (X-Forwarded-Proto: https); asyncio client, "
                "new connection per request; conc_* = clients in parallel for duration_s",
        ))
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_WORKERS", "3")))
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--sequential", type=int, default=200,
                    help="sequential requests per endpoint (fewer if they take longer than 5 s)")
    args = ap.parse_args(argv)
    if not 1 <= args.clients <= 200 or not 0 < args.seconds <= 60:
        raise SystemExit("Keep it bounded: 1-200 clients, at most 60 s per phase.")
    common.setup_django()
    run(args.workers, args.clients, args.seconds, args.sequential)


if __name__ == "__main__":
    main()
