"""The reminder task on a real Celery worker, through Redis, against PostgreSQL.

The worker is a separate process on its own queue, with production settings
(so tasks are not run eagerly), the test database and a file e-mail backend.
Needs REDIS_URL and PostgreSQL: skipped without them locally, failed in CI.
"""

import email
import os
import re
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from balint import testing
from balint.celery import app as celery_app
from fieldnotes.models import NoteReminder
from fieldnotes.tasks import send_overdue_note_reminders
from sessions.models import Meeting

TIMEOUT = 30  # seconds, for the worker to start and for the task to finish
SITE_URL = "https://balint.example.org"


def wait_for(predicate, what: str, log: Path):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no worker log)"
    pytest.fail(f"Timed out after {TIMEOUT}s waiting for {what}. Worker log:\n{tail}")


def task_results(log: Path) -> list[str]:
    """The return values the worker logged for the reminder task, in order."""
    pattern = r"send_overdue_note_reminders\[[^\]]+\] succeeded in [\d.]+s: (\S+)"
    return re.findall(pattern, log.read_text(errors="replace"))


@pytest.fixture
def worker(transactional_db, tmp_path):
    """A Celery worker process consuming a queue of its own; stopped afterwards."""
    testing.require(bool(os.environ.get("REDIS_URL")), "REDIS_URL is not set: a real Celery worker needs Redis")
    testing.require(
        connection.vendor == "postgresql",
        "needs PostgreSQL (DATABASE_URL): the worker process cannot see SQLite's in-memory test database",
    )
    queue = f"test-reminders-{uuid.uuid4().hex}"
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    log = tmp_path / "worker.log"
    env = testing.worker_env(
        REDIS_URL=os.environ["REDIS_URL"],
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(outbox),
        SITE_URL=SITE_URL,
        NOTE_REMINDER_HOURS="48",
    )
    with log.open("wb") as out:
        process = subprocess.Popen(testing.worker_command(queue, queue), cwd=settings.BASE_DIR, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: process.poll() is not None or " ready." in log.read_text(errors="replace"),
                 "the worker to start", log)
        if process.poll() is not None:
            pytest.fail(f"The worker exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        yield {"queue": queue, "outbox": outbox, "log": log}
    finally:
        process.terminate()  # warm shutdown: finishes the current task
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        testing.delete_queue(queue)


@pytest.fixture
def not_eager():
    """Publish to the broker from this process (settings_test runs tasks eagerly)."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = before


def test_worker_sends_each_overdue_reminder_once(worker, not_eager, world):
    meeting = Meeting.objects.create(
        group=world.group, number=3, status=Meeting.Status.HELD, starts_at=timezone.now() - timedelta(hours=52)
    )

    send_overdue_note_reminders.apply_async(queue=worker["queue"])

    # The rows commit only after the e-mails were handed to the backend.
    wait_for(lambda: NoteReminder.objects.filter(meeting=meeting).count() == 2, "two reminder rows", worker["log"])
    files = wait_for(lambda: sorted(worker["outbox"].glob("*.log")) or None, "the e-mail file", worker["log"])
    separator = b"\n" + b"-" * 79 + b"\n"
    messages = [
        email.message_from_bytes(raw)
        for path in files
        for raw in path.read_bytes().split(separator)
        if raw.strip()
    ]
    assert sorted(m["To"] for m in messages) == [world.coleader1.email, world.coleader2.email]
    for message in messages:
        assert message["Subject"] == "Field note missing: Group A, session 3"
        body = message.get_payload(decode=True).decode()
        assert f"{SITE_URL}/sessions/{meeting.pk}/note/" in body

    # A second run (a duplicate delivery, or the next beat) sends nothing more.
    send_overdue_note_reminders.apply_async(queue=worker["queue"])
    results = wait_for(lambda: len(task_results(worker["log"])) >= 2 and task_results(worker["log"]),
                       "the second run", worker["log"])
    assert results == ["2", "0"]
    assert NoteReminder.objects.count() == 2
    assert sum(path.read_bytes().count(b"Subject: ") for path in worker["outbox"].glob("*.log")) == 2
