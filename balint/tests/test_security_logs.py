"""What the logs say: who did what and when, and never note text, passwords or tokens.

The capture goes through the handler that settings.LOGGING configures (with
its redacting filter), at DEBUG level as if an operator had set
LOG_LEVEL=DEBUG, during a run of saves, logins, a password reset and calendar
feed requests. runserver's request lines and gunicorn's access log are checked
too, since both write the request path, and two paths carry a credential.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from balint.logging import REDACTED, RedactSecretsFilter, redact
from conftest import PASSWORD
from fieldnotes.services import note_open
from sessions.models import CalendarFeed, Meeting

ROOT = Path(__file__).resolve().parents[2]
NOTE_TEXT = "Potilas soitti joka yö, NOTE-TEXT-7f3a"
AMEND_REASON = "Corrected a detail, REASON-TEXT-91c2"
MEMO_TEXT = "A researcher's thought, MEMO-TEXT-55d1"
WRONG_PASSWORD = "wrong-guess-PASSWORD-0e4b"
NEW_PASSWORD = "a-new-secret-PASSWORD-c9d8"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture
def console_log():
    """What the configured console handler writes, at DEBUG level."""
    root = logging.getLogger()
    handlers = [h for h in root.handlers if any(isinstance(f, RedactSecretsFilter) for f in h.filters)]
    assert handlers, "settings.LOGGING's console handler has lost its redacting filter"
    stream = io.StringIO()
    old_streams = [h.setStream(stream) for h in handlers]
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.setLevel(old_level)
        for handler, old in zip(handlers, old_streams):
            handler.setStream(old)


def test_a_working_session_logs_who_did_what_and_when_but_no_secrets(world, console_log, mailoutbox):
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - timedelta(hours=2),
                                     status=Meeting.Status.HELD)
    note = note_open(meeting=meeting, author=world.coleader1)
    section = note.sections.get(kind="discussion")
    secrets = [NOTE_TEXT, AMEND_REASON, MEMO_TEXT, PASSWORD, WRONG_PASSWORD, NEW_PASSWORD]

    # Logins: a wrong password, then the right one.
    writer = Client()
    assert writer.post(reverse("login"), {"username": "coleader1", "password": WRONG_PASSWORD}).status_code == 200
    assert writer.post(reverse("login"), {"username": "coleader1", "password": PASSWORD}).status_code == 302
    secrets.append(writer.cookies[settings.SESSION_COOKIE_NAME].value)

    # Writing: autosave, the form's Save, submit, amend.
    autosave = reverse("fieldnotes:note_autosave", args=[note.pk])
    body = json.dumps({"version": 0, "sections": {str(section.pk): NOTE_TEXT}})
    assert writer.post(autosave, data=body, content_type="application/json").status_code == 200
    edit = {"version": 1, f"section-{section.pk}": NOTE_TEXT + " more"}
    assert writer.post(reverse("fieldnotes:note_edit", args=[note.pk]), edit).status_code == 302
    assert writer.post(reverse("fieldnotes:note_submit", args=[note.pk]), {"version": 2}).status_code == 302
    note.refresh_from_db()
    amend = {"version": note.version, f"section-{section.pk}": NOTE_TEXT + " fixed", "reason": AMEND_REASON}
    assert writer.post(reverse("fieldnotes:note_amend", args=[note.pk]), amend).status_code == 302
    # A refused save (bad JSON) and a conflict are logged as well, without their text.
    writer.post(autosave, data=b"{" + NOTE_TEXT.encode(), content_type="application/json")

    # A researcher's memo.
    researcher = Client()
    researcher.force_login(world.researcher1)
    researcher.post(reverse("analysis:memo_new", args=[world.course.pk]), {"title": "", "text": MEMO_TEXT})

    # Calendar feed: fetched, revoked, the old address fetched again (a 404 Django logs).
    feed = CalendarFeed.objects.create(user=world.coleader1)
    old_token = feed.token
    assert Client().get(reverse("sessions:feed_ics", args=[old_token])).status_code == 200
    writer.post(reverse("sessions:calendar_revoke"))
    feed.refresh_from_db()
    assert Client().get(reverse("sessions:feed_ics", args=[old_token])).status_code == 404
    assert Client().get(reverse("sessions:feed_ics", args=[feed.token])).status_code == 200
    secrets += [old_token, feed.token]

    # Password reset, through the e-mailed link.
    anonymous = Client()
    anonymous.post(reverse("password_reset"), {"email": "leader@example.org"})
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[-1].body).group(1)
    secrets.append(link.rstrip("/").rsplit("/", 1)[1])  # the token part
    page = anonymous.get(link, follow=True)
    set_url = page.redirect_chain[-1][0]
    anonymous.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert anonymous.post(reverse("login"), {"username": "leader", "password": NEW_PASSWORD}).status_code == 302

    # runserver's request line for a feed and a reset link, as its handler logs them.
    _log_like_runserver(f"GET {reverse('sessions:feed_ics', args=[feed.token])} HTTP/1.1", "200")
    _log_like_runserver(f"GET {link} HTTP/1.1", "302")

    output = console_log.getvalue()
    leaked = [secret for secret in secrets if secret in output]
    assert not leaked, f"in the log: {leaked}\n{output}"

    # Who did what, and when: one line per change, by user id.
    lines = output.splitlines()
    activity = [line for line in lines if " balint.activity " in line]
    assert all(TIMESTAMP.match(line) for line in activity)
    expected = [
        "user=- POST /accounts/login/ 200",
        f"user={world.coleader1.pk} POST /accounts/login/ 302",
        f"user={world.coleader1.pk} POST {autosave} 200",
        f"user={world.coleader1.pk} POST /notes/{note.pk}/submit/ 302",
        f"user={world.coleader1.pk} POST /notes/{note.pk}/amend/ 302",
        f"user={world.coleader1.pk} POST {autosave} 400",
        f"user={world.researcher1.pk} POST /analysis/courses/{world.course.pk}/memos/new/ 302",
        f"user={world.coleader1.pk} POST /calendar/revoke/ 302",
        f"user={world.leader.pk} POST /accounts/login/ 302",
    ]
    for entry in expected:
        assert any(line.endswith(entry) for line in activity), f"missing {entry!r} in\n" + "\n".join(activity)
    assert f"/calendar/feed/{REDACTED}" in output  # the 404 and runserver lines, redacted


def _log_like_runserver(request_line: str, status: str) -> None:
    """Call Django's own runserver request logger, as its handler does after a request."""
    from django.core.servers.basehttp import WSGIRequestHandler

    handler = SimpleNamespace(request=None, log_date_time_string=lambda: "25/Nov/2026 12:00:00")
    WSGIRequestHandler.log_message(handler, '"%s" %s %s', request_line, status, "123")


def test_log_settings_never_log_sql_parameters():
    """SQL with its parameters (note text) is logged only at DEBUG level; that logger is held at WARNING."""
    assert settings.LOGGING["loggers"]["django.db.backends"]["level"] == "WARNING"
    assert logging.getLogger("django.db.backends").getEffectiveLevel() >= logging.WARNING


@pytest.mark.parametrize("text, expected", [
    ("GET /calendar/feed/AbC-123_x.ics HTTP/1.1", f"GET /calendar/feed/{REDACTED}.ics HTTP/1.1"),
    ("Not Found: /calendar/feed/AbC-123_x.ics", f"Not Found: /calendar/feed/{REDACTED}.ics"),
    ("GET /accounts/reset/MTI/cdx5-0123abcd/ HTTP/1.1", f"GET /accounts/reset/MTI/{REDACTED}/ HTTP/1.1"),
    ("GET /accounts/reset/MTI/set-password/ HTTP/1.1", "GET /accounts/reset/MTI/set-password/ HTTP/1.1"),
    ("POST /x/?token=abc&page=2", f"POST /x/?token={REDACTED}&page=2"),
    ("password=hunter2&username=leader", f"password={REDACTED}&username=leader"),
    ("Cookie: sessionid=abc123; csrftoken=def456", f"Cookie: sessionid={REDACTED}; csrftoken={REDACTED}"),
    ("GET /notes/12/ HTTP/1.1", "GET /notes/12/ HTTP/1.1"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_gunicorn_logger_redacts_the_access_log():
    pytest.importorskip("gunicorn")
    from gunicorn.config import Config

    from balint.logging import GunicornLogger

    config = Config()
    config.set("accesslog", "-")
    logger = GunicornLogger(config)
    stream = io.StringIO()
    for handler in logger.access_log.handlers:
        handler.setStream(stream)
    path = "/calendar/feed/S3cr3t-Token_abc.ics"
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": path + "?x=1", "PATH_INFO": path, "QUERY_STRING": "x=1",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.1", "HTTP_REFERER": "https://x" + path}
    response = SimpleNamespace(status="200 OK", sent=100, headers=[("Content-Type", "text/calendar")])
    request = SimpleNamespace(headers=[("COOKIE", "sessionid=abcdef")])
    logger.access(response, request, environ, timedelta(milliseconds=5))
    line = stream.getvalue()
    assert "S3cr3t-Token_abc" not in line and "abcdef" not in line
    assert f"GET /calendar/feed/{REDACTED}" in line and " 200 " in line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_run_with_the_logger_class_keeps_feed_tokens_out_of_the_access_log(tmp_path):
    """A real gunicorn, started as docs/deploy.md says, asked for a feed URL."""
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    if gunicorn is None:
        pytest.skip("gunicorn is not installed")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"} | {
        "DJANGO_SETTINGS_MODULE": "balint.settings", "DJANGO_SECRET_KEY": "s" * 50, "DJANGO_DEBUG": "",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
    }
    log_path = tmp_path / "access.log"
    process = subprocess.Popen(
        [gunicorn, "balint.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--logger-class", "balint.logging.GunicornLogger", "--access-logfile", str(log_path)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/calendar/feed/Secret-Feed-Token-123.ics"
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
            except urllib.error.HTTPError:
                break  # any HTTP answer: the request was served and logged
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("gunicorn did not start")
                time.sleep(0.2)
            else:
                break
        deadline = time.monotonic() + 10
        while "feed" not in (log_path.read_text() if log_path.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=15)
    logged = log_path.read_text()
    assert f"/calendar/feed/{REDACTED}" in logged
    assert "Secret-Feed-Token-123" not in logged
