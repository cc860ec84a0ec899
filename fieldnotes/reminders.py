"""Overdue field notes: which co-leaders still owe a note, and the reminder e-mail.

A note is *due* once a session has been held (marked held, or started and not
cancelled) and *overdue* when it is still not submitted NOTE_REMINDER_HOURS
after the session ended. Each overdue note gets one reminder e-mail, recorded
as a NoteReminder row.

Delivery is at-least-once: the NoteReminder row is inserted and the e-mail sent
inside one transaction, which commits only after the mail server accepted the
message. A failed send rolls the row back, so the next run tries again (a lost
reminder would be silent). The unique (meeting, user) row makes a duplicate
task delivery or a concurrent run wait for the first claim and then skip it.
Only a crash between the server accepting the message and the commit can send
one reminder twice, which is the cheaper mistake.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from sessions.models import Meeting, Membership, Role

from .models import FieldNote, NoteReminder

log = logging.getLogger(__name__)

# Reminders go out for sessions that became overdue within this window only:
# the first run on an existing installation (or after a long outage) must not
# mail co-leaders about every session of past terms. The dashboard still lists
# those notes.
REMINDER_WINDOW = timedelta(days=14)
# The longest session Meeting.duration_minutes can hold; bounds the SQL prefilter.
LONGEST_SESSION = timedelta(minutes=32767)


def reminder_delay() -> timedelta:
    return timedelta(hours=settings.NOTE_REMINDER_HOURS)


def is_overdue(meeting: Meeting, now: datetime) -> bool:
    return meeting.ends_at + reminder_delay() <= now


def held_q(now: datetime) -> Q:
    """Sessions that took place: marked held, or started and not cancelled."""
    return (Q(status=Meeting.Status.HELD) | Q(starts_at__lte=now)) & ~Q(status=Meeting.Status.CANCELLED)


# --- The dashboard ------------------------------------------------------------


def notes_to_write(user, groups, now: datetime | None = None) -> list[Meeting]:
    """Held sessions of `groups` without a submitted note by `user`, oldest first.

    One query. Each meeting gets `has_draft` (the user has started a note) and
    `note_overdue` (past the reminder deadline).
    """
    now = now or timezone.now()
    mine = FieldNote.objects.filter(meeting=OuterRef("pk"), author=user)
    meetings = list(
        Meeting.objects.filter(held_q(now), group__in=groups)
        .filter(~Exists(mine.filter(status=FieldNote.Status.SUBMITTED)))
        .annotate(has_draft=Exists(mine))
        .select_related("group__course")
        .order_by("starts_at", "pk")
    )
    for meeting in meetings:
        meeting.note_overdue = is_overdue(meeting, now)
    return meetings


# --- Reminders ------------------------------------------------------------------


@dataclass(frozen=True)
class Overdue:
    meeting: Meeting
    user: object  # the co-leader who owes the note


def overdue_notes(now: datetime | None = None) -> list[Overdue]:
    """Every (session, co-leader) pair that should get a reminder now.

    The co-leader is active, still co-leads the session's group, has an
    e-mail address, has not submitted a note and has not been reminded.
    A fixed number of queries, whatever the number of sessions.
    """
    now = now or timezone.now()
    delay = reminder_delay()
    candidates = (
        Meeting.objects.exclude(status=Meeting.Status.CANCELLED)
        .filter(starts_at__lte=now - delay, starts_at__gte=now - delay - REMINDER_WINDOW - LONGEST_SESSION)
        .select_related("group__course")
        .order_by("starts_at", "pk")
    )
    # The end is starts_at + duration: compared here, as SQL date arithmetic
    # differs between PostgreSQL and SQLite.
    meetings = [m for m in candidates if now - REMINDER_WINDOW <= m.ends_at + delay <= now]
    if not meetings:
        return []
    meeting_ids = [m.pk for m in meetings]
    coleaders: dict[int, list] = {}
    memberships = (
        Membership.objects.filter(role=Role.COLEADER, group_id__in={m.group_id for m in meetings}, user__is_active=True)
        .exclude(user__email="")
        .select_related("user")
        .order_by("user_id")
    )
    for membership in memberships:
        coleaders.setdefault(membership.group_id, []).append(membership.user)
    submitted = set(
        FieldNote.objects.filter(meeting_id__in=meeting_ids, status=FieldNote.Status.SUBMITTED).values_list(
            "meeting_id", "author_id"
        )
    )
    reminded = set(NoteReminder.objects.filter(meeting_id__in=meeting_ids).values_list("meeting_id", "user_id"))
    return [
        Overdue(meeting, user)
        for meeting in meetings
        for user in coleaders.get(meeting.group_id, [])
        if (meeting.pk, user.pk) not in submitted and (meeting.pk, user.pk) not in reminded
    ]


def reminder_message(meeting: Meeting, user) -> EmailMessage:
    """The e-mail: which session, when, and a link. Never note text or names of participants."""
    context = {
        "user": user,
        "meeting": meeting,
        "group": meeting.group,
        "course": meeting.group.course,
        "hours": settings.NOTE_REMINDER_HOURS,
        "url": settings.SITE_URL + reverse("fieldnotes:note_write", args=[meeting.pk]),
    }
    subject = " ".join(render_to_string("fieldnotes/reminder_subject.txt", context).split())
    body = render_to_string("fieldnotes/reminder_email.txt", context)
    return EmailMessage(subject=subject, body=body, to=[user.email])


def send_reminder(meeting: Meeting, user) -> bool:
    """Claim the reminder for (meeting, user) and send it; False if already claimed.

    The claim commits only when the send succeeded (see the module docstring).
    """
    try:
        with transaction.atomic():
            NoteReminder.objects.create(meeting=meeting, user=user)
            reminder_message(meeting, user).send()
    except IntegrityError:
        return False
    log.info("Sent field-note reminder for meeting %s to user %s", meeting.pk, user.pk)
    return True


class ReminderDeliveryFailed(Exception):
    """Some reminders could not be sent; they are left unclaimed for a retry."""

    def __init__(self, sent: int, failed: int):
        super().__init__(f"{failed} reminder(s) could not be sent ({sent} sent)")
        self.sent = sent
        self.failed = failed


def send_overdue_reminders(now: datetime | None = None) -> int:
    """Send every reminder that is due; return how many were sent.

    A failing send does not stop the others. If any failed, raises
    ReminderDeliveryFailed (from the first error) after the rest were tried.
    """
    sent = 0
    errors: list[Exception] = []
    for item in overdue_notes(now):
        try:
            if send_reminder(item.meeting, item.user):
                sent += 1
        except OSError as exc:  # smtplib.SMTPException and connection errors
            log.warning("Field-note reminder for meeting %s to user %s failed: %r", item.meeting.pk, item.user.pk, exc)
            errors.append(exc)
    if errors:
        raise ReminderDeliveryFailed(sent, len(errors)) from errors[0]
    return sent
