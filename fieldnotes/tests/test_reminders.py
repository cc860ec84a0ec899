"""Overdue notes: the co-leader's "Notes to write" list and the reminder e-mail."""

import smtplib
from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from fieldnotes import reminders
from fieldnotes.models import FieldNote, NoteReminder
from fieldnotes.reminders import ReminderDeliveryFailed, overdue_notes, send_overdue_reminders, send_reminder
from fieldnotes.tasks import send_overdue_note_reminders
from sessions.models import Meeting, Membership, Role

NOW = timezone.now().replace(microsecond=0)


def session(group, number, *, ended_hours_ago, status=Meeting.Status.HELD, duration=90, **extra):
    """A session that ended `ended_hours_ago` hours before NOW."""
    starts_at = NOW - timedelta(hours=ended_hours_ago) - timedelta(minutes=duration)
    return Meeting.objects.create(
        group=group, number=number, starts_at=starts_at, duration_minutes=duration, status=status,
        cancel_reason="Ill" if status == Meeting.Status.CANCELLED else "", **extra,
    )


def note(meeting, author, *, submitted):
    if submitted:
        return FieldNote.objects.create(meeting=meeting, author=author, status="submitted", submitted_at=NOW)
    return FieldNote.objects.create(meeting=meeting, author=author)


def reminded(world):
    """Who got an e-mail, as (recipient username, subject)."""
    by_email = {u.email: u.username for u in (world.coleader1, world.coleader2, world.leader)}
    return sorted((by_email[m.to[0]], m.subject) for m in mail.outbox)


# --- Selection --------------------------------------------------------------------


def test_session_49_hours_ago_without_note_reminds_both_coleaders(world):
    meeting = session(world.group, 3, ended_hours_ago=49)
    assert send_overdue_reminders(now=NOW) == 2
    subject = "Field note missing: Group A, session 3"
    assert reminded(world) == [("coleader1", subject), ("coleader2", subject)]
    assert set(NoteReminder.objects.values_list("meeting", "user")) == {
        (meeting.pk, world.coleader1.pk), (meeting.pk, world.coleader2.pk)
    }


def test_session_47_hours_ago_is_not_yet_reminded(world):
    session(world.group, 1, ended_hours_ago=47)
    assert send_overdue_reminders(now=NOW) == 0
    assert mail.outbox == [] and not NoteReminder.objects.exists()


def test_deadline_counts_from_the_end_of_the_session(world):
    # Started 49 h ago but lasted three hours: ended 46 h ago.
    Meeting.objects.create(group=world.group, number=1, starts_at=NOW - timedelta(hours=49), duration_minutes=180,
                           status=Meeting.Status.HELD)
    assert send_overdue_reminders(now=NOW) == 0


def test_submitted_note_is_not_reminded_but_a_draft_is(world):
    meeting = session(world.group, 1, ended_hours_ago=49)
    note(meeting, world.coleader1, submitted=True)
    note(meeting, world.coleader2, submitted=False)
    assert send_overdue_reminders(now=NOW) == 1
    assert [m.to for m in mail.outbox] == [[world.coleader2.email]]


def test_cancelled_session_is_not_reminded(world):
    session(world.group, 1, ended_hours_ago=49, status=Meeting.Status.CANCELLED)
    assert send_overdue_reminders(now=NOW) == 0


def test_started_session_not_marked_held_still_counts(world):
    session(world.group, 1, ended_hours_ago=49, status=Meeting.Status.SCHEDULED)
    assert send_overdue_reminders(now=NOW) == 2


def test_inactive_user_is_not_reminded(world):
    world.coleader2.is_active = False
    world.coleader2.save()
    session(world.group, 1, ended_hours_ago=49)
    assert send_overdue_reminders(now=NOW) == 1
    assert [m.to for m in mail.outbox] == [[world.coleader1.email]]


def test_user_without_email_is_skipped_and_not_marked_reminded(world):
    world.coleader2.email = ""
    world.coleader2.save()
    session(world.group, 1, ended_hours_ago=49)
    assert send_overdue_reminders(now=NOW) == 1
    assert not NoteReminder.objects.filter(user=world.coleader2).exists()


def test_coleader_removed_from_group_is_not_reminded(world):
    Membership.objects.filter(user=world.coleader2, group=world.group, role=Role.COLEADER).delete()
    session(world.group, 1, ended_hours_ago=49)
    assert send_overdue_reminders(now=NOW) == 1
    assert [m.to for m in mail.outbox] == [[world.coleader1.email]]


def test_leader_and_other_groups_coleaders_are_not_reminded(world):
    Membership.objects.create(user=world.coleader2, course=world.course, group=world.other_group, role=Role.LEADER)
    session(world.other_group, 1, ended_hours_ago=49)
    assert send_overdue_reminders(now=NOW) == 0


def test_second_run_sends_nothing_new(world):
    session(world.group, 1, ended_hours_ago=49)
    assert send_overdue_reminders(now=NOW) == 2
    assert send_overdue_reminders(now=NOW + timedelta(hours=1)) == 0
    assert len(mail.outbox) == 2 and NoteReminder.objects.count() == 2


def test_a_claimed_reminder_is_not_sent_again(world):
    """A duplicate delivery or a concurrent run finds the row and sends nothing."""
    meeting = session(world.group, 1, ended_hours_ago=49)
    NoteReminder.objects.create(meeting=meeting, user=world.coleader1)
    assert send_reminder(meeting, world.coleader1) is False
    assert mail.outbox == [] and NoteReminder.objects.count() == 1


def test_sessions_long_past_the_window_are_not_reminded(world):
    session(world.group, 1, ended_hours_ago=48 + 24 * 15)
    recent = session(world.group, 2, ended_hours_ago=48 + 24 * 13)
    assert {o.meeting for o in overdue_notes(now=NOW)} == {recent}


def test_selection_query_count_does_not_grow(world, django_assert_num_queries):
    # meetings, co-leaders, submitted notes, reminders
    session(world.group, 1, ended_hours_ago=49)
    with django_assert_num_queries(4):
        overdue_notes(now=NOW)
    for number in range(2, 8):
        m = session(world.group, number, ended_hours_ago=49 + number)
        note(m, world.coleader1, submitted=number % 2 == 0)
    with django_assert_num_queries(4):
        assert len(overdue_notes(now=NOW)) == 7 * 2 - 3  # three submitted


# --- The e-mail --------------------------------------------------------------------


def test_email_has_local_time_and_absolute_link_but_no_note_text_or_names(world, settings):
    settings.SITE_URL = "https://balint.example.org"
    world.course.time_zone = "America/New_York"
    world.course.save()
    meeting = Meeting.objects.create(
        group=world.group, number=4, status=Meeting.Status.HELD,
        starts_at=datetime(2026, 9, 15, 16, 0, tzinfo=world.course.tz),
    )
    draft = note(meeting, world.coleader1, submitted=False)
    draft.sections.create(kind="discussion", text="Aino Virtanen talked about a secret patient story")
    assert send_reminder(meeting, world.coleader1)
    [message] = mail.outbox
    assert message.to == [world.coleader1.email]
    assert message.subject == "Field note missing: Group A, session 4"
    assert "Tuesday 15 September 2026, 16:00-17:30 (America/New_York)" in message.body
    assert f"https://balint.example.org/sessions/{meeting.pk}/note/" in message.body
    assert f"https://balint.example.org{reverse('fieldnotes:note_write', args=[meeting.pk])}" in message.body
    for private in ["secret patient", "Aino", "Virtanen", "Eero", "Helmi", "S1"]:
        assert private not in message.body and private not in message.subject


def test_group_name_is_not_html_escaped_in_the_email(world):
    world.group.name = "Group A & B"
    world.group.save()
    session(world.group, 1, ended_hours_ago=49)
    send_overdue_reminders(now=NOW)
    assert mail.outbox[0].subject == "Field note missing: Group A & B, session 1"
    assert "Group A & B, session 1" in mail.outbox[0].body


# --- Failures and the task ----------------------------------------------------------


def test_a_failed_send_leaves_no_claim_and_the_others_still_go_out(world):
    session(world.group, 1, ended_hours_ago=49)
    real = reminders.reminder_message

    def failing_for_coleader1(meeting, user):
        message = real(meeting, user)
        if user == world.coleader1:
            message.send = mock.Mock(side_effect=smtplib.SMTPServerDisconnected("gone"))
        return message

    with mock.patch.object(reminders, "reminder_message", failing_for_coleader1):
        with pytest.raises(ReminderDeliveryFailed) as failed:
            send_overdue_reminders(now=NOW)
    assert (failed.value.sent, failed.value.failed) == (1, 1)
    assert list(NoteReminder.objects.values_list("user", flat=True)) == [world.coleader2.pk]
    # The next run sends the one that failed.
    assert send_overdue_reminders(now=NOW) == 1
    assert sorted(m.to[0] for m in mail.outbox) == [world.coleader1.email, world.coleader2.email]


def test_task_returns_the_count_sent(world):
    Meeting.objects.create(group=world.group, number=1, status=Meeting.Status.HELD,
                           starts_at=timezone.now() - timedelta(hours=52))
    assert send_overdue_note_reminders.delay().get() == 2
    assert send_overdue_note_reminders.delay().get() == 0


def test_task_retries_a_transient_smtp_error(world):
    Meeting.objects.create(group=world.group, number=1, status=Meeting.Status.HELD,
                           starts_at=timezone.now() - timedelta(hours=52))
    real_send = reminders.EmailMessage.send
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(self.to)
        if len(calls) == 1:
            raise smtplib.SMTPConnectError(421, "try later")
        return real_send(self, *args, **kwargs)

    with mock.patch.object(reminders.EmailMessage, "send", flaky):
        # Run in-process without propagating, so apply() performs the retry at once.
        result = send_overdue_note_reminders.apply(throw=False)
    assert result.get() == 1  # the retry sent the one that failed
    assert len(calls) == 3 and len(mail.outbox) == 2 and NoteReminder.objects.count() == 2


def test_task_is_acked_late_and_bounded():
    task = send_overdue_note_reminders
    assert task.acks_late and task.time_limit and task.soft_time_limit < task.time_limit
    assert task.max_retries and task.retry_backoff


def test_beat_runs_the_task_hourly(settings):
    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if e["task"] == send_overdue_note_reminders.name]
    assert entry["schedule"] == 3600


# --- The dashboard -------------------------------------------------------------------


def test_dashboard_lists_notes_to_write_oldest_first_with_overdue_marked(client, world):
    now = timezone.now()
    old = Meeting.objects.create(group=world.group, number=1, status=Meeting.Status.HELD,
                                 starts_at=now - timedelta(days=7))
    recent = Meeting.objects.create(group=world.group, number=2, starts_at=now - timedelta(hours=3))  # started
    done = Meeting.objects.create(group=world.group, number=3, status=Meeting.Status.HELD,
                                  starts_at=now - timedelta(days=5))
    cancelled = Meeting.objects.create(group=world.group, number=4, status=Meeting.Status.CANCELLED,
                                       cancel_reason="Strike", starts_at=now - timedelta(days=4))
    future = Meeting.objects.create(group=world.group, number=5, starts_at=now + timedelta(days=4))
    elsewhere = Meeting.objects.create(group=world.other_group, number=1, status=Meeting.Status.HELD,
                                       starts_at=now - timedelta(days=6))
    note(done, world.coleader1, submitted=True)
    note(recent, world.coleader1, submitted=False)
    note(old, world.coleader2, submitted=True)  # the other co-leader's note does not count

    client.force_login(world.coleader1)
    response = client.get(reverse("sessions:dashboard"))
    listed = [m.pk for m in response.context["notes_to_write"]]
    assert listed == [old.pk, recent.pk]
    assert [m.note_overdue for m in response.context["notes_to_write"]] == [True, False]
    html = response.text
    panel = html[html.index('id="notes-to-write"'):html.index("Your upcoming sessions")]
    write, draft = (reverse("fieldnotes:note_write", args=[m.pk]) for m in (old, recent))
    assert panel.index(write) < panel.index(draft)
    assert "Write note" in panel and "Continue draft" in panel and panel.count("Overdue") == 1
    for absent in (done, cancelled, future, elsewhere):
        assert reverse("fieldnotes:note_write", args=[absent.pk]) not in html


def test_dashboard_says_when_there_are_no_notes_to_write(client, world):
    client.force_login(world.coleader1)
    assert "No notes to write" in client.get(reverse("sessions:dashboard")).text


def test_leader_dashboard_has_no_notes_to_write(client, world):
    Meeting.objects.create(group=world.group, number=1, status=Meeting.Status.HELD,
                           starts_at=timezone.now() - timedelta(days=3))
    client.force_login(world.leader)
    assert "Notes to write" not in client.get(reverse("sessions:dashboard")).text


def test_coleader_dashboard_query_count_is_fixed(client, world, django_assert_num_queries):
    client.force_login(world.coleader1)
    url = reverse("sessions:dashboard")
    client.get(url)
    # session, user, memberships, upcoming, notes to write
    with django_assert_num_queries(5):
        client.get(url)
    now = timezone.now()
    for number in range(1, 9):
        m = Meeting.objects.create(group=world.group, number=number, status=Meeting.Status.HELD,
                                   starts_at=now - timedelta(days=number))
        if number % 3 == 0:
            note(m, world.coleader1, submitted=number % 2 == 0)
    for number in range(9, 12):
        Meeting.objects.create(group=world.group, number=number, starts_at=now + timedelta(days=number))
    with django_assert_num_queries(5):
        response = client.get(url)
    assert len(response.context["notes_to_write"]) == 7
