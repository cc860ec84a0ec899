"""The coding page's hand-written reads (analysis/coding_reads.py) find what
the ORM scoping in analysis/access.py finds, on the same data: the same
section or none, the same segments in the same order, the same codebook."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone

from analysis import coding_reads
from analysis import services as analysis_services
from analysis.access import eligible_sections, visible_segments
from analysis.models import Code, CodingRound
from analysis.tests.test_coding import add_segments, held_session
from sessions.models import Consent

pytestmark = pytest.mark.django_db


@pytest.fixture
def codes(world):
    return analysis_services.codebook_start_from_study(course=world.course, actor=world.researcher1)


@pytest.fixture
def sections(world, codes):
    return held_session(world)


def request_of(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


def orm_segments(user, section, coding_round=None):
    segments = visible_segments(request_of(user), coding_round, sections=[section]).order_by("start", "end", "pk")
    return [(s.pk, s.code_id, s.code.name, s.start, s.end, s.quote, s.coder.get_full_name() or s.coder.username,
             s.needs_review, s.round_id) for s in segments.select_related("code", "coder")]


def hand_segments(user, section, coding_round=None):
    return [(s.pk, s.code_id, s.code_name, s.start, s.end, s.quote, s.coder, s.needs_review, s.round_id)
            for s in coding_reads.section_segments(section.pk, coding_round, user)]


def test_a_case_section_comes_with_its_heading(world, sections):
    section = sections["case"]
    found = coding_reads.coding_section(section.pk, {world.course.pk})
    meeting = section.note.meeting
    assert (found.pk, found.text, found.kind, found.case_id) == (section.pk, section.text, "case", section.case_id)
    assert (found.course_id, found.course_name, found.time_zone) == (
        world.course.pk, world.course.name, world.course.time_zone)
    assert (found.group_name, found.meeting_number, found.starts_at) == (
        world.group.name, meeting.number, meeting.starts_at)
    assert found.label == "Case 1: Night shift (S3)"
    assert found.author == (world.coleader1.get_full_name() or world.coleader1.username)
    assert coding_reads.coding_section(sections["discussion"].pk, {world.course.pk}).label == "Group discussion"


@pytest.mark.parametrize("first, last, shown", [("Aino", "Virtanen", "Aino Virtanen"), ("", "Virtanen", "Virtanen"),
                                                ("Aino", "", "Aino"), ("", "", "coleader1")])
def test_the_author_is_named_as_get_full_name_or_the_user_name(world, sections, first, last, shown):
    world.coleader1.first_name, world.coleader1.last_name = first, last
    world.coleader1.save()
    assert (world.coleader1.get_full_name() or world.coleader1.username) == shown
    assert coding_reads.coding_section(sections["case"].pk, {world.course.pk}).author == shown


def test_a_section_is_found_exactly_when_the_orm_scoping_finds_it(world, sections):
    # Session 2: S3 presents having declined, so its note is not research data.
    Consent.objects.create(participant=world.participants[2], form=world.form, form_version=1, decision="declined",
                           decided_at=timezone.now() - timedelta(days=28.5), method="paper",
                           recorded_by=world.leader)
    later = held_session(world, number=2, title="Declined case")
    eligible = set(eligible_sections(request_of(world.researcher1)).values_list("pk", flat=True))
    assert sections["case"].pk in eligible and later["case"].pk not in eligible
    for section in [*sections.values(), *later.values()]:
        found = coding_reads.coding_section(section.pk, {world.course.pk})
        assert (found is not None) == (section.pk in eligible), section
        assert coding_reads.coding_section(section.pk, {world.course2.pk}) is None
        assert coding_reads.coding_section(section.pk, set()) is None
    assert coding_reads.coding_section(10**9, {world.course.pk}) is None


def test_segments_outside_a_round_are_the_shared_coding_in_text_order(world, sections, codes):
    section = sections["case"]
    add_segments(section, codes[0], world.researcher1, 12)
    add_segments(section, codes[5], world.researcher2, 7)
    Code.objects.filter(pk=codes[5].pk).update(retired_at=timezone.now())  # its segments still shown
    coding_round = CodingRound.objects.create(course=world.course, name="R", created_by=world.researcher1)
    add_segments(section, codes[1], world.researcher1, 3, round=coding_round)  # not the shared coding
    shown = hand_segments(world.researcher1, section)
    assert len(shown) == 19
    assert shown == orm_segments(world.researcher1, section)


def test_segments_of_an_open_round_are_the_users_own_and_of_a_closed_one_everyones(world, sections, codes):
    section = sections["case"]
    coding_round = CodingRound.objects.create(course=world.course, name="R", created_by=world.researcher1)
    add_segments(section, codes[0], world.researcher1, 4, round=coding_round)
    add_segments(section, codes[1], world.researcher2, 6, round=coding_round)
    add_segments(section, codes[2], world.researcher1, 2)  # shared, not the round's
    for user, expected in [(world.researcher1, 4), (world.researcher2, 6)]:
        shown = hand_segments(user, section, coding_round)
        assert len(shown) == expected
        assert shown == orm_segments(user, section, coding_round)
    coding_round.status = CodingRound.Status.CLOSED
    coding_round.save()
    assert len(hand_segments(world.researcher1, section, coding_round)) == 10
    assert hand_segments(world.researcher1, section, coding_round) == orm_segments(world.researcher1, section,
                                                                                   coding_round)


def test_the_codebook_is_the_active_codes_in_category_order(world, codes):
    Code.objects.filter(pk=codes[3].pk).update(retired_at=timezone.now())
    expected = [
        (c.pk, c.name, c.shortcut, c.definition, c.category.name)
        for c in Code.objects.active().filter(course=world.course).select_related("category")
        .order_by("category__order", "category__name", "name")
    ]
    assert len(expected) == len(codes) - 1
    assert [(c.pk, c.name, c.shortcut, c.definition, c.category)
            for c in coding_reads.active_codebook(world.course.pk)] == expected
