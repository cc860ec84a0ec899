"""The demo course: what a new user finds after `make run`."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from sessions.models import AuditEvent, CasePresentation, Consent, Course, Meeting, Membership, Participant, Role


def test_seed_demo_builds_the_study_shaped_course_once(db, settings):
    settings.DEBUG = True
    call_command("seed_demo")
    course = Course.objects.get(name="Student Balint groups (demo)")
    groups = list(course.groups.all())
    assert len(groups) == 2
    assert Participant.objects.filter(course=course).count() == 9
    assert all(p.current_consent.decision == Consent.Decision.GIVEN for p in Participant.objects.filter(course=course))
    for group in groups:
        meetings = list(group.meetings.order_by("number"))
        assert len(meetings) == 15
        assert {m.duration_minutes for m in meetings} == {90}
        past = [m for m in meetings if m.starts_at < timezone.now()]
        assert past and all(m.status == Meeting.Status.HELD for m in past)
        assert all(m.attendance.count() == group.participants.count() for m in past)
        assert all(m.cases.exists() for m in past)
        assert all(m.status == Meeting.Status.SCHEDULED for m in meetings if m.starts_at > timezone.now())
        # every session at 16:15 Helsinki time, whatever the daylight-saving season
        assert {m.local_start().strftime("%H:%M") for m in meetings} == {"16:15"}

    User = get_user_model()
    for username in ["admin", "leader", "coleader1", "coleader2", "researcher1", "researcher2"]:
        assert User.objects.get(username=username).check_password(settings.DEMO_PASSWORD)
    assert Membership.objects.filter(user__username="admin", course=course, role=Role.ADMIN).exists()
    assert Membership.objects.filter(user__username="coleader1", role=Role.COLEADER).count() == 2

    # A study in progress: coding by researcher1, memos, a closed double-coding round with researcher2.
    from analysis.models import CodedSegment, CodingRound, Memo

    shared = CodedSegment.objects.research(course)
    assert shared.filter(coder__username="researcher1").count() == shared.count() > 50
    assert shared.filter(code__name="Role confusion").exists()
    closed = CodingRound.objects.get(course=course)
    assert closed.status == "closed"
    assert set(closed.coders.values_list("username", flat=True)) == {"researcher1", "researcher2"}
    assert closed.segments.filter(coder__username="researcher2").exists()
    assert Memo.objects.filter(course=course).count() >= 3
    for segment in shared:
        assert segment.section.text[segment.start:segment.end] == segment.quote

    counts = (AuditEvent.objects.count(), Meeting.objects.count(), CasePresentation.objects.count(), User.objects.count())
    call_command("seed_demo")
    assert counts == (
        AuditEvent.objects.count(), Meeting.objects.count(), CasePresentation.objects.count(), User.objects.count()
    )


def test_seed_demo_refuses_without_debug(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="Refusing to create demo users"):
        call_command("seed_demo")
    assert not get_user_model().objects.exists()
