"""Reports on a real Celery worker, through Redis, against PostgreSQL.

Workers are separate processes (prefork pool, concurrency 1, as in
production) on a queue of their own, with production settings (so tasks are
not run eagerly) and the test database. A worker is killed with SIGKILL mid-
report — the whole worker, or only the pool process running the task — and
the report must end done, or failed with a clear reason, within a bounded
time: never stuck "running". The moment to kill is picked from the report's
own progress row, and the course is the demo course, whose summary report
takes seconds to print.

Needs REDIS_URL and PostgreSQL: skipped without them locally, failed in CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from analysis import jobs
from analysis.models import Report
from balint import testing
from balint.celery import app as celery_app
from sessions.models import Course

START_TIMEOUT = 30  # seconds for a worker to start
BOUND = 60  # seconds for a killed report to end done or failed
HEARTBEAT_TIMEOUT = 4  # REPORT_HEARTBEAT_TIMEOUT for the workers and the sweep here
KINDS = ["report", "data", "qdpx", "qdc"]


def log_tail(logs: list[Path]) -> str:
    return "\n".join(
        f"--- {log.name}\n" + (log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)") for log in logs
    )


class Workers:
    """Starts Celery workers on one test queue; each its own process group, so
    the whole worker (main process and pool) can be killed at once."""

    def __init__(self, tmp_path: Path):
        self.queue = f"test-reports-{uuid.uuid4().hex}"
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.env = testing.worker_env(
            REDIS_URL=os.environ["REDIS_URL"], REPORT_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT), MPLBACKEND="Agg",
        )

    def start(self) -> subprocess.Popen:
        n = len(self.processes) + 1
        log = self.tmp_path / f"worker{n}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                testing.worker_command(self.queue, f"{self.queue}-{n}", pool="prefork"),
                cwd=settings.BASE_DIR, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        self.logs.append(log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"Worker {n} exited with {process.returncode}:\n{log_tail([log])}")
            if " ready." in log.read_text(errors="replace"):
                return process
            time.sleep(0.2)
        pytest.fail(f"Worker {n} did not start within {START_TIMEOUT}s:\n{log_tail([log])}")

    def kill_all(self, process: subprocess.Popen) -> None:
        """SIGKILL a worker's main process and its pool at once, as the OOM killer or a power cut would."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()  # warm shutdown: finishes the current task
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever of its group is left
            except ProcessLookupError:
                pass
            process.wait(timeout=10)


@pytest.fixture
def workers(transactional_db, tmp_path, monkeypatch, settings):
    testing.require(bool(os.environ.get("REDIS_URL")), "REDIS_URL is not set: a real Celery worker needs Redis")
    testing.require(
        connection.vendor == "postgresql",
        "needs PostgreSQL (DATABASE_URL): the worker process cannot see SQLite's in-memory test database",
    )
    # Publish to the broker from this process (settings_test runs tasks eagerly), on the test queue.
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    pool = Workers(tmp_path)
    monkeypatch.setitem(jobs.PUBLISH_OPTIONS, "queue", pool.queue)
    settings.REPORT_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT  # for report_sweep run here, as beat would
    try:
        yield pool
    finally:
        celery_app.conf.task_always_eager = eager
        pool.stop()
        testing.delete_queue(pool.queue)


@pytest.fixture
def demo(transactional_db):
    """The demo course (two groups, 15 sessions each, notes and coding): a report of 18 pages."""
    call_command("seed_demo", allow_production=True, stdout=open(os.devnull, "w"))
    course = Course.objects.get(name__contains="(demo)")
    from django.contrib.auth import get_user_model

    return course, get_user_model().objects.get(username="admin")


def row(report: Report) -> dict:
    return Report.objects.filter(pk=report.pk).values(
        "status", "progress", "stage", "attempts", "worker", "error", "heartbeat_at"
    ).get()


def wait_for(predicate, what: str, timeout: float, workers: Workers, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"Timed out after {timeout}s waiting for {what}.\n{log_tail(workers.logs)}")


def mid_report(report: Report, workers: Workers) -> dict:
    """Wait until the worker is inside the summary report (charts drawn, PDF not yet printed)."""
    return wait_for(
        lambda: (r := row(report))["status"] == "running" and r["stage"].startswith("Summary report:")
        and r["progress"] > 2 and r,
        "the report to be running, inside the summary report", 60, workers, every=0.05,
    )


def finished(report: Report, workers: Workers, *, sweep: bool) -> dict:
    """Wait, at most BOUND seconds, until the report is done or failed; run the sweep as beat would."""

    def check():
        if sweep:
            jobs.report_sweep()
        r = row(report)
        return r["status"] in ("done", "failed") and r

    return wait_for(check, "the report to be done or failed", BOUND, workers, every=0.5)


def test_a_worker_builds_a_requested_report(workers, demo):
    course, admin = demo
    workers.start()

    report = jobs.report_request(course=course, kinds=KINDS, include_memos=True, actor=admin)

    seen = set()

    def done():
        r = row(report)
        seen.add(r["status"])
        return r["status"] in ("done", "failed") and r

    result = wait_for(done, "the report to be built", 120, workers, every=0.2)
    assert result["status"] == "done", result["error"]
    assert "running" in seen  # the page could follow it
    assert result["attempts"] == 1 and result["worker"].startswith(f"{workers.queue}-1@")
    report.refresh_from_db()
    names = set(report.files.values_list("name", flat=True))
    assert {"report.html", "report.pdf", "data.xlsx", "segments.csv", "project.qdpx", "codebook.qdc"} <= names
    assert bytes(report.files.get(name="report.pdf").content).startswith(b"%PDF-")
    from analysis import tidy

    assert report.data_hash == tidy.fingerprint(course)


@pytest.mark.parametrize("attempts_before, outcome", [(0, "done"), (jobs.MAX_ATTEMPTS - 1, "failed")])
def test_a_killed_worker_leaves_no_report_running(workers, demo, attempts_before, outcome):
    """SIGKILL the whole worker mid-report; the message stays unacknowledged in
    Redis, so the sweep (beat, every minute) finds the silent heartbeat and
    queues the report again — or, on its last attempt, fails it."""
    course, admin = demo
    first = workers.start()
    report = Report.objects.create(course=course, requested_by=admin, kinds=["report", "data"],
                                   attempts=attempts_before)
    assert jobs.publish(report.pk)

    mid_report(report, workers)
    workers.kill_all(first)
    killed_at = time.monotonic()
    assert row(report)["status"] == "running"  # killed mid-report; nothing else will finish it

    workers.start()
    result = finished(report, workers, sweep=True)
    took = time.monotonic() - killed_at

    assert result["status"] == outcome, (result, log_tail(workers.logs))
    if outcome == "done":
        assert result["attempts"] == 2 and result["worker"].startswith(f"{workers.queue}-2@")
        assert set(Report.objects.get(pk=report.pk).files.values_list("name", flat=True)) >= {
            "report.pdf", "report.html", "data.xlsx"}
    else:
        assert result["error"] == "The worker stopped while building this report; try again."
        assert not Report.objects.get(pk=report.pk).files.exists()
    assert took < BOUND


def test_a_killed_pool_process_is_replaced_and_the_report_finishes(workers, demo):
    """SIGKILL only the pool process running the task: Celery rejects the message
    back to the queue (acks_late, reject_on_worker_lost), the worker's next
    pool process finds the report's process gone from this node and takes the
    report over. No sweep needed."""
    course, admin = demo
    main = workers.start()
    report = jobs.report_request(course=course, kinds=["report", "data"], include_memos=False, actor=admin)

    running = mid_report(report, workers)
    child = int(running["worker"].rsplit(" pid ", 1)[1])
    assert child != main.pid
    os.kill(child, signal.SIGKILL)
    killed_at = time.monotonic()

    result = finished(report, workers, sweep=False)
    assert result["status"] == "done", (result, log_tail(workers.logs))
    assert result["attempts"] == 2
    assert result["worker"].startswith(f"{workers.queue}-1@") and not result["worker"].endswith(f" pid {child}")
    assert time.monotonic() - killed_at < BOUND
    assert main.poll() is None  # the worker itself lived on
    log = workers.logs[0].read_text(errors="replace")
    assert "WorkerLostError" in log
    assert f"Report {report.pk}: taking over from {running['worker']}, which died" in log
