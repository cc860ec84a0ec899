"""Research eligibility from consent: which note sections research may use.

A case section needs its presenter's consent in force when the session
started; a discussion (or other) section needs that of every attendee. A
withdrawal that also removes past data takes the participant's cases, and the
discussions of sessions they attended, out at once.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from fieldnotes import services
from fieldnotes.models import NoteSection
from sessions.models import Attendance, CasePresentation, Consent, Meeting

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


@pytest.fixture
def session(world):
    """A held session two weeks ago: S1 presents a case, S1 and S2 attend."""
    s1, s2, _ = world.participants
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - 14 * DAY,
                                     status=Meeting.Status.HELD)
    Attendance.objects.create(meeting=meeting, participant=s1, present=True)
    Attendance.objects.create(meeting=meeting, participant=s2, present=True)
    Attendance.objects.create(meeting=meeting, participant=world.participants[2], present=False)
    CasePresentation.objects.create(meeting=meeting, presenter=s1, order=1, title="A case")
    note = services.note_open(meeting=meeting, author=world.coleader1)
    services.note_submit(note=note, base_version=0, texts={}, actor=world.coleader1)
    return meeting


def consent(world, participant, decision, when, scope=""):
    return Consent.objects.create(
        participant=participant, form=world.form, form_version=1, form_text=world.form.text, decision=decision,
        decided_at=when, method="paper", withdrawal_scope=scope, recorded_by=world.leader,
    )


def eligible_kinds():
    return sorted(NoteSection.objects.research_eligible().values_list("kind", flat=True))


def both_consent(world, session):
    for p in world.participants[:2]:
        consent(world, p, "given", session.starts_at - DAY)


def test_consent_of_presenter_and_attendees_makes_case_and_discussion_eligible(world, session):
    both_consent(world, session)
    # "other observations" follows the discussion's rule: it may mention anyone present
    assert eligible_kinds() == ["case", "discussion", "other"]


def test_nothing_is_eligible_without_any_consent(world, session):
    assert eligible_kinds() == []


def test_declined_presenter_takes_out_the_case_and_the_discussion(world, session):
    consent(world, world.participants[0], "declined", session.starts_at - DAY)
    consent(world, world.participants[1], "given", session.starts_at - DAY)
    assert eligible_kinds() == []


def test_an_absent_participant_without_consent_does_not_block_the_discussion(world, session):
    both_consent(world, session)
    consent(world, world.participants[2], "declined", session.starts_at - DAY)  # S3 was absent
    assert "discussion" in eligible_kinds()


def test_consent_given_after_the_session_does_not_reach_back(world, session):
    consent(world, world.participants[0], "given", session.starts_at + DAY)
    consent(world, world.participants[1], "given", session.starts_at - DAY)
    assert eligible_kinds() == []


def test_withdrawal_for_future_only_keeps_past_sessions(world, session):
    both_consent(world, session)
    consent(world, world.participants[0], "withdrawn", session.starts_at + DAY, scope="future")
    assert eligible_kinds() == ["case", "discussion", "other"]


def test_withdrawal_for_future_only_excludes_later_sessions(world, session):
    both_consent(world, session)
    consent(world, world.participants[0], "withdrawn", session.starts_at + DAY, scope="future")
    later = Meeting.objects.create(group=world.group, number=2, starts_at=session.starts_at + 7 * DAY,
                                   status=Meeting.Status.HELD)
    Attendance.objects.create(meeting=later, participant=world.participants[0], present=True)
    CasePresentation.objects.create(meeting=later, presenter=world.participants[0], order=1, title="Later case")
    note = services.note_open(meeting=later, author=world.coleader1)
    services.note_submit(note=note, base_version=0, texts={}, actor=world.coleader1)
    later_eligible = NoteSection.objects.research_eligible().filter(note__meeting=later)
    assert not later_eligible.exists()


def test_withdrawal_of_past_data_removes_cases_and_attended_discussions_at_once(world, session):
    both_consent(world, session)
    assert eligible_kinds() == ["case", "discussion", "other"]
    consent(world, world.participants[1], "withdrawn", timezone.now(), scope="past")  # S2 attended, no case
    assert eligible_kinds() == ["case"]
    consent(world, world.participants[0], "withdrawn", timezone.now() + timedelta(seconds=1), scope="past")
    assert eligible_kinds() == []


def test_consent_given_again_restores_only_what_past_data_withdrawal_did_not_remove(world, session):
    both_consent(world, session)
    consent(world, world.participants[0], "withdrawn", session.starts_at + DAY, scope="future")
    consent(world, world.participants[0], "given", session.starts_at + 2 * DAY)
    assert eligible_kinds() == ["case", "discussion", "other"]


def test_discussion_needs_recorded_attendance(world):
    s1 = world.participants[0]
    consent(world, s1, "given", timezone.now() - 30 * DAY)
    meeting = Meeting.objects.create(group=world.group, number=3, starts_at=timezone.now() - DAY)
    note = services.note_open(meeting=meeting, author=world.coleader1)
    services.note_submit(note=note, base_version=0, texts={}, actor=world.coleader1)
    section = NoteSection.objects.with_eligibility().get(note=note, kind="discussion")
    assert "Attendance was not recorded" in section.ineligibility_reason()
    assert eligible_kinds() == []


def test_drafts_are_never_research_data(world, session):
    both_consent(world, session)
    services.note_open(meeting=session, author=world.coleader2)  # a draft
    assert NoteSection.objects.research_eligible().filter(note__author=world.coleader2).count() == 0


def test_same_moment_events_resolve_to_the_one_recorded_last(world, session):
    when = session.starts_at - DAY
    consent(world, world.participants[0], "given", when)
    consent(world, world.participants[0], "declined", when)
    consent(world, world.participants[1], "given", when)
    assert eligible_kinds() == []
    assert world.participants[0].consent_state_at(session.starts_at).decision == "declined"


def test_reasons_never_name_the_participant(world, session):
    consent(world, world.participants[0], "given", session.starts_at - DAY)
    consent(world, world.participants[1], "given", session.starts_at - DAY)
    consent(world, world.participants[1], "withdrawn", timezone.now(), scope="past")
    for section in NoteSection.objects.with_eligibility():
        reason = section.ineligibility_reason()
        for p in world.participants:
            assert p.pseudonym not in reason and p.name not in reason
