"""Reports and exports: request, follow, download; the job's lifecycle; the sweep;
scoping; `manage.py course_report`; REFI-QDA import through the page.

Tasks run eagerly here (no broker, as on a laptop): a request builds the
report in-process when its transaction commits. The real worker, through
Redis, is in test_report_worker.py.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from analysis import jobs, qda, tasks, tidy
from analysis.models import Category, Code, Report
from sessions.models import AuditEvent

pytestmark = pytest.mark.django_db

QUICK = ["data", "qdc"]  # the quickest kinds to build
DATA_FILES = {"cases.csv", "codebook.csv", "data.xlsx", "segments.csv", "sessions.csv"}


@pytest.fixture(autouse=True)
def codebook(world):
    """One code: a .qdc export needs a codebook."""
    category = Category.objects.create(course=world.course, name="Triggers", unit="case")
    return Code.objects.create(course=world.course, category=category, name="Value conflict",
                               definition="Two duties pull apart.", created_by=world.researcher1)


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run what a request queues on commit (the test's transaction never commits)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def request_report(client, commit, course, kinds=QUICK, **extra):
    with commit():
        return client.post(reverse("analysis:report_new", args=[course.pk]), {"kinds": kinds, **extra})


def done_report(world, commit, kinds=QUICK, actor=None) -> Report:
    with commit():
        report = jobs.report_request(course=world.course, kinds=kinds, include_memos=False,
                                     actor=actor or world.admin)
    report.refresh_from_db()
    assert report.status == Report.Status.DONE, report.error
    return report


# --- Request, follow, download ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_admin_requests_report_and_without_broker_it_is_built_in_process(client, world, codebook):
    """Committed for real, as in production: the build runs when the request commits, with its
    heartbeat thread, before the page answers."""
    client.force_login(world.admin)
    response = client.post(reverse("analysis:report_new", args=[world.course.pk]),
                           {"kinds": QUICK, "include_memos": "on"})

    report = Report.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("analysis:report_detail", args=[report.pk])
    assert (report.course, report.requested_by, report.kinds, report.include_memos) == (
        world.course, world.admin, ["data", "qdc"], True)
    assert report.status == Report.Status.DONE
    assert (report.progress, report.attempts, report.error) == (100, 1, "")
    assert report.started_at <= report.finished_at
    assert report.data_hash == tidy.fingerprint(world.course)
    assert sorted(report.files.values_list("name", flat=True)) == sorted(DATA_FILES | {"codebook.qdc"})
    xlsx = report.files.get(name="data.xlsx")
    assert xlsx.content_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert bytes(xlsx.content)[:2] == b"PK" and xlsx.size == len(bytes(xlsx.content))
    event = AuditEvent.objects.get(action="report.request")
    assert (event.course, event.actor, event.object_id) == (world.course, world.admin, str(report.pk))

    page = client.get(response["Location"])
    assert "The report is ready." in page.text
    assert "codebook.qdc" in page.text and report.data_hash in page.text


def test_status_json_follows_the_report(client, world, commit):
    client.force_login(world.researcher1)
    report = done_report(world, commit, actor=world.researcher1)
    data = client.get(reverse("analysis:report_status", args=[report.pk])).json()
    assert data["status"] == "done" and data["finished"] and data["progress"] == 100
    assert data["data_hash"] == report.data_hash and data["error"] == ""
    assert {f["name"] for f in data["files"]} == DATA_FILES | {"codebook.qdc"}
    csv_file = next(f for f in data["files"] if f["name"] == "segments.csv")
    assert csv_file["url"] == reverse("analysis:report_download", args=[report.pk, "segments.csv"])
    assert csv_file["content_type"] == "text/csv; charset=utf-8"

    queued = Report.objects.create(course=world.course, requested_by=world.admin, kinds=["data"],
                                   stage=jobs.WAITING_STAGE)
    data = client.get(reverse("analysis:report_status", args=[queued.pk])).json()
    assert data == {"id": queued.pk, "status": "queued", "status_display": "Queued", "finished": False,
                    "progress": 0, "stage": jobs.WAITING_STAGE, "error": "", "data_hash": "", "files": []}


def test_download_is_an_attachment_and_is_logged(client, world, commit):
    client.force_login(world.researcher1)
    report = done_report(world, commit)
    stored = report.files.get(name="codebook.qdc")

    response = client.get(reverse("analysis:report_download", args=[report.pk, "codebook.qdc"]))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == bytes(stored.content)
    assert response["Content-Type"] == "application/xml"
    assert response["Content-Disposition"] == (
        f'attachment; filename="student-balint-groups-2026-report-{report.pk}-codebook.qdc"')
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]
    assert response["Content-Length"] == str(stored.size)
    event = AuditEvent.objects.get(action="report.download")
    assert (event.actor, event.course, event.object_id) == (world.researcher1, world.course, str(report.pk))
    assert event.changes == {"file": "codebook.qdc", "sha256": stored.sha256}

    missing = client.get(reverse("analysis:report_download", args=[report.pk, "nothing.pdf"]))
    assert missing.status_code == 404
    assert AuditEvent.objects.filter(action="report.download").count() == 1


def test_list_shows_who_asked_when_what_and_the_data_hash(client, world, commit):
    client.force_login(world.admin)
    report = done_report(world, commit)
    other = Report.objects.create(course=world.course2, requested_by=world.admin2, kinds=["qdc"])
    page = client.get(reverse("analysis:report_list", args=[world.course.pk])).text
    assert f"Report {report.pk}" in page and f"Report {other.pk}" not in page
    assert world.admin.get_username() in page
    assert report.data_hash[:12] in page
    assert reverse("analysis:report_download", args=[report.pk, "data.xlsx"]) in page
    for kind in ("report", "data", "qdpx", "qdc"):
        assert f'value="{kind}"' in page


def test_double_submission_returns_the_first_report(client, world, commit):
    client.force_login(world.admin)
    first = request_report(client, commit, world.course)
    second = request_report(client, commit, world.course)
    assert Report.objects.count() == 1
    assert first["Location"] == second["Location"]
    assert "You asked for this a moment ago" in client.get(second["Location"]).text
    assert AuditEvent.objects.filter(action="report.request").count() == 1

    # Something else, or the same a while later, is a new request.
    request_report(client, commit, world.course, kinds=["qdc"])
    Report.objects.update(requested_at=timezone.now() - jobs.DOUBLE_SUBMIT_WINDOW - timedelta(seconds=1))
    request_report(client, commit, world.course)
    assert Report.objects.count() == 3


def test_request_needs_a_known_kind(client, world, commit):
    client.force_login(world.admin)
    assert request_report(client, commit, world.course, kinds=[]).status_code == 400
    assert request_report(client, commit, world.course, kinds=["everything"]).status_code == 400
    assert not Report.objects.exists()
    with pytest.raises(jobs.ReportError):
        jobs.report_request(course=world.course, kinds=["pdf"], include_memos=False, actor=world.admin)
    assert jobs.normalise_kinds(["qdc", "report", "qdc"]) == ["report", "qdc"]


def test_course_page_links_reports_for_admins_and_researchers(client, world):
    url = reverse("analysis:report_list", args=[world.course.pk])
    for user, shown in [(world.admin, True), (world.researcher1, True), (world.leader, False)]:
        client.force_login(user)
        page = client.get(reverse("sessions:course_detail", args=[world.course.pk])).text
        assert (url in page) is shown, user


# --- Scoping -----------------------------------------------------------------------------


def report_urls(report: Report) -> dict[str, str]:
    return {
        "list": reverse("analysis:report_list", args=[report.course_id]),
        "detail": reverse("analysis:report_detail", args=[report.pk]),
        "status": reverse("analysis:report_status", args=[report.pk]),
        "download": reverse("analysis:report_download", args=[report.pk, "codebook.qdc"]),
        "import": reverse("analysis:qda_import", args=[report.course_id]),
    }


@pytest.mark.parametrize("who, allowed", [
    ("admin", True), ("researcher1", True),
    ("admin2", False), ("leader", False), ("coleader1", False), ("leader2", False), ("outsider", False),
])
def test_only_the_course_admin_and_researchers_reach_its_reports(client, world, commit, who, allowed):
    report = done_report(world, commit)
    client.force_login(getattr(world, who))
    for name, url in report_urls(report).items():
        status = client.get(url).status_code
        assert status == (200 if allowed else 404), (name, status)

    response = request_report(client, commit, world.course, kinds=["qdc"])
    assert response.status_code == (302 if allowed else 404)
    assert Report.objects.count() == (2 if allowed else 1)
    assert AuditEvent.objects.filter(action="report.download").count() == (1 if allowed else 0)


def test_anonymous_users_are_sent_to_log_in(client, world, commit):
    report = done_report(world, commit)
    for url in report_urls(report).values():
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_admin_of_one_course_reaches_only_their_own(client, world, commit):
    theirs = Report.objects.create(course=world.course2, requested_by=world.admin2, kinds=["qdc"])
    client.force_login(world.admin)
    for url in report_urls(theirs).values():
        assert client.get(url).status_code == 404
    client.force_login(world.admin2)
    assert request_report(client, commit, world.course2).status_code == 302
    assert client.get(reverse("analysis:report_detail", args=[theirs.pk])).status_code == 200


# --- The job -----------------------------------------------------------------------------


def queued(world, kinds=QUICK, **fields) -> Report:
    return Report.objects.create(course=world.course, requested_by=world.admin, kinds=kinds, **fields)


def test_a_second_delivery_of_the_same_report_does_nothing(world, monkeypatch):
    report = queued(world)
    builds = []
    real_build = jobs.build
    monkeypatch.setattr(jobs, "build", lambda *a, **kw: builds.append(1) or real_build(*a, **kw))

    assert jobs.report_run(report.pk, worker="w1@host pid 1") == "done"
    assert jobs.report_run(report.pk, worker="w2@host pid 2") == "skipped"
    assert tasks.build_report.apply(args=[report.pk]).get() == "skipped"

    report.refresh_from_db()
    assert len(builds) == 1
    assert (report.status, report.attempts, report.worker) == (Report.Status.DONE, 1, "w1@host pid 1")
    assert report.files.count() == len(DATA_FILES) + 1


def test_built_files_wait_on_disk_until_they_are_stored_one_by_one(world):
    built = jobs.build(queued(world), lambda percent, stage: None)
    assert isinstance(built.files, jobs.SpooledFiles)
    assert set(built.files) == DATA_FILES | {"codebook.qdc"}
    assert built.files["codebook.qdc"] == qda.export_qdc(world.course)
    assert built.files["segments.csv"] == tidy.export_csv_files(world.course)["segments.csv"]
    built.files.close()

    report = queued(world)
    assert jobs.report_run(report.pk) == "done"
    for stored in report.files.all():
        content = bytes(stored.content)
        assert (stored.size, stored.sha256) == (len(content), hashlib.sha256(content).hexdigest())
        assert stored.content_type == jobs.content_type_for(stored.name)
    assert bytes(report.files.get(name="codebook.qdc").content) == qda.export_qdc(world.course)


def test_a_build_error_fails_the_report_with_a_readable_reason(world, monkeypatch):
    report = queued(world)

    def broken(course):
        raise ValueError("a cell could not be written")

    monkeypatch.setattr(tidy, "export_xlsx", broken)
    assert jobs.report_run(report.pk) == "failed"
    report.refresh_from_db()
    assert report.status == Report.Status.FAILED and report.finished_at
    assert report.error == "An unexpected error stopped the build (ValueError: a cell could not be written)."
    assert not report.files.exists()  # nothing half-built is offered


def test_a_qda_error_is_shown_as_it_is(world, monkeypatch):
    report = queued(world, kinds=["qdc"])

    def refuse(course):
        raise qda.QdaError("Code “X” has no name.")

    monkeypatch.setattr(qda, "export_qdc", refuse)
    jobs.report_run(report.pk)
    report.refresh_from_db()
    assert report.error == "The REFI-QDA export failed: Code “X” has no name."


def test_the_soft_time_limit_fails_the_report_with_a_reason(world, monkeypatch):
    report = queued(world)

    def slow(report, progress):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(jobs, "build", slow)
    assert jobs.report_run(report.pk) == "failed"
    report.refresh_from_db()
    assert report.error == "Building this report took longer than the time limit (14 minutes)."


def test_a_transient_database_error_puts_the_report_back_in_the_queue(world, monkeypatch):
    report = queued(world)

    def unreachable(report, progress):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(jobs, "build", unreachable)
    with pytest.raises(OperationalError):
        jobs.report_run(report.pk)  # raised for Celery to retry with backoff
    report.refresh_from_db()
    assert (report.status, report.attempts, report.worker) == (Report.Status.QUEUED, 1, "")

    # On the last attempt it fails instead of waiting for ever.
    Report.objects.filter(pk=report.pk).update(attempts=jobs.MAX_ATTEMPTS - 1)
    with pytest.raises(OperationalError):
        jobs.report_run(report.pk)
    report.refresh_from_db()
    assert report.status == Report.Status.FAILED
    assert report.error == "The database was unavailable while building this report; try again."


def test_a_result_is_thrown_away_when_the_report_was_taken_from_the_run(world, monkeypatch):
    report = queued(world)
    real_build = jobs.build

    def swept_meanwhile(report, progress):
        built = real_build(report, progress)
        # The sweep thought this worker dead and queued the report again.
        Report.objects.filter(pk=report.pk).update(status=Report.Status.QUEUED, worker="")
        return built

    monkeypatch.setattr(jobs, "build", swept_meanwhile)
    assert jobs.report_run(report.pk) == "lost"
    report.refresh_from_db()
    assert report.status == Report.Status.QUEUED and not report.files.exists()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_redelivery_takes_over_from_a_pool_process_that_died(world):
    """acks_late + reject_on_worker_lost hand the message back to the same node."""
    gone = f"celery@node1 pid {dead_pid()}"
    report = queued(world, status=Report.Status.RUNNING, attempts=1, worker=gone, heartbeat_at=timezone.now())

    assert jobs.report_run(report.pk, worker="celery@node2 pid 99") == "skipped"  # another node: not its call
    assert jobs.report_run(report.pk, worker=f"celery@node1 pid {dead_pid() + 100000}") == "done"
    report.refresh_from_db()
    assert (report.status, report.attempts) == (Report.Status.DONE, 2)

    # On its last attempt the report fails instead.
    last = queued(world, status=Report.Status.RUNNING, attempts=jobs.MAX_ATTEMPTS, worker=gone,
                  heartbeat_at=timezone.now())
    assert jobs.report_run(last.pk, worker="celery@node1 pid 7") == "skipped"
    last.refresh_from_db()
    assert (last.status, last.error) == (Report.Status.FAILED, jobs.STOPPED_MESSAGE)


def test_a_live_process_is_not_taken_over(world):
    import os

    report = queued(world, status=Report.Status.RUNNING, attempts=1, worker=f"celery@node1 pid {os.getppid()}",
                    heartbeat_at=timezone.now())
    assert jobs.report_run(report.pk, worker="celery@node1 pid 7") == "skipped"
    report.refresh_from_db()
    assert (report.status, report.attempts) == (Report.Status.RUNNING, 1)


# --- The sweep ---------------------------------------------------------------------------


@pytest.fixture
def published(monkeypatch):
    """Record what the sweep hands to the broker instead of building it here."""
    ids: list[int] = []
    monkeypatch.setattr(jobs, "publish", lambda report_id: ids.append(report_id) or True)
    return ids


def test_sweep_requeues_or_fails_reports_whose_worker_stopped(world, published, settings):
    settings.REPORT_HEARTBEAT_TIMEOUT = 120
    now = timezone.now()
    old = now - timedelta(seconds=121)
    stale = queued(world, status="running", attempts=1, worker="w@h pid 1", heartbeat_at=old, started_at=old)
    last = queued(world, status="running", attempts=3, worker="w@h pid 2", heartbeat_at=old, started_at=old)
    alive = queued(world, status="running", attempts=1, worker="w@h pid 3", heartbeat_at=now - timedelta(seconds=60))
    done = queued(world, status="done", attempts=1, heartbeat_at=old)

    assert jobs.report_sweep() == {"requeued": 1, "failed": 1, "republished": 0, "published": 1}

    for report in (stale, last, alive, done):
        report.refresh_from_db()
    assert (stale.status, stale.worker, stale.attempts) == ("queued", "", 1)
    assert stale.stage == "Queued again after the worker stopped (try 2 of 3)"
    assert (last.status, last.error) == ("failed", "The worker stopped while building this report; try again.")
    assert last.finished_at is not None
    assert alive.status == "running" and done.status == "done"
    assert published == [stale.pk]


def test_sweep_hands_over_queued_reports_no_worker_took(world, published):
    orphan = queued(world)
    fresh = queued(world)
    Report.objects.filter(pk=orphan.pk).update(requested_at=timezone.now() - timedelta(seconds=61))
    assert jobs.report_sweep()["republished"] == 1
    assert published == [orphan.pk]
    assert fresh.pk not in published


def test_with_the_broker_down_a_request_is_kept_and_built_when_it_is_back(client, world, commit, monkeypatch):
    def refused(*args, **kwargs):
        raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.build_report, "apply_async", refused)
    client.force_login(world.admin)
    response = request_report(client, commit, world.course)

    report = Report.objects.get()
    assert (report.status, report.stage) == ("queued", jobs.UNAVAILABLE_STAGE)
    page = client.get(response["Location"]).text
    assert "Background work is unavailable right now" in page
    assert "Refresh" in page

    monkeypatch.undo()  # the broker is back; a minute later the sweep hands the report over
    Report.objects.update(requested_at=timezone.now() - timedelta(minutes=2))
    assert tasks.sweep_reports.apply().get()["published"] == 1
    report.refresh_from_db()
    assert report.status == "done" and report.files.count() == len(DATA_FILES) + 1


def test_a_running_report_page_polls_and_works_without_script(client, world):
    report = queued(world, status="running", attempts=1, progress=42, stage="Writing the tidy data (CSV)",
                    heartbeat_at=timezone.now())
    client.force_login(world.admin)
    page = client.get(reverse("analysis:report_detail", args=[report.pk])).text
    assert "js/report_progress.js" in page
    assert reverse("analysis:report_status", args=[report.pk]) in page
    assert '<progress class="w-100" max="100" value="42">' in page  # inside <noscript>
    assert "42% · Writing the tidy data (CSV)" in page
    assert "style=" not in page  # CSP: no inline style


# --- manage.py course_report --------------------------------------------------------------


def test_course_report_command_writes_the_files(world, codebook, tmp_path):
    out = io.StringIO()
    call_command("course_report", world.course.pk, out=tmp_path / "out", kinds="qdc,data", stdout=out)
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == DATA_FILES | {"codebook.qdc"}
    assert f"data hash {tidy.fingerprint(world.course)}" in out.getvalue()
    assert (tmp_path / "out" / "codebook.qdc").read_bytes() == qda.export_qdc(world.course)
    assert not Report.objects.exists()  # a scripted export is not a request

    with pytest.raises(CommandError, match="No course with id 999999"):
        call_command("course_report", 999999, out=tmp_path)
    with pytest.raises(CommandError, match="Unknown kind of report: pdf"):
        call_command("course_report", world.course.pk, out=tmp_path, kinds="pdf")


# --- REFI-QDA import ---------------------------------------------------------------------


def test_researcher_imports_a_codebook(client, world, codebook):
    data = qda.export_qdc(world.course)
    codebook.delete()
    client.force_login(world.researcher1)
    url = reverse("analysis:qda_import", args=[world.course.pk])
    response = client.post(url, {"file": SimpleUploadedFile("book.qdc", data), "group_name": "Imported"}, follow=True)
    assert "Imported the codebook: 1 new code" in response.text
    assert Code.objects.filter(course=world.course, name="Value conflict").exists()


def test_an_admin_imports_projects_but_not_codebooks(client, world, codebook):
    client.force_login(world.admin)
    url = reverse("analysis:qda_import", args=[world.course.pk])
    response = client.post(url, {"file": SimpleUploadedFile("book.qdc", qda.export_qdc(world.course)),
                                 "group_name": "Imported"})
    assert response.status_code == 400
    assert "Only the course&#x27;s researchers import a codebook." in response.text

    project = qda.export_qdpx(world.course)
    response = client.post(url, {"file": SimpleUploadedFile("p.qdpx", project), "group_name": "From NVivo"},
                           follow=True)
    assert "Imported 0 of 0 text sources" in response.text


def test_a_broken_project_is_refused_and_nothing_is_imported(client, world):
    client.force_login(world.researcher1)
    url = reverse("analysis:qda_import", args=[world.course.pk])
    codes_before = Code.objects.count()
    response = client.post(url, {"file": SimpleUploadedFile("p.qdpx", b"PK\x03\x04 not really a zip"),
                                 "group_name": "Imported"})
    assert response.status_code == 400
    assert "Nothing was imported" in response.text or "nothing" in response.text.lower()
    assert Code.objects.count() == codes_before
    response = client.post(url, {"file": SimpleUploadedFile("notes.docx", b"x"), "group_name": "Imported"})
    assert "Choose a .qdc codebook or a .qdpx project." in response.text
