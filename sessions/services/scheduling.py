"""Scheduling sessions, keeping attendance and case presentations.

Each write is one function inside a transaction, and records what it did in
the audit log. Times are stored in UTC; they are entered and computed as local
wall-clock times in the course's zone, so a daylight-saving change never moves
a session away from "17:00 every Tuesday".
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from django.db import transaction
from django.db.models import Max, ProtectedError, Q
from django.utils import timezone

from .. import audit
from ..models import Attendance, CasePresentation, Group, Meeting, Membership, Participant, Role

MEETING_FIELDS = ["starts_at", "duration_minutes", "place", "status", "cancel_reason"]
CASE_FIELDS = ["presenter", "order", "title"]

# Forms cap a session at a day; clash checks look back this far for sessions
# that started earlier and are still running.
MAX_DURATION_MINUTES = 24 * 60

# The register may be opened a little before the start, for the people arriving early.
ATTENDANCE_OPENS_BEFORE = timedelta(minutes=30)


class SchedulingRefused(Exception):
    """An action the session's state does not allow; the message says why, for the user."""


# --- Local times --------------------------------------------------------------


def local_to_utc(day: date, at: time, tz: zoneinfo.ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time in `tz`.

    Raises ValueError for a time that does not exist that day (skipped when the
    clocks go forward); an ambiguous one (clocks going back) is taken as the
    first of the two.
    """
    local = datetime.combine(day, at, tzinfo=tz)
    back = local.astimezone(dt_timezone.utc).astimezone(tz)
    if back.replace(tzinfo=None) != local.replace(tzinfo=None):
        raise ValueError(f"{at:%H:%M} does not exist on {day:%Y-%m-%d} in {tz.key}: the clocks move forward then.")
    return local.astimezone(dt_timezone.utc)


def series_dates(*, first_date: date, count: int, every_weeks: int, skip: Iterable[date] = ()) -> list[date]:
    """`count` dates every `every_weeks` weeks from `first_date`, passing over `skip`.

    A skipped date does not shorten the series: it goes on until `count` dates
    are found.
    """
    skip = set(skip)
    found: list[date] = []
    day = first_date
    while len(found) < count:
        if day not in skip:
            found.append(day)
        day += timedelta(weeks=every_weeks)
    return found


def series_starts(
    *, first_date: date, at: time, count: int, every_weeks: int, tz: zoneinfo.ZoneInfo, skip: Iterable[date] = ()
) -> list[datetime]:
    """The UTC starts of a series, each computed from the local date and time.

    Adding whole weeks to a UTC instant would shift the local time by an hour
    across a daylight-saving change; combining each date with the local time
    keeps every session at the same hour on the wall clock.
    """
    return [
        local_to_utc(day, at, tz)
        for day in series_dates(first_date=first_date, count=count, every_weeks=every_weeks, skip=skip)
    ]


# --- Clashes ------------------------------------------------------------------


@dataclass
class Clash:
    """An existing session that a proposed one would overlap, and why it matters."""

    meeting: Meeting
    reasons: list[str] = field(default_factory=list)


def find_clashes(
    *,
    group: Group,
    slots: list[tuple[datetime, int]],
    place: str,
    exclude_pk: int | None = None,
) -> dict[datetime, list[Clash]]:
    """Existing sessions overlapping each proposed (start, minutes) slot.

    A clash is a session that is not cancelled, whose time range intersects the
    slot, and that either belongs to a group sharing a leader with `group`
    (this group included: it cannot meet twice at once) or takes the same
    non-empty place. Places are compared within the course only: room names
    are an institution's, and another course's rooms are not ours to list.
    Returns {slot start: clashes}, only for slots that clash. One query for
    the memberships and one for the candidate sessions, however many slots.
    """
    if not slots:
        return {}
    leader_ids = Membership.objects.filter(group=group, role=Role.LEADER).values("user_id")
    shared_group_ids = set(
        Membership.objects.filter(role=Role.LEADER, user_id__in=leader_ids).values_list("group_id", flat=True)
    )
    shared_group_ids.add(group.pk)

    wanted_place = _place_key(place)
    earliest = min(start for start, _ in slots) - timedelta(minutes=MAX_DURATION_MINUTES)
    latest = max(start + timedelta(minutes=minutes) for start, minutes in slots)
    # Leader clashes may be in any course; place clashes only in this one.
    # The place itself is compared in Python: SQLite's case-insensitive match
    # ignores non-ASCII letters (a room "Ääni" must match "ääni").
    related = Q(group_id__in=shared_group_ids)
    if wanted_place:
        related |= Q(group__course_id=group.course_id) & ~Q(place="")
    candidates = (
        Meeting.objects.active()
        .filter(related, starts_at__lt=latest, starts_at__gt=earliest)
        .select_related("group__course")
        .order_by("starts_at")
    )
    if exclude_pk is not None:
        candidates = candidates.exclude(pk=exclude_pk)
    candidates = list(candidates)

    found: dict[datetime, list[Clash]] = {}
    for start, minutes in slots:
        end = start + timedelta(minutes=minutes)
        for other in candidates:
            if not (other.starts_at < end and start < other.ends_at):
                continue
            reasons = []
            if other.group_id == group.pk:
                reasons.append("same group")
            elif other.group_id in shared_group_ids:
                reasons.append("same leader")
            if wanted_place and other.group.course_id == group.course_id and _place_key(other.place) == wanted_place:
                reasons.append("same place")
            if reasons:
                found.setdefault(start, []).append(Clash(meeting=other, reasons=reasons))
    return found


def _place_key(place: str) -> str:
    return " ".join(place.split()).casefold()


# --- Sessions -----------------------------------------------------------------


def _next_number(group: Group) -> int:
    # Lock the group row so two leaders scheduling at once cannot both take
    # the same number (a no-op on SQLite, which serialises writes anyway).
    Group.objects.select_for_update().filter(pk=group.pk).first()
    return (group.meetings.aggregate(top=Max("number"))["top"] or 0) + 1


@transaction.atomic
def meeting_create(*, group: Group, starts_at: datetime, duration_minutes: int, place: str, actor) -> Meeting:
    """A one-off session, numbered after the group's existing ones."""
    meeting = Meeting.objects.create(
        group=group,
        number=_next_number(group),
        starts_at=starts_at,
        duration_minutes=duration_minutes,
        place=place,
    )
    audit.record(
        actor=actor, action="meeting.create", obj=meeting, course=group.course,
        summary=f"Scheduled {meeting} for {_local_label(meeting)}",
        changes=audit.diff({}, audit.snapshot(meeting, MEETING_FIELDS)),
    )
    return meeting


@transaction.atomic
def series_create(
    *, group: Group, starts: list[datetime], duration_minutes: int, place: str, actor
) -> list[Meeting]:
    """Sessions at each of `starts`, numbered on from the group's last session.

    `starts` come from `series_starts`, which keeps the local time across
    daylight-saving changes; the caller computes them first because the
    overlap check needs them before anything is saved. All or nothing, and
    one audit event for the whole series.
    """
    if not starts:
        raise ValueError("A series needs at least one session.")
    first_number = _next_number(group)
    meetings = [
        Meeting(group=group, number=first_number + i, starts_at=start, duration_minutes=duration_minutes, place=place)
        for i, start in enumerate(sorted(starts))
    ]
    # One insert per row rather than bulk_create: the audit trail needs the
    # primary keys, and bulk_create only returns them on some databases.
    for meeting in meetings:
        meeting.save()
    audit.record(
        actor=actor, action="meeting.series_create", obj=meetings[0], course=group.course,
        summary=(
            f"Scheduled {len(meetings)} sessions of {group} "
            f"({meetings[0].number}–{meetings[-1].number}) from {_local_label(meetings[0])}"
        ),
        changes={
            "sessions": [{"id": m.pk, "number": m.number, "starts_at": m.starts_at.isoformat()} for m in meetings],
            "duration_minutes": duration_minutes,
            "place": place,
        },
    )
    return meetings


@transaction.atomic
def meeting_reschedule(
    *, meeting: Meeting, starts_at: datetime, duration_minutes: int, place: str, actor
) -> Meeting:
    if meeting.status == Meeting.Status.CANCELLED:
        raise SchedulingRefused("A cancelled session cannot be rescheduled. Schedule a new session instead.")
    before = audit.snapshot(meeting, MEETING_FIELDS)
    meeting.starts_at = starts_at
    meeting.duration_minutes = duration_minutes
    meeting.place = place
    meeting.save(update_fields=["starts_at", "duration_minutes", "place", "updated_at"])
    audit.record(
        actor=actor, action="meeting.reschedule", obj=meeting, course=meeting.group.course,
        summary=f"Rescheduled {meeting} to {_local_label(meeting)}",
        changes=audit.diff(before, audit.snapshot(meeting, MEETING_FIELDS)),
    )
    return meeting


@transaction.atomic
def meeting_cancel(*, meeting: Meeting, reason: str, actor) -> Meeting:
    reason = reason.strip()
    if not reason:
        raise SchedulingRefused("Give a reason for cancelling the session.")
    if meeting.status == Meeting.Status.CANCELLED:
        raise SchedulingRefused("This session is already cancelled.")
    if meeting.status == Meeting.Status.HELD:
        raise SchedulingRefused("This session has been held, with attendance recorded; it cannot be cancelled.")
    before = audit.snapshot(meeting, MEETING_FIELDS)
    meeting.status = Meeting.Status.CANCELLED
    meeting.cancel_reason = reason
    meeting.save(update_fields=["status", "cancel_reason", "updated_at"])
    audit.record(
        actor=actor, action="meeting.cancel", obj=meeting, course=meeting.group.course,
        summary=f"Cancelled {meeting} ({_local_label(meeting)})",
        changes=audit.diff(before, audit.snapshot(meeting, MEETING_FIELDS)),
    )
    return meeting


def _local_label(meeting: Meeting) -> str:
    return f"{meeting.local_start():%Y-%m-%d %H:%M} {meeting.group.course.time_zone}"


# --- Attendance ---------------------------------------------------------------


def attendance_refusal(meeting: Meeting, *, now: datetime | None = None) -> str | None:
    """Why the register cannot be taken now, or None when it can."""
    now = now or timezone.now()
    if meeting.status == Meeting.Status.CANCELLED:
        return "This session was cancelled, so there is no attendance to record."
    if now < meeting.starts_at - ATTENDANCE_OPENS_BEFORE:
        return "Attendance can be recorded from 30 minutes before the session starts."
    return None


@transaction.atomic
def attendance_record(
    *, meeting: Meeting, participants: list[Participant], present_ids: set[int], actor
) -> Meeting:
    """Mark each of the group's `participants` present or absent, and the session held.

    `participants` is the whole register (the group's participants); anyone
    not in `present_ids` is recorded absent, so a second save corrects the first.
    """
    refusal = attendance_refusal(meeting)
    if refusal:
        raise SchedulingRefused(refusal)
    existing = {a.participant_id: a for a in meeting.attendance.all()}
    before = {str(pid): a.present for pid, a in existing.items()}
    to_create, to_update = [], []
    for participant in participants:
        present = participant.pk in present_ids
        row = existing.get(participant.pk)
        if row is None:
            to_create.append(Attendance(meeting=meeting, participant=participant, present=present))
        elif row.present != present:
            row.present = present
            to_update.append(row)
    Attendance.objects.bulk_create(to_create)
    Attendance.objects.bulk_update(to_update, ["present"])
    if to_create or to_update:
        from fieldnotes import eligibility  # fieldnotes builds on sessions, not the other way

        eligibility.refresh_meeting(meeting.pk)  # bulk writes send no signals

    status_before = meeting.status
    if meeting.status != Meeting.Status.HELD:
        meeting.status = Meeting.Status.HELD
        meeting.save(update_fields=["status", "updated_at"])
    after = {str(p.pk): p.pk in present_ids for p in participants}
    # Pseudonymous ids only: the audit log is read by course admins, but its
    # summaries should not need names to make sense.
    changes = {"present": audit.diff(before, after)}
    if status_before != meeting.status:
        changes["status"] = [status_before, meeting.status]
    audit.record(
        actor=actor, action="attendance.record", obj=meeting, course=meeting.group.course,
        summary=f"Recorded attendance of {meeting}: {len(present_ids)} of {len(participants)} present",
        changes=changes,
    )
    return meeting


# --- Case presentations -------------------------------------------------------


def case_refusal(meeting: Meeting, *, now: datetime | None = None) -> str | None:
    """Why cases cannot be recorded for this session yet, or None when they can."""
    now = now or timezone.now()
    if meeting.status == Meeting.Status.CANCELLED:
        return "This session was cancelled; no cases were presented."
    if meeting.status != Meeting.Status.HELD and meeting.starts_at > now:
        return "Cases can be recorded once the session has started."
    return None


@transaction.atomic
def case_add(*, meeting: Meeting, presenter: Participant, order: int, title: str, actor) -> CasePresentation:
    refusal = case_refusal(meeting)
    if refusal:
        raise SchedulingRefused(refusal)
    case = CasePresentation.objects.create(meeting=meeting, presenter=presenter, order=order, title=title)
    audit.record(
        actor=actor, action="case.add", obj=case, course=meeting.group.course,
        summary=f"Added case {order} by {presenter} to {meeting}",
        changes=audit.diff({}, audit.snapshot(case, CASE_FIELDS)),
    )
    return case


@transaction.atomic
def case_update(
    *, case: CasePresentation, presenter: Participant, order: int, title: str, actor
) -> CasePresentation:
    before = audit.snapshot(case, CASE_FIELDS)
    case.presenter, case.order, case.title = presenter, order, title
    case.save()
    audit.record(
        actor=actor, action="case.edit", obj=case, course=case.meeting.group.course,
        summary=f"Edited case {order} of {case.meeting}",
        changes=audit.diff(before, audit.snapshot(case, CASE_FIELDS)),
    )
    return case


@transaction.atomic
def case_delete(*, case: CasePresentation, actor) -> None:
    # Recorded before the delete, while the row still has its id; a refused
    # delete raises out of the transaction and takes the record with it.
    audit.record(
        actor=actor, action="case.delete", obj=case, course=case.meeting.group.course,
        summary=f"Deleted case {case.order} (by {case.presenter}) of {case.meeting}",
        changes=audit.diff(audit.snapshot(case, CASE_FIELDS), {}),
    )
    try:
        case.delete()
    except ProtectedError:
        # Field notes have a section about this case: the notes are research
        # data and must not lose their anchor.
        raise SchedulingRefused(
            "This case cannot be deleted: field notes have a section about it. Edit the case instead."
        ) from None


def next_case_order(meeting: Meeting) -> int:
    return (meeting.cases.aggregate(top=Max("order"))["top"] or 0) + 1
