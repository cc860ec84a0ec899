"""Per-course reports and exports as background jobs: request, run, sweep.

The Report row is the truth about a job, not Celery's result backend:

- `report_request` saves a queued row and hands its id to the broker once the
  row is committed. A broker that is down leaves the row queued; the sweep
  hands it over again later.
- `report_run` (the Celery task's body, and the same code in-process when no
  broker is configured) claims the row with a conditional update, so a
  duplicate delivery does nothing. While it builds, a heartbeat thread with
  its own database connection writes the heartbeat and progress in short
  transactions of their own; the build itself reads one consistent snapshot
  of the course (REPEATABLE READ on PostgreSQL), so the data hash describes
  exactly the data the files were made from. Each file goes to a temporary
  file on disk as soon as it is built, so the build holds one file in
  memory at a time, not all of them. Files and the outcome are stored in
  one transaction at the end, file by file: a report is done with all its
  files or not done at all.
- `report_sweep` (Celery beat, every minute) re-queues or fails running
  reports whose worker stopped beating, and hands queued reports that no
  worker picked up to the broker again. No report stays "running" for ever.

Every update a run makes is fenced by its claim (status running and its own
attempt number): after the sweep has taken a report away from a worker that
was merely slow, that worker's late result is thrown away, not stored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from sessions import audit
from sessions.models import Course

from .models import Report, ReportFile

logger = logging.getLogger(__name__)

Progress = Callable[[int, str], None]

# A report is tried this many times (claims) before the sweep gives up on it.
MAX_ATTEMPTS = 3
STOPPED_MESSAGE = "The worker stopped while building this report; try again."
UNAVAILABLE_STAGE = (
    "Background work is unavailable right now; the report will be built as soon as it is back."
)
WAITING_STAGE = "Waiting for a worker"
# A second identical request by the same person within this window (a double
# click, a resubmitted form) returns the first report instead of a new one.
DOUBLE_SUBMIT_WINDOW = timedelta(seconds=10)
# A queued report that no worker claimed for this long is handed to the broker again.
ORPHAN_AFTER = timedelta(minutes=1)
# How often the heartbeat thread writes progress while a build reports it.
PROGRESS_WRITE_INTERVAL = 0.5  # seconds

# Errors worth another try later: the database or the broker was briefly unreachable.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)

# How a build is handed to the broker: a couple of quick retries, then give up
# and leave the report queued for the sweep. The web must not hang on a dead broker.
PUBLISH_OPTIONS: dict = {
    "retry": True,
    "retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
}

# kind -> share of the progress bar while it is built (the summary report is the slow one).
KIND_WEIGHTS = {Report.Kind.REPORT: 60, Report.Kind.DATA: 15, Report.Kind.QDPX: 20, Report.Kind.QDC: 5}

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".pdf": "application/pdf",
    ".csv": "text/csv; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".qdpx": "application/zip",
    ".qdc": "application/xml",
    ".zip": "application/zip",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


class ReportError(ValueError):
    """A request that cannot be made, or a build that failed; the message is for the user."""


# --- Request -----------------------------------------------------------------------------


def normalise_kinds(kinds: Iterable[str]) -> list[str]:
    """The requested kinds in their canonical order, each once; unknown kinds are an error."""
    wanted = set(kinds)
    unknown = wanted - set(Report.Kind.values)
    if unknown:
        raise ReportError(f"Unknown kind of report: {', '.join(sorted(unknown))}.")
    if not wanted:
        raise ReportError("Choose at least one thing to build.")
    return [kind for kind in Report.Kind.values if kind in wanted]


def report_request(*, course: Course, kinds: Iterable[str], include_memos: bool, actor) -> Report:
    """Save a queued report and hand it to the background worker once committed.

    Returns the new report, or the same person's identical request of the
    last few seconds (a double submission; `report.duplicate` is then True).
    With no broker configured the build runs in-process when the request
    commits. With the broker down the report stays queued and its stage says
    so; the sweep hands it over when the broker is back.
    """
    kinds = normalise_kinds(kinds)
    include_memos = bool(include_memos)
    with transaction.atomic():
        # Serialise requests for one course, so two quick identical submissions
        # cannot both miss each other.
        Course.objects.select_for_update().filter(pk=course.pk).values_list("pk", flat=True).first()
        recent = Report.objects.filter(
            course=course,
            requested_by=actor,
            include_memos=include_memos,
            requested_at__gte=timezone.now() - DOUBLE_SUBMIT_WINDOW,
        ).exclude(status=Report.Status.FAILED)
        for earlier in recent.order_by("-requested_at", "-pk"):
            if list(earlier.kinds) == kinds:
                earlier.duplicate = True
                return earlier
        report = Report.objects.create(
            course=course, requested_by=actor, kinds=kinds, include_memos=include_memos,
            status=Report.Status.QUEUED, stage=WAITING_STAGE,
        )
        audit.record(
            actor=actor, action="report.request", obj=report, course=course,
            summary=f"Requested report {report.pk}: {', '.join(kinds)}" + (" with memos" if include_memos else ""),
            changes={"kinds": kinds, "include_memos": include_memos},
        )
        report_id = report.pk
        transaction.on_commit(lambda: publish(report_id))
    report.duplicate = False
    return report


def publish(report_id: int) -> bool:
    """Hand a report to the broker (or, with none configured, build it now).

    Never raises: when the broker cannot be reached the report stays queued,
    its stage tells the user, and the sweep tries again.
    """
    from .tasks import build_report

    try:
        build_report.apply_async(args=[report_id], **PUBLISH_OPTIONS)
    except Exception:  # noqa: BLE001 - any failure to publish means "not handed over"
        logger.warning("Could not hand report %s to the background worker", report_id, exc_info=True)
        try:
            Report.objects.filter(pk=report_id, status=Report.Status.QUEUED).update(stage=UNAVAILABLE_STAGE)
        except (DatabaseError, InterfaceError):
            logger.exception("Could not record that report %s is waiting for the broker", report_id)
        return False
    Report.objects.filter(pk=report_id, status=Report.Status.QUEUED, stage=UNAVAILABLE_STAGE).update(
        stage=WAITING_STAGE
    )
    return True


# --- Build -------------------------------------------------------------------------------


class SpooledFiles(Mapping):
    """Built files (name -> bytes), each written to one temporary file on disk
    as it is added, so whoever builds many files holds one in memory at a
    time; reading a name reads its file back.

    The temporary file has no name on disk (it goes when it is closed, or
    with the process, however that ends) and is closed with `close()` or
    when this object is garbage-collected.
    """

    def __init__(self):
        self._spool = tempfile.TemporaryFile(prefix="balint-report-")
        self._where: dict[str, tuple[int, int]] = {}  # name -> (offset, size)
        self._closer = weakref.finalize(self, self._spool.close)

    def add(self, name: str, content: bytes) -> None:
        if name in self._where:
            raise ReportError(f"Two builders produced a file called {name}.")
        offset = self._spool.seek(0, os.SEEK_END)
        self._spool.write(content)
        self._where[name] = (offset, len(content))

    def __getitem__(self, name: str) -> bytes:
        offset, size = self._where[name]
        self._spool.seek(offset)
        content = self._spool.read(size)
        if len(content) != size:
            raise OSError(f"The temporary copy of {name} is shorter than what was written.")
        return content

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def close(self) -> None:
        self._closer()


@dataclass
class Built:
    files: Mapping[str, bytes]  # file name -> content (SpooledFiles from `build`)
    data_hash: str  # tidy.fingerprint of the data read


@contextmanager
def consistent_reads():
    """One snapshot of the database for the whole build.

    On PostgreSQL a REPEATABLE READ transaction: every query of the build sees
    the data as it was when the first one ran, whatever is coded meanwhile.
    Inside a transaction already (a test, ATOMIC_REQUESTS), it reads in that one.
    """
    if connection.in_atomic_block or connection.vendor != "postgresql":
        # SQLite (a laptop): plain reads; a long read transaction there would
        # lock out the heartbeat's writes.
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _builder(module: str, what: str):
    """Import a builder module late, so a missing one fails only the build that needs it, clearly."""
    import importlib

    try:
        return importlib.import_module(f"analysis.{module}")
    except ImportError as error:
        raise ReportError(f"{what} cannot be made: this installation lacks analysis.{module} ({error}).") from error


def _file_name(name: str) -> str:
    if not SAFE_FILE_NAME.match(name) or ".." in name:
        raise ReportError(f"A builder produced a file name that cannot be offered for download: {name!r}.")
    return name


def content_type_for(name: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")


def build(report: Report, progress: Progress) -> Built:
    """Build every kind the report asks for, from one snapshot of the course.

    Used by the worker (`report_run`) and by `manage.py course_report`; it only
    reads. `report` may be unsaved: only its course, kinds and include_memos
    are used. `progress(percent, stage)` is told how far it got (0-99).
    Each file goes to disk as soon as it is built (`SpooledFiles`), and the
    builders hand over one kind's files at a time, so the build holds the
    largest of them in memory, not all of them.
    """
    course = report.course
    kinds = normalise_kinds(report.kinds)
    total = sum(KIND_WEIGHTS[k] for k in kinds)
    files = SpooledFiles()

    def add(name: str, content: bytes) -> None:
        files.add(_file_name(name), bytes(content))

    try:
        data_hash = _build_kinds(course, kinds, total, report.include_memos, add, progress)
    except BaseException:
        files.close()
        raise
    progress(99, "Saving the files")
    return Built(files=files, data_hash=data_hash)


def _build_kinds(course: Course, kinds: list[str], total: int, include_memos: bool,
                 add: Callable[[str, bytes], None], progress: Progress) -> str:
    """Build each kind from one snapshot, handing every file to `add` as soon
    as it is made; returns the data hash."""
    with consistent_reads():
        progress(1, "Reading the course data")
        tidy = _builder("tidy", "The data hash")
        data_hash = tidy.fingerprint(course)
        done = 0
        for kind in kinds:
            start = 2 + 97 * done // total
            span = 97 * KIND_WEIGHTS[kind] // total

            def part(percent: int, stage: str, start=start, span=span) -> None:
                progress(min(99, start + span * max(0, min(100, int(percent))) // 100), stage)

            if kind == Report.Kind.REPORT:
                part(0, "Building the summary report")
                builder = _builder("report", "The summary report")
                _add_all(add, builder.build_report(
                    course, include_memos=include_memos, data_hash=data_hash,
                    progress=lambda pct, stage, part=part: part(pct, f"Summary report: {stage}"),
                ))
            elif kind == Report.Kind.DATA:
                part(0, "Writing the tidy data (CSV)")
                _add_all(add, tidy.export_csv_files(course))
                part(60, "Writing the tidy data (XLSX)")
                add("data.xlsx", tidy.export_xlsx(course))
            elif kind == Report.Kind.QDPX:
                part(0, "Writing the whole project (.qdpx)")
                add("project.qdpx", _qda_call("export_qdpx", course, include_memos=include_memos))
            elif kind == Report.Kind.QDC:
                part(0, "Writing the codebook (.qdc)")
                add("codebook.qdc", _qda_call("export_qdc", course))
            done += KIND_WEIGHTS[kind]
    return data_hash


def _add_all(add: Callable[[str, bytes], None], files: dict[str, bytes]) -> None:
    """Hand each file on, letting go of it here as soon as it is handed on."""
    while files:
        name = next(iter(files))
        add(name, files.pop(name))


def _qda_call(function: str, course: Course, **options) -> bytes:
    qda = _builder("qda", "The REFI-QDA export")
    try:
        return getattr(qda, function)(course, **options)
    except qda.QdaError as error:
        raise ReportError(f"The REFI-QDA export failed: {error}") from error


# --- Run ---------------------------------------------------------------------------------


def default_worker_name() -> str:
    return f"in-process@{socket.gethostname()} pid {os.getpid()}"


WORKER_NAME = re.compile(r"^(?P<node>.+) pid (?P<pid>\d+)$")


def _died_here(worker: str, me: str) -> bool:
    """Did the run recorded as `worker` die on this very node (so its pid can be checked)?

    A pool process killed mid-build (the OOM killer, a crash) leaves its report
    running; Celery hands the message back (acks_late, reject_on_worker_lost)
    to the same node, whose next pool process finds that pid gone.
    """
    theirs, mine = WORKER_NAME.match(worker or ""), WORKER_NAME.match(me)
    if not theirs or not mine or theirs["node"] != mine["node"]:
        return False
    pid = int(theirs["pid"])
    if pid == os.getpid():
        return False  # this process is alive; leave it to the heartbeat
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def _claim(report_id: int, worker: str) -> int | None:
    """Take the report for this run; the attempt number fences the run's later updates."""
    now = timezone.now()
    fields = dict(
        status=Report.Status.RUNNING, attempts=F("attempts") + 1, worker=worker[:200], started_at=now,
        heartbeat_at=now, finished_at=None, progress=0, stage="Starting", error="",
    )
    rows = Report.objects.filter(pk=report_id)
    if not rows.filter(status=Report.Status.QUEUED).update(**fields):
        # Not queued: done, failed, or running. Running with its process gone
        # from this node is a redelivery after that process died: take it over.
        row = rows.filter(status=Report.Status.RUNNING).values("worker", "attempts").first()
        if not row or not _died_here(row["worker"], worker):
            return None
        previous = rows.filter(status=Report.Status.RUNNING, worker=row["worker"], attempts=row["attempts"])
        if row["attempts"] >= MAX_ATTEMPTS:
            previous.update(status=Report.Status.FAILED, error=STOPPED_MESSAGE, finished_at=now, stage="")
            logger.warning("Report %s: its worker died on the last attempt; failed", report_id)
            return None
        if not previous.update(**fields):
            return None
        logger.warning("Report %s: taking over from %s, which died", report_id, row["worker"])
    return Report.objects.filter(pk=report_id).values_list("attempts", flat=True).get()


class Heartbeat:
    """Beats the report's heartbeat and writes its progress while a build runs.

    A thread with its own database connection, so each write is a short
    transaction of its own, visible at once, however long the build's
    snapshot transaction stays open. It dies with the process: a killed
    worker stops beating, which is what the sweep looks for. Inside an outer
    transaction (in-process runs in tests) another connection could not see
    the row, so it writes through the caller's connection instead.
    """

    def __init__(self, report_id: int, attempt: int):
        self.report_id = report_id
        self.attempt = attempt
        self.interval = max(0.5, min(30.0, settings.REPORT_HEARTBEAT_TIMEOUT / 4))
        self._lock = threading.Lock()
        self._pending: tuple[int, str] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_direct_write = 0.0

    def progress(self, percent: int, stage: str) -> None:
        with self._lock:
            self._pending = (max(0, min(99, int(percent))), stage[:200])
        if self._thread is None:
            if time.monotonic() - self._last_direct_write >= PROGRESS_WRITE_INTERVAL:
                self._write()
        else:
            self._wake.set()

    def __enter__(self) -> Heartbeat:
        if not connection.in_atomic_block:
            self._thread = threading.Thread(target=self._beat, name=f"report-{self.report_id}-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout=10)

    def _beat(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self.interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                self._write()
                self._stop.wait(PROGRESS_WRITE_INTERVAL)  # at most two writes a second
        finally:
            connection.close()  # this thread's own connection

    def _write(self) -> None:
        fields = {"heartbeat_at": timezone.now()}
        with self._lock:
            if self._pending is not None:
                fields["progress"], fields["stage"] = self._pending
                self._pending = None
        self._last_direct_write = time.monotonic()
        rows = Report.objects.filter(pk=self.report_id, status=Report.Status.RUNNING, attempts=self.attempt)
        try:
            if self._thread is None:
                with transaction.atomic():  # a savepoint: a failed write leaves the caller's transaction usable
                    rows.update(**fields)
            else:
                rows.update(**fields)
        except (DatabaseError, InterfaceError):
            # Best effort: a missed beat is caught up by the next one; a dead
            # database shows up in the build itself.
            logger.warning("Report %s: could not write the heartbeat", self.report_id, exc_info=True)
            if self._thread is not None:
                connection.close()  # reconnect on the next beat


def report_run(report_id: int, *, worker: str = "") -> str:
    """Build a report: claim it, build every kind, store the files and the outcome.

    Returns "done", "failed", "skipped" (not queued: a duplicate delivery, or
    finished already) or "lost" (the sweep took the report away meanwhile).
    Transient database errors are raised for the task to retry, after putting
    the report back in the queue; everything else fails the report with a
    message a person can read.
    """
    worker = worker or default_worker_name()
    attempt = _claim(report_id, worker)
    if attempt is None:
        logger.info("Report %s is not queued; nothing to do", report_id)
        return "skipped"
    report = Report.objects.select_related("course").get(pk=report_id)
    built = None
    try:
        with Heartbeat(report_id, attempt) as heartbeat:
            built = build(report, heartbeat.progress)
    except TRANSIENT_DB_ERRORS:
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()  # a broken connection: the next query reconnects
        _requeue_after_error(report_id, attempt)
        raise
    except SoftTimeLimitExceeded:
        minutes = round((report_time_limits()[0] or 0) / 60)
        _fail(report_id, attempt, f"Building this report took longer than the time limit ({minutes} minutes).")
        return "failed"
    except ReportError as error:
        _fail(report_id, attempt, str(error))
        return "failed"
    except Exception as error:  # noqa: BLE001 - recorded on the report; the traceback goes to the log
        logger.exception("Report %s failed", report_id)
        _fail(report_id, attempt, f"An unexpected error stopped the build ({type(error).__name__}: {error}).")
        return "failed"
    try:
        return "done" if _finish(report_id, attempt, built) else "lost"
    finally:
        if isinstance(built.files, SpooledFiles):
            built.files.close()


def report_time_limits() -> tuple[int, int]:
    """(soft, hard) seconds a report build may take."""
    return settings.CELERY_TASK_SOFT_TIME_LIMIT, settings.CELERY_TASK_TIME_LIMIT


def _mine(report_id: int, attempt: int):
    return Report.objects.filter(pk=report_id, status=Report.Status.RUNNING, attempts=attempt)


def _finish(report_id: int, attempt: int, built: Built) -> bool:
    """Store the files and the outcome in one transaction, if the run still holds its claim.

    The files are inserted one at a time, each read back from the build's
    temporary file just before: one file's bytes in memory at a time.
    """
    with transaction.atomic():
        if not _mine(report_id, attempt).select_for_update().exists():
            logger.warning("Report %s was taken from this run (attempt %s); result discarded", report_id, attempt)
            return False
        ReportFile.objects.filter(report_id=report_id).delete()
        for name in sorted(built.files):
            content = built.files[name]
            ReportFile.objects.create(
                report_id=report_id, name=name, content_type=content_type_for(name), content=content,
                size=len(content), sha256=hashlib.sha256(content).hexdigest(),
            )
            del content
        now = timezone.now()
        _mine(report_id, attempt).update(
            status=Report.Status.DONE, progress=100, stage="Done", data_hash=built.data_hash,
            finished_at=now, heartbeat_at=now, error="",
        )
    return True


def _fail(report_id: int, attempt: int, message: str) -> None:
    now = timezone.now()
    _mine(report_id, attempt).update(
        status=Report.Status.FAILED, error=message[:2000], finished_at=now, heartbeat_at=now,
    )


def _requeue_after_error(report_id: int, attempt: int) -> None:
    """Put the report back in the queue for the task's retry (or fail it on its last attempt)."""
    try:
        if attempt >= MAX_ATTEMPTS:
            _fail(report_id, attempt, "The database was unavailable while building this report; try again.")
        else:
            _mine(report_id, attempt).update(
                status=Report.Status.QUEUED, stage="Waiting to try again after a temporary error", worker="",
            )
    except (DatabaseError, InterfaceError):
        # Still unreachable: the heartbeat stops with this run, so the sweep
        # re-queues or fails the report.
        logger.warning("Report %s: could not put it back in the queue", report_id, exc_info=True)


# --- Sweep -------------------------------------------------------------------------------


def report_sweep() -> dict[str, int]:
    """Recover reports whose worker stopped, and queued reports no worker picked up.

    Running reports whose heartbeat is older than REPORT_HEARTBEAT_TIMEOUT are
    queued again while they have attempts left, and failed otherwise. Queued
    reports older than a minute are handed to the broker again (a duplicate
    delivery is harmless). Safe to run concurrently. Returns counts.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.REPORT_HEARTBEAT_TIMEOUT)
    requeued: list[int] = []
    failed = 0
    with transaction.atomic():
        stale = (
            Report.objects.select_for_update(skip_locked=True)
            .filter(status=Report.Status.RUNNING)
            .filter(Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True))
        )
        for report in stale:
            took_over = Report.objects.filter(pk=report.pk, status=Report.Status.RUNNING, attempts=report.attempts)
            if report.attempts >= MAX_ATTEMPTS:
                failed += took_over.update(
                    status=Report.Status.FAILED, error=STOPPED_MESSAGE, finished_at=now, stage="",
                )
                logger.warning("Report %s: worker %s stopped on the last attempt; failed", report.pk, report.worker)
            elif took_over.update(
                status=Report.Status.QUEUED, worker="", progress=0,
                stage=f"Queued again after the worker stopped (try {report.attempts + 1} of {MAX_ATTEMPTS})",
            ):
                requeued.append(report.pk)
                logger.warning("Report %s: worker %s stopped; queued again", report.pk, report.worker)
    orphans = list(
        Report.objects.filter(status=Report.Status.QUEUED, requested_at__lt=now - ORPHAN_AFTER)
        .exclude(pk__in=requeued)
        .values_list("pk", flat=True)
    )
    published = sum(publish(pk) for pk in [*requeued, *orphans])
    return {"requeued": len(requeued), "failed": failed, "republished": len(orphans), "published": published}
