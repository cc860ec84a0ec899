"""Research eligibility, decided when the facts change and stored.

Whether a note section is research data depends on five tables: the note's
status, the section's case and its presenter, the session's start, who
attended, and every consent event of those people
(`NoteSectionQuerySet.decide_research_eligible`). Deciding that at every read
costs correlated consent lookups per section and per attendee, on every page
and export, growing with the course. So it is decided when one of those facts
changes, in the same transaction as the change, and kept in
`NoteSection.research_ok`; reads filter on it (`research_eligible()`).

`refresh()` re-runs the decision for the sections a change can affect and
writes only the rows whose answer changed. It is reached two ways:

- by signals, for every `save()` and `delete()` of a consent, attendance,
  case, session, note or section (the services, the Django admin, the shell);
- by direct calls after queryset writes, which send no signals (attendance
  and sections created in bulk, a note's status claimed by a conditional
  UPDATE).

Concurrent changes in one course are serialised by locking the course's row
before deciding, so a consent withdrawal and a note submission committing at
the same moment cannot each decide on the other's stale state. The
management command `refresh_research_flags` re-decides every section (after
a restore or a hand edit in SQL) and, with `--check`, reports differences.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q, QuerySet

from sessions.models import Course

from .models import NoteSection


BATCH = 2000


def _lock_course(course_id: int) -> None:
    # SELECT … FOR UPDATE; a no-op on SQLite, which serialises writers anyway.
    list(Course.objects.select_for_update().filter(pk=course_id).values_list("pk", flat=True))


def refresh(sections: QuerySet[NoteSection]) -> int:
    """Store the decision for `sections` (all of one course); return how many changed."""
    # No savepoint: a failure here must roll back the change that called it.
    with transaction.atomic(savepoint=False):
        found = list(sections.order_by().values_list("pk", "note__meeting__group__course_id").distinct())
        if not found:
            return 0
        ids = [pk for pk, _ in found]
        _lock_course(found[0][1])
        changed = 0
        for first in range(0, len(ids), BATCH):  # a whole course at once is too long an IN list for SQLite
            # Read after the lock: another change in this course has committed by now.
            candidates = NoteSection.objects.filter(pk__in=ids[first:first + BATCH])
            stored = dict(candidates.values_list("pk", "research_ok"))
            eligible = set(candidates.decide_research_eligible().order_by().values_list("pk", flat=True))
            gained = [pk for pk, ok in stored.items() if pk in eligible and not ok]
            lost = [pk for pk, ok in stored.items() if ok and pk not in eligible]
            if gained:
                NoteSection.objects.filter(pk__in=gained).update(research_ok=True)
            if lost:
                NoteSection.objects.filter(pk__in=lost).update(research_ok=False)
            changed += len(gained) + len(lost)
        return changed


def refresh_meeting(meeting_id: int) -> int:
    """A session's facts changed: its time, attendance, cases or notes."""
    return refresh(NoteSection.objects.filter(note__meeting_id=meeting_id))


def refresh_note(note_id: int) -> int:
    """A note's status changed or it gained sections."""
    return refresh(NoteSection.objects.filter(note_id=note_id))


def refresh_participant(participant_id: int) -> int:
    """A participant's consent changed: every section they presented, and
    every section of a session they attended, may have changed."""
    return refresh(NoteSection.objects.filter(
        Q(case__presenter_id=participant_id) | Q(note__meeting__attendance__participant_id=participant_id)
    ))


def refresh_course(course: Course) -> int:
    return refresh(NoteSection.objects.filter(note__meeting__group__course=course))


def differences() -> list[int]:
    """Sections whose stored decision differs from the facts now (ids)."""
    eligible = set(NoteSection.objects.decide_research_eligible().values_list("pk", flat=True))
    stored = set(NoteSection.objects.filter(research_ok=True).values_list("pk", flat=True))
    return sorted(eligible ^ stored)
