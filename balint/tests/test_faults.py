"""Fault tests: the app under real service failures, on loopback.

- PostgreSQL restarted while a real gunicorn serves reads and multi-row writes:
  every answer is a success or a friendly error page, the app recovers by
  itself within seconds, and no write is left half-done.
- PostgreSQL stopped: pages answer 503 with a page a person can read, /healthz
  says the database is down, and the app comes back by itself once it starts.
- Redis stopped: pages keep working; a report request is saved as queued and
  says background work is unavailable; once Redis is back a real worker
  builds it.
- Backup and restore with pg_dump/pg_restore, as the README documents: the
  restored database equals the original, table by table.

These stop and restart the services the whole test run shares: they need the
permission to do so (root, or the cluster's owner) and loopback services.
Locally a missing piece skips them with the reason; in CI (CI set) it fails.
Whatever happens, each test leaves PostgreSQL and Redis running.

The worker-killing tests are in analysis/tests/test_report_worker.py; the 50
concurrent savers of one note in fieldnotes/tests/test_concurrency.py.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote, urlencode, urlparse

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections
from django.template import loader
from django.test import Client
from django.utils import timezone
from django.utils.crypto import get_random_string

from balint import testing
from fieldnotes import services as note_services
from fieldnotes.models import FieldNote, NoteSection, NoteVersion, SectionRevision
from sessions.models import AuditEvent, Meeting

SERVER_START_TIMEOUT = 30  # seconds for gunicorn to answer /healthz
RECOVERY_TIMEOUT = 15  # seconds after the database is back for the app to answer again
REQUEST_TIMEOUT = 20  # seconds for any one HTTP request; a hang is a failure
SERVICE_TIMEOUT = 60  # seconds for pg_ctlcluster / pg_dump / pg_restore / redis to do their part

FRIENDLY_503 = "Balint groups is briefly unavailable"
FRIENDLY_500 = "Something went wrong on our side"
# Things a user must never see in an error page.
LEAKS = ("Traceback", "OperationalError", "InterfaceError", "psycopg2", 'File "/', "Exception Value")


def wait_until(predicate, what: str, timeout: float, interval: float = 0.2, log=None):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds
    (with `log()`, a server's log tail, in the message)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"Timed out after {timeout}s waiting for {what}" + (f"\n{log()}" if log else ""))
        time.sleep(interval)


def pg_env() -> dict:
    """Environment for the PostgreSQL client tools, pointed at the test database's server."""
    db = connection.settings_dict
    env = {**os.environ, "PGHOST": db["HOST"] or "", "PGPORT": str(db["PORT"] or 5432), "PGUSER": db["USER"] or ""}
    if db["PASSWORD"]:
        env["PGPASSWORD"] = db["PASSWORD"]
    return env


def is_loopback(host: str) -> bool:
    return host in ("", "localhost", "127.0.0.1", "::1") or host.startswith("/")


# --- PostgreSQL --------------------------------------------------------------------------


@dataclass
class Cluster:
    """The Debian PostgreSQL cluster (postgresql-common) that serves the test database."""

    version: str
    name: str
    port: int

    def ctl(self, action: str, *options: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, action, *options],
            capture_output=True, text=True, timeout=SERVICE_TIMEOUT,
        )

    def accepts_connections(self) -> bool:
        import psycopg2

        db = connection.settings_dict
        try:
            conn = psycopg2.connect(
                dbname=db["NAME"], user=db["USER"] or None, password=db["PASSWORD"] or None,
                host=db["HOST"] or None, port=db["PORT"] or None, connect_timeout=1,
            )
        except psycopg2.OperationalError:
            return False
        conn.close()
        return True

    def wait_ready(self) -> None:
        wait_until(self.accepts_connections, "PostgreSQL to accept connections", SERVICE_TIMEOUT)

    def restart(self) -> None:
        done = self.ctl("restart", "-m", "fast")
        assert done.returncode == 0, f"pg_ctlcluster restart failed: {done.stdout}{done.stderr}"

    @contextmanager
    def stopped(self):
        """PostgreSQL stopped for the block; started again afterwards, whatever happened."""
        try:
            done = self.ctl("stop", "-m", "fast")
            assert done.returncode == 0, f"pg_ctlcluster stop failed: {done.stdout}{done.stderr}"
            yield
        finally:
            self.ensure_running()

    def ensure_running(self) -> None:
        if not self.accepts_connections():
            self.ctl("start")  # exit 2 "already running" is fine too
            self.wait_ready()


@pytest.fixture
def postgres(transactional_db):
    """The cluster of the test database, which this test may stop and restart.

    Committed data (transactional_db) is what survives a restart, and what the
    app server, a separate process, can see. The test process's own connection
    is closed around every outage and reconnects on next use.
    """
    testing.require(connection.vendor == "postgresql", "needs PostgreSQL (DATABASE_URL): this test restarts the database")
    db = connection.settings_dict
    testing.require(is_loopback(db["HOST"] or ""), f"the database is on {db['HOST']}, not this machine: it cannot be restarted")
    testing.require(bool(shutil.which("pg_lsclusters") and shutil.which("pg_ctlcluster")),
            "pg_lsclusters/pg_ctlcluster (postgresql-common) not found: cannot restart PostgreSQL")
    port = int(db["PORT"] or 5432)
    listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=30)
    found = [line.split() for line in listing.stdout.splitlines() if len(line.split()) >= 5]
    mine = [row for row in found if row[2] == str(port)]
    testing.require(bool(mine), f"no local PostgreSQL cluster listens on port {port}: cannot restart it")
    version, name, _, _, owner = mine[0][:5]
    me = pwd.getpwuid(os.geteuid()).pw_name
    testing.require(me in ("root", owner), f"restarting PostgreSQL needs root or {owner}; this runs as {me}")
    cluster = Cluster(version=version, name=name, port=port)
    try:
        yield cluster
    finally:
        connections.close_all()
        cluster.ensure_running()


# --- The app under a real HTTP server ----------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict
    body: str

    def json(self):
        return json.loads(self.body)


class Browser:
    """A small HTTP client with its own cookies (stdlib only), one per simulated user."""

    def __init__(self, port: int, cookies: dict | None = None):
        self.port = port
        self.cookies = dict(cookies or {})
        self.csrf = get_random_string(32)  # a valid CSRF secret: sent as cookie and header
        self.cookies.setdefault(settings.CSRF_COOKIE_NAME, self.csrf)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            sent = {
                "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                "X-CSRFToken": self.cookies[settings.CSRF_COOKIE_NAME],
                **(headers or {}),
            }
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            text = response.read().decode("utf-8", errors="replace")
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    for morsel in SimpleCookie(value).values():
                        self.cookies[morsel.key] = morsel.value
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, text)
        finally:
            conn.close()

    def get(self, path: str) -> Answer:
        return self.request("GET", path, headers={"Accept": "text/html"})

    def post_form(self, path: str, data: dict) -> Answer:
        return self.request("POST", path, body=urlencode(data).encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})

    def post_json(self, path: str, data: dict) -> Answer:
        return self.request("POST", path, body=json.dumps(data).encode(),
                            headers={"Content-Type": "application/json", "Accept": "application/json"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppServer:
    port: int
    log: Path
    process: subprocess.Popen

    def browser_for(self, user) -> Browser:
        """A logged-in browser: the session is made here and stored in the test database."""
        client = Client()
        client.force_login(user)
        return Browser(self.port, {settings.SESSION_COOKIE_NAME: client.cookies[settings.SESSION_COOKIE_NAME].value})

    def healthz(self) -> Answer | None:
        try:
            return Browser(self.port).get("/healthz")
        except OSError:
            return None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else "(no log)"


@pytest.fixture
def app_server(postgres, tmp_path):
    """gunicorn serving the app from the test database, as in production: several
    worker processes with threads, persistent health-checked connections, DEBUG off."""
    testing.require(_importable("gunicorn"), "gunicorn is not installed in this environment")
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        # The test settings: plain-HTTP cookies and the test password hasher, DEBUG still off.
        "DJANGO_SETTINGS_MODULE": "balint.settings_test",
        "DATABASE_URL": testing.database_url(),
        "DATABASE_CONN_MAX_AGE": "60",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_DEBUG", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "balint.wsgi:application",
                "--bind", f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "gthread", "--threads", "4",
                "--timeout", "30", "--graceful-timeout", "5", "--access-logfile", "-", "--error-logfile", "-",
            ],
            cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    server = AppServer(port=port, log=log, process=process)
    try:
        def up():
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited with {process.returncode}:\n{server.log_tail()}")
            answer = server.healthz()
            return answer is not None and answer.status == 200
        wait_until(up, "gunicorn to answer /healthz", SERVER_START_TIMEOUT)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def assert_friendly(answer: Answer, what: str) -> None:
    """An error page a person can read, with nothing of the machinery showing."""
    for leak in LEAKS:
        assert leak not in answer.body, f"{what}: the error page shows {leak!r}:\n{answer.body[:2000]}"
    if "application/json" in answer.headers.get("content-type", ""):
        message = answer.json().get("message", "")
        assert "try again" in message.lower(), f"{what}: no readable message in {answer.body[:500]}"
    elif answer.status == 503:
        assert FRIENDLY_503 in answer.body, f"{what}: not the friendly 503 page:\n{answer.body[:2000]}"
    else:
        assert FRIENDLY_500 in answer.body, f"{what}: not the friendly 500 page:\n{answer.body[:2000]}"


# --- What the users do while the database restarts ---------------------------------------

SERIES_LENGTH = 4


def series_form(n: int) -> dict:
    """A series of SERIES_LENGTH weekly sessions, told apart by its place."""
    return {
        "first_date": (date(2031, 1, 7) + timedelta(days=n)).isoformat(), "start_time": "17:00",
        "count": str(SERIES_LENGTH), "every_weeks": "1", "duration_minutes": "90",
        "place": f"Fault room {n}", "skip_dates": "", "schedule_anyway": "on",
    }


@dataclass
class Load:
    """Users working against the server from threads, recording every answer."""

    outcomes: list = field(default_factory=list)  # (kind, started, finished, status or None, detail)
    series_sent: dict = field(default_factory=dict)  # n -> status (None: no answer)
    autosaves: list = field(default_factory=list)  # (status, version saved or None, texts sent)
    stop: threading.Event = field(default_factory=threading.Event)

    def record(self, kind: str, started: float, answer: Answer | None, error: str = ""):
        self.outcomes.append((kind, started, time.monotonic(), answer.status if answer else None,
                              answer if answer else error))

    def successes(self, kind: str) -> int:
        return sum(1 for k, _, _, status, _ in self.outcomes if k == kind and status in (200, 302))


def run_reader(load: Load, browser: Browser, paths: list[str]) -> None:
    i = 0
    while not load.stop.is_set():
        started = time.monotonic()
        try:
            load.record("read", started, browser.get(paths[i % len(paths)]))
        except (OSError, http.client.HTTPException) as error:
            load.record("read", started, None, repr(error))
        i += 1
        time.sleep(0.01)


def run_series_writer(load: Load, browser: Browser, group_pk: int) -> None:
    n = 0
    while not load.stop.is_set():
        started = time.monotonic()
        load.series_sent[n] = None
        try:
            answer = browser.post_form(f"/groups/{group_pk}/sessions/series/", series_form(n))
        except (OSError, http.client.HTTPException) as error:
            load.record("series", started, None, repr(error))
        else:
            load.series_sent[n] = answer.status
            load.record("series", started, answer)
        n += 1
        time.sleep(0.02)


def run_autosaver(load: Load, browser: Browser, note_pk: int, section_ids: list[int]) -> None:
    version, n = 0, 0
    while not load.stop.is_set():
        texts = {str(pk): f"Saved while the database restarts, save {n}, section {pk}: ääni" for pk in section_ids}
        started = time.monotonic()
        try:
            answer = browser.post_json(f"/notes/{note_pk}/autosave/", {"version": version, "sections": texts})
        except (OSError, http.client.HTTPException) as error:
            load.record("autosave", started, None, repr(error))
        else:
            load.record("autosave", started, answer)
            saved = None
            if answer.status in (200, 409) and "application/json" in answer.headers.get("content-type", ""):
                data = answer.json()
                if answer.status == 200:
                    saved = version = data["version"]
                elif data.get("error") == "conflict":
                    # Our previous save landed but its answer was lost: the editor shows both
                    # texts and goes on from the saved version, as the page does.
                    version = data["version"]
            load.autosaves.append((answer.status, saved, texts))
        n += 1
        time.sleep(0.02)


def acceptable(kind: str, answer: Answer) -> bool:
    if answer.status in (200, 302):
        return True
    if kind == "autosave" and answer.status == 409:
        return answer.json().get("error") == "conflict"
    return answer.status in (500, 503)


@pytest.mark.faults
def test_postgresql_restart_under_load_fails_friendly_recovers_and_leaves_no_partial_write(
    postgres, app_server, world
):
    # Given: a leader scheduling series of sessions (several rows and an audit
    # event per request), a co-leader autosaving a two-section note (a version,
    # sections and their revisions per request), and two people reading pages.
    held = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - timedelta(hours=3),
                                  status=Meeting.Status.HELD)
    note = note_services.note_open(meeting=held, author=world.coleader1)
    section_ids = sorted(note.sections.exclude(kind=NoteSection.Kind.CASE).values_list("pk", flat=True))
    leader, coleader = app_server.browser_for(world.leader), app_server.browser_for(world.coleader1)
    reader1, reader2 = app_server.browser_for(world.leader), app_server.browser_for(world.coleader2)
    pages = ["/", f"/groups/{world.group.pk}/", f"/sessions/{held.pk}/"]
    load = Load()
    threads = [
        threading.Thread(target=run_reader, args=(load, reader1, pages), daemon=True),
        threading.Thread(target=run_reader, args=(load, reader2, pages[::-1]), daemon=True),
        threading.Thread(target=run_series_writer, args=(load, leader, world.group.pk), daemon=True),
        threading.Thread(target=run_autosaver, args=(load, coleader, note.pk, section_ids), daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: all(load.successes(k) for k in ("read", "series", "autosave")),
                   "every kind of request to succeed once before the restart", 20, log=app_server.log_tail)

        # When: PostgreSQL restarts (fast shutdown: open transactions are rolled back,
        # every connection is cut, new ones are refused until it is up again).
        connections.close_all()
        restart_started = time.monotonic()
        postgres.restart()
        restart_finished = time.monotonic()

        # Then: the app answers again by itself within seconds.
        def healthy():
            answer = app_server.healthz()
            return answer is not None and answer.status == 200
        wait_until(healthy, "/healthz to be 200 again after the restart", RECOVERY_TIMEOUT, log=app_server.log_tail)
        recovered = time.monotonic()
        time.sleep(1.5)  # and keeps working under the same load
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=REQUEST_TIMEOUT + 5)
    assert not [t for t in threads if t.is_alive()], "a client thread hung"
    connections.close_all()  # this process's connection died in the restart too

    # Every request got an answer: a success, an autosave conflict (a save whose
    # answer was lost), or a friendly error page; none hung, none showed a traceback.
    assert load.outcomes
    for kind, started, _, status, detail in load.outcomes:
        assert status is not None, f"{kind} got no answer at all: {detail}"
        assert acceptable(kind, detail), f"{kind} answered {status}:\n{detail.body[:2000]}"
        if status >= 500:
            assert_friendly(detail, f"{kind} during the restart")
    assert any(restart_started <= started <= restart_finished for _, started, _, _, _ in load.outcomes), \
        "no request was made while PostgreSQL restarted"
    errors_before = [o for o in load.outcomes if o[3] >= 500 and o[2] < restart_started]
    assert not errors_before, "errors before the restart: the test setup is wrong"

    # After recovery, every worker thread of the server has a working connection:
    # every one of many requests succeeds, reads and writes alike.
    for _ in range(16):
        answer = leader.get("/")
        assert answer.status == 200, answer.body[:2000]
    answer = leader.post_form(f"/groups/{world.group.pk}/sessions/series/", series_form(10_000))
    assert answer.status == 302, answer.body[:2000]
    current = FieldNote.objects.get(pk=note.pk).version
    answer = coleader.post_json(f"/notes/{note.pk}/autosave/",
                                {"version": current, "sections": {str(pk): "after" for pk in section_ids}})
    assert answer.status == 200, answer.body[:2000]
    recovered_in = recovered - restart_finished

    # No partial write: each series is all there (its sessions and its audit
    # event) or not at all; session numbers have no gaps.
    meetings = list(Meeting.objects.filter(group=world.group).order_by("number"))
    assert [m.number for m in meetings] == list(range(1, len(meetings) + 1))
    events = {
        e.changes["place"]: e for e in AuditEvent.objects.filter(action="meeting.series_create")
    }
    for n, status in [*load.series_sent.items(), (10_000, 302)]:
        place = series_form(n)["place"]
        rows = [m for m in meetings if m.place == place]
        assert len(rows) in (0, SERIES_LENGTH), f"series {n} is half there: {len(rows)} sessions"
        if status == 302:
            assert len(rows) == SERIES_LENGTH, f"series {n} was confirmed but is missing"
        if rows:
            assert place in events, f"series {n} has sessions but no audit event"
            assert sorted(s["id"] for s in events[place].changes["sessions"]) == sorted(m.pk for m in rows)
        else:
            assert place not in events, f"series {n} has an audit event but no sessions"

    # The note: one version row per version, every section's text is its latest
    # revision, every revision belongs to a version, and every confirmed save is there.
    note.refresh_from_db()
    versions = list(NoteVersion.objects.filter(note=note).order_by("version").values_list("version", flat=True))
    assert versions == list(range(1, note.version + 1))
    for section in NoteSection.objects.filter(pk__in=section_ids):
        revisions = list(SectionRevision.objects.filter(section=section).order_by("revision"))
        assert [r.revision for r in revisions] == list(range(1, section.revision + 1))
        assert section.text == revisions[-1].text
        # each save wrote both sections: revision i belongs to version i
        assert [r.note_version.version for r in revisions] == versions
    for status, saved, texts in load.autosaves:
        if status == 200:
            got = dict(SectionRevision.objects.filter(note_version__note=note, note_version__version=saved)
                       .values_list("section_id", "text"))
            assert got == {int(pk): text for pk, text in texts.items()}, f"confirmed save {saved} is not all there"

    statuses = Counter(o[3] for o in load.outcomes)
    print(f"\n{len(load.outcomes)} requests {dict(sorted(statuses.items()))} around a restart of "
          f"{restart_finished - restart_started:.1f}s; healthy again {recovered_in:.1f}s after it")


@pytest.mark.faults
def test_postgresql_down_answers_a_friendly_503_and_the_app_comes_back_by_itself(postgres, app_server, world):
    held = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - timedelta(hours=3),
                                  status=Meeting.Status.HELD)
    note = note_services.note_open(meeting=held, author=world.coleader1)
    discussion = note.sections.get(kind=NoteSection.Kind.DISCUSSION)
    leader, coleader = app_server.browser_for(world.leader), app_server.browser_for(world.coleader1)
    assert leader.get("/").status == 200  # the server holds live connections now

    connections.close_all()
    with postgres.stopped():
        page = leader.get(f"/groups/{world.group.pk}/")
        assert page.status == 503
        assert_friendly(page, "a page while the database is down")
        assert page.headers.get("retry-after")
        assert "no-store" in page.headers.get("cache-control", "")

        write = leader.post_form(f"/groups/{world.group.pk}/sessions/series/", series_form(1))
        assert write.status == 503
        assert_friendly(write, "a form post while the database is down")

        autosave = coleader.post_json(f"/notes/{note.pk}/autosave/",
                                      {"version": 0, "sections": {str(discussion.pk): "typed while it was down"}})
        assert autosave.status == 503
        assert autosave.json()["error"] == "unavailable"
        assert_friendly(autosave, "an autosave while the database is down")

        health = Browser(app_server.port).get("/healthz")
        assert health.status == 503
        assert health.json()["database"]["ok"] is False
    started = time.monotonic()

    def page_works():
        return leader.get(f"/groups/{world.group.pk}/").status == 200
    wait_until(page_works, "the group page to work again", RECOVERY_TIMEOUT, log=app_server.log_tail)
    assert time.monotonic() - started < RECOVERY_TIMEOUT
    assert Browser(app_server.port).get("/healthz").status == 200

    connections.close_all()
    assert not Meeting.objects.filter(place=series_form(1)["place"]).exists()  # the refused write left nothing
    assert FieldNote.objects.get(pk=note.pk).version == 0
    # and the text typed while it was down is saved once it is back
    autosave = coleader.post_json(f"/notes/{note.pk}/autosave/",
                                  {"version": 0, "sections": {str(discussion.pk): "typed while it was down"}})
    assert autosave.status == 200, autosave.body
    discussion.refresh_from_db()
    assert discussion.text == "typed while it was down"


def test_error_pages_render_without_the_database(rf, db, django_assert_num_queries):
    """500.html and 503.html are shown when the database is away: they must not query it."""
    from django.views.defaults import server_error

    with django_assert_num_queries(0):
        response = server_error(rf.get("/"))
        page = loader.render_to_string("503.html")
    assert response.status_code == 500
    assert FRIENDLY_500 in response.content.decode()
    assert FRIENDLY_503 in page
    assert "{%" not in page and "{{" not in page


# --- Redis -------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """The Redis on loopback that REDIS_URL names, which this test may stop and start again."""

    host: str
    port: int
    start_command: list[str]

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(host=self.host, port=self.port, socket_connect_timeout=1, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    @contextmanager
    def stopped(self):
        """Redis stopped (nothing saved) for the block; always started again afterwards, and
        answering PONG, before the test goes on."""
        try:
            subprocess.run(["redis-cli", "-h", self.host, "-p", str(self.port), "shutdown", "nosave"],
                           capture_output=True, timeout=SERVICE_TIMEOUT)
            wait_until(lambda: not self.ping(), "Redis to stop", SERVICE_TIMEOUT)
            yield
        finally:
            self.ensure_running()

    def ensure_running(self) -> None:
        if self.ping():
            return
        done = subprocess.run(self.start_command, capture_output=True, text=True, timeout=SERVICE_TIMEOUT)
        assert done.returncode == 0, f"{' '.join(self.start_command)} failed:\n{done.stdout}{done.stderr}"
        wait_until(self.ping, "Redis to answer PONG again", SERVICE_TIMEOUT)


def redis_start_command(host: str, port: int) -> list[str]:
    """How this Redis was started, as CI starts it; its own directory, log file and bind
    addresses are kept when it tells them (CONFIG GET)."""
    import redis

    config = {"dir": "/var/lib/redis", "logfile": "/var/log/redis/ci.log", "bind": "127.0.0.1 -::1"}
    with suppress(redis.RedisError):
        told = redis.Redis(host=host, port=port, socket_connect_timeout=1, socket_timeout=1, decode_responses=True)
        for key in config:
            value = told.config_get(key).get(key)
            if value:
                config[key] = value
    return [
        "redis-server", "--daemonize", "yes", "--bind", *config["bind"].split(), "--port", str(port),
        "--save", "", "--appendonly", "no", "--dir", config["dir"], "--logfile", config["logfile"],
    ]


@pytest.fixture
def redis_server(transactional_db):
    url = os.environ.get("REDIS_URL", "")
    testing.require(bool(url), "REDIS_URL is not set: this test stops and starts Redis")
    testing.require(connection.vendor == "postgresql",
            "needs PostgreSQL (DATABASE_URL): the worker process cannot see SQLite's in-memory test database")
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
    testing.require(is_loopback(host), f"Redis is on {host}, not this machine: it cannot be stopped and started")
    testing.require(bool(shutil.which("redis-server") and shutil.which("redis-cli")),
            "redis-server/redis-cli not found: cannot stop and start Redis")
    server = RedisServer(host=host, port=port, start_command=redis_start_command(host, port))
    testing.require(server.ping(), f"Redis does not answer on {host}:{port}")
    try:
        yield server
    finally:
        server.ensure_running()


@contextmanager
def celery_worker(queue: str, log: Path):
    """A real Celery worker on its own queue, with production settings and the test database."""
    with log.open("wb") as out:
        process = subprocess.Popen(testing.worker_command(queue, queue), cwd=settings.BASE_DIR,
                                   env=testing.worker_env(MPLBACKEND="Agg"), stdout=out, stderr=subprocess.STDOUT)
    try:
        def ready():
            if process.poll() is not None:
                pytest.fail(f"The worker exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            return " ready." in log.read_text(errors="replace")
        wait_until(ready, "the Celery worker to start", SERVER_START_TIMEOUT)
        yield process
    finally:
        process.terminate()  # warm shutdown: finishes the current task
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_redis_stopped_pages_work_a_report_waits_queued_and_is_built_once_redis_is_back(
    redis_server, world, tmp_path, monkeypatch
):
    from analysis import jobs
    from analysis.models import Report
    from balint.celery import app as celery_app

    from analysis.models import Category, Code

    # A one-code codebook, so the .qdc export has something to write.
    category = Category.objects.create(course=world.course, name="Triggers", unit="case")
    Code.objects.create(course=world.course, category=category, name="Value conflict", created_by=world.researcher1)
    # Publish to the broker from this process (settings_test runs tasks eagerly), on a queue of our own.
    queue = f"test-faults-{uuid.uuid4().hex}"
    monkeypatch.setitem(jobs.PUBLISH_OPTIONS, "queue", queue)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    admin = Client()
    admin.force_login(world.admin)
    course = world.course

    try:
        with redis_server.stopped():
            # Pages keep working: nothing but background work needs Redis.
            for url in ["/", f"/courses/{course.pk}/", f"/groups/{world.group.pk}/",
                        f"/analysis/courses/{course.pk}/reports/"]:
                assert admin.get(url).status_code == 200, url
            health = admin.get("/healthz")
            assert health.status_code == 503
            assert health.json()["database"]["ok"] is True and health.json()["broker"]["ok"] is False

            # Requesting a report: saved as queued, and the page says why nothing runs yet,
            # without making the user wait on the dead broker.
            started = time.monotonic()
            response = admin.post(f"/analysis/courses/{course.pk}/reports/new/", {"kinds": ["data", "qdc"]},
                                  follow=True)
            took = time.monotonic() - started
            assert response.status_code == 200
            assert took < 10, f"the request waited {took:.1f}s on the broker"
            page = response.content.decode()
            assert "Background work is unavailable right now" in page
            report = Report.objects.get(course=course)
            assert report.status == Report.Status.QUEUED
            assert report.stage == jobs.UNAVAILABLE_STAGE
            assert jobs.UNAVAILABLE_STAGE in page  # the report's own page says it too

        # Redis is back (the queue is empty: the request never reached it).
        assert admin.get("/healthz").status_code == 200
        with celery_worker(queue, tmp_path / "worker.log"):
            # Beat's sweep hands over queued reports that have waited a minute;
            # this one has, as far as the sweep can tell (the clock is the edge we move).
            Report.objects.filter(pk=report.pk).update(requested_at=timezone.now() - jobs.ORPHAN_AFTER * 2)
            swept = jobs.report_sweep()
            assert swept["republished"] == 1 and swept["published"] == 1, swept

            def finished():
                row = Report.objects.values("status", "error").get(pk=report.pk)
                return row["status"] in (Report.Status.DONE, Report.Status.FAILED) and row
            row = wait_until(finished, "the report to be built by the worker", 60,
                             log=lambda: (tmp_path / "worker.log").read_text(errors="replace")[-3000:])
            log = (tmp_path / "worker.log").read_text(errors="replace")
            assert row["status"] == Report.Status.DONE, f"{row['error']}\n{log[-3000:]}"
    finally:
        celery_app.conf.task_always_eager = eager
        if redis_server.ping():
            testing.delete_queue(queue)

    report.refresh_from_db()
    assert report.attempts == 1 and report.worker.startswith(f"{queue}@")
    assert report.stage == "Done"
    assert {"codebook.qdc", "data.xlsx"} <= set(report.files.values_list("name", flat=True))
    page = admin.get(f"/analysis/reports/{report.pk}/").content.decode()
    assert "codebook.qdc" in page

# --- Backup and restore ------------------------------------------------------------------


def table_fingerprints(uri: str) -> dict[str, tuple[int, str]]:
    """{table: (rows, md5 of all its rows in a stable order)} for every table, and
    {"sequence <name>": (last value, "")} for every sequence (the next ids)."""
    import psycopg2

    conn = psycopg2.connect(uri, connect_timeout=5)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
            )
            tables = [name for (name,) in cursor.fetchall()]
            found = {}
            for table in tables:
                quoted = '"' + table.replace('"', '""') + '"'
                cursor.execute(
                    f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
                    f"FROM {quoted} AS t"
                )
                found[table] = cursor.fetchone()
            cursor.execute("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public'")
            for name, last_value in cursor.fetchall():
                found[f"sequence {name}"] = (last_value, "")
        return found
    finally:
        conn.close()


def database_uri(name: str) -> str:
    original = testing.database_url()
    return original[: original.rindex("/") + 1] + quote(name, safe="")


@pytest.mark.faults
def test_backup_and_restore_into_an_empty_database_give_back_every_row(transactional_db, world, tmp_path):
    testing.require(connection.vendor == "postgresql", "needs PostgreSQL (DATABASE_URL): backups are made with pg_dump")
    missing = [tool for tool in ("pg_dump", "pg_restore", "createdb", "dropdb") if not shutil.which(tool)]
    testing.require(not missing, f"PostgreSQL client tools not found: {', '.join(missing)}")
    # Given: the demo course (sessions, consent records, submitted notes, a
    # codebook, coded segments, memos) beside the fixture's course.
    call_command("seed_demo", "--allow-production", stdout=open(os.devnull, "w"))
    original_uri = testing.database_url()
    restored_name = f"{connection.settings_dict['NAME'][:30]}_restored_{uuid.uuid4().hex[:8]}"
    restored_uri = database_uri(restored_name)
    dump = tmp_path / "balint.dump"
    env = pg_env()

    def run(*command):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=SERVICE_TIMEOUT)
        assert done.returncode == 0, f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"

    # When: backed up and restored into a new, empty database, with the
    # README's commands.
    run("pg_dump", "--format=custom", f"--file={dump}", original_uri)
    try:
        run("createdb", restored_name)
        run("pg_restore", "--no-owner", "--exit-on-error", f"--dbname={restored_uri}", str(dump))

        # Then: every table has the same rows, byte for byte, and every
        # sequence goes on from the same id.
        original, restored = table_fingerprints(original_uri), table_fingerprints(restored_uri)
    finally:
        run("dropdb", "--if-exists", restored_name)

    from analysis.models import CodedSegment
    from fieldnotes.models import FieldNote as Note
    from sessions.models import Consent, Course

    for model in (Course, Note, NoteSection, CodedSegment, Consent, Meeting):
        table = model._meta.db_table
        assert original[table][0] > 0, f"{table} is empty: the test data does not exercise it"
        assert restored[table] == original[table], f"{table} differs after the restore"
    assert NoteSection.objects.exclude(text="").exists()
    assert restored == original
