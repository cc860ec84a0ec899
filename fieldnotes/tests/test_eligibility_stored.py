"""The stored research decision (NoteSection.research_ok) follows every change
of the facts it is decided from, by whatever path the change comes: services,
the ORM as the Django admin uses it, bulk writes, and two changes racing.

(Every other test that touches the database is checked too: conftest.py
compares the stored decision with the one decided from the facts after each.)
"""

import os
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from fieldnotes import services
from fieldnotes.models import NoteSection
from sessions.models import Attendance, CasePresentation, Consent, Meeting
from sessions.services import scheduling

DAY = timedelta(days=1)


def consent(world, participant, decision, when, scope=""):
    return Consent.objects.create(
        participant=participant, form=world.form, form_version=1, form_text=world.form.text, decision=decision,
        decided_at=when, method="paper", withdrawal_scope=scope, recorded_by=world.leader,
    )


def held_session(world, *, days_ago=14):
    """S1 presents a case, S1 and S2 attend; both consented a day before."""
    s1, s2, _ = world.participants
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - days_ago * DAY,
                                     status=Meeting.Status.HELD)
    Attendance.objects.create(meeting=meeting, participant=s1, present=True)
    Attendance.objects.create(meeting=meeting, participant=s2, present=True)
    CasePresentation.objects.create(meeting=meeting, presenter=s1, order=1, title="A case")
    for p in (s1, s2):
        consent(world, p, "given", meeting.starts_at - DAY)
    return meeting


def submitted_session(world):
    """`held_session`, with co-leader 1's note on it submitted."""
    meeting = held_session(world)
    note = services.note_open(meeting=meeting, author=world.coleader1)
    services.note_submit(note=note, base_version=0, texts={}, actor=world.coleader1)
    return meeting


def stored(meeting):
    return sorted(NoteSection.objects.filter(note__meeting=meeting, research_ok=True).values_list("kind", flat=True))


@pytest.mark.django_db
def test_submitting_stores_the_decision_and_drafts_stay_out(world):
    meeting = held_session(world)
    note = services.note_open(meeting=meeting, author=world.coleader1)
    assert stored(meeting) == []
    services.note_submit(note=note, base_version=0, texts={}, actor=world.coleader1)
    assert stored(meeting) == ["case", "discussion", "other"]


@pytest.mark.django_db
def test_moving_a_session_before_the_consent_takes_it_out_and_back(world):
    meeting = submitted_session(world)
    start = meeting.starts_at
    scheduling.meeting_reschedule(meeting=meeting, starts_at=start - 2 * DAY, duration_minutes=90, place="",
                                  actor=world.leader)
    assert stored(meeting) == []  # nobody had consented yet at the new time
    scheduling.meeting_reschedule(meeting=meeting, starts_at=start, duration_minutes=90, place="",
                                  actor=world.leader)
    assert stored(meeting) == ["case", "discussion", "other"]


@pytest.mark.django_db
def test_deleting_a_withdrawal_outside_the_services_restores_the_data(world):
    """Model save() and delete() (the Django admin, where sessions, attendance
    and cases are editable; a data fix in the shell) reach the decision by signals."""
    meeting = submitted_session(world)
    withdrawal = consent(world, world.participants[1], "withdrawn", timezone.now(), scope="past")
    assert stored(meeting) == ["case"]  # S2 attended the discussion, presented no case
    withdrawal.delete()
    assert stored(meeting) == ["case", "discussion", "other"]


@pytest.mark.django_db
def test_attendance_saved_in_bulk_by_the_leader_is_reflected(world):
    """attendance_record writes with bulk_create/bulk_update, which send no signals."""
    meeting = submitted_session(world)
    s3 = world.participants[2]  # never consented
    scheduling.attendance_record(meeting=meeting, participants=world.participants,
                                 present_ids={p.pk for p in world.participants}, actor=world.leader)
    assert stored(meeting) == ["case"]  # S3 was present: the discussion may mention S3
    scheduling.attendance_record(meeting=meeting, participants=world.participants,
                                 present_ids={p.pk for p in world.participants if p != s3}, actor=world.leader)
    assert stored(meeting) == ["case", "discussion", "other"]


@pytest.mark.django_db
def test_a_case_added_after_submission_gains_a_decided_section(world):
    meeting = submitted_session(world)
    CasePresentation.objects.create(meeting=meeting, presenter=world.participants[1], order=2, title="Second")
    services.note_open(meeting=meeting, author=world.coleader1)  # the note gains the case's section
    assert stored(meeting) == ["case", "case", "discussion", "other"]


@pytest.mark.django_db
def test_refresh_command_finds_and_repairs_a_hand_edit(world):
    meeting = submitted_session(world)
    section = NoteSection.objects.get(note__meeting=meeting, kind="discussion")
    with connection.cursor() as cursor:  # an edit behind the app's back
        cursor.execute("UPDATE fieldnotes_notesection SET research_ok = %s WHERE id = %s", [False, section.pk])
    with pytest.raises(CommandError, match="1 section"):
        call_command("refresh_research_flags", "--check")
    out = StringIO()
    call_command("refresh_research_flags", stdout=out)
    assert "1 changed" in out.getvalue()
    call_command("refresh_research_flags", "--check", stdout=StringIO())
    assert stored(meeting) == ["case", "discussion", "other"]


@pytest.mark.faults
def test_a_withdrawal_racing_a_submission_leaves_the_section_out(transactional_db, world):
    """A presenter withdraws (with past data) while a co-leader submits the note
    of that session. Without the course lock, the submission would decide on
    the consent it saw before the withdrawal committed, and the withdrawal on
    the draft it saw before the submission committed: the case would stay in."""
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI must run the race on PostgreSQL (set DATABASE_URL).")
        pytest.skip("The race needs PostgreSQL (DATABASE_URL=postgres://...); SQLite serialises writers.")
    meeting = held_session(world)
    note = services.note_open(meeting=meeting, author=world.coleader1)
    withdrawn, errors = threading.Event(), []

    def withdraw():
        try:
            with transaction.atomic():
                consent(world, world.participants[0], "withdrawn", timezone.now(), scope="past")
                withdrawn.set()
                time.sleep(0.5)  # the submission starts while this is uncommitted
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            withdrawn.set()
            connections.close_all()

    def submit():
        try:
            withdrawn.wait(10)
            services.note_submit(note=note, base_version=note.version, texts={}, actor=world.coleader1)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=withdraw), threading.Thread(target=submit)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert stored(meeting) == []  # S1 presented the case and attended the discussion


@pytest.mark.django_db
def test_marking_an_attendee_present_in_the_django_admin_takes_the_discussion_out(client, world):
    """S3 (no consent) recorded as present by a superuser in the admin: the
    discussion may now mention S3, so it stops being research data at once."""
    from django.urls import reverse

    meeting = submitted_session(world)
    absent = Attendance.objects.create(meeting=meeting, participant=world.participants[2], present=False)
    assert stored(meeting) == ["case", "discussion", "other"]
    superuser = world.admin.__class__.objects.create_superuser("root", "root@example.org", "x-Password-42")
    client.force_login(superuser)
    response = client.post(reverse("admin:balint_sessions_attendance_change", args=[absent.pk]), {
        "meeting": meeting.pk, "participant": world.participants[2].pk, "present": "on",
    })
    assert response.status_code == 302, response.content.decode()[:500]
    assert stored(meeting) == ["case"]
