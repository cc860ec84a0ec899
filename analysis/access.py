"""Who reaches what in the analysis.

Researchers of a course keep its codebook and code its research-eligible
note sections. The course admin and the course's leaders may read the
codebook; nobody else sees any of it. During an open double-coding round a
coder sees only their own segments of that round, not even by URL.
"""

from __future__ import annotations

from django.db.models import Q
from django.http import Http404, HttpRequest

from fieldnotes.models import NoteSection
from sessions.access import get_access, get_course_for
from sessions.models import CasePresentation, Course, Role

from .models import Category, Code, CodedSegment, CodingRound

RESEARCH = (Role.RESEARCHER,)
CODEBOOK_READERS = (Role.RESEARCHER, Role.ADMIN, Role.LEADER)


def research_course_ids(request: HttpRequest) -> set[int]:
    return get_access(request).course_ids(Role.RESEARCHER)


def get_research_course(request: HttpRequest, pk: int) -> Course:
    return get_course_for(request, pk, *RESEARCH)


def can_edit_codebook(request: HttpRequest, course: Course) -> bool:
    return course.pk in research_course_ids(request)


def get_code_for(request: HttpRequest, pk: int, *roles: str) -> Code:
    course_ids = get_access(request).course_ids(*(roles or CODEBOOK_READERS))
    try:
        return Code.objects.select_related("course", "category", "parent").get(pk=pk, course_id__in=course_ids)
    except Code.DoesNotExist:
        raise Http404("No such code.") from None


def get_category_for(request: HttpRequest, pk: int) -> Category:
    try:
        return Category.objects.select_related("course").get(pk=pk, course_id__in=research_course_ids(request))
    except Category.DoesNotExist:
        raise Http404("No such category.") from None


def eligible_sections(request: HttpRequest):
    """Research-eligible sections of the courses the user researches."""
    return NoteSection.objects.research_eligible().filter(
        note__meeting__group__course_id__in=research_course_ids(request)
    )


def get_section_for_coding(request: HttpRequest, pk: int) -> NoteSection:
    try:
        return eligible_sections(request).select_related(
            "note__meeting__group__course", "note__author", "case__presenter"
        ).get(pk=pk)
    except NoteSection.DoesNotExist:
        raise Http404("No such section, or it is not research data.") from None


def visible_segments(request: HttpRequest, round: CodingRound | None = None, *, sections=None):
    """Segments the user may see in analysis views.

    Outside a round: the shared coding (segments of no round) of eligible
    sections; a round's agreed coding joins it when resolved. Within an open
    round: only the user's own segments of that round; within a closed one,
    every coder's. `sections`, when given, must come from `eligible_sections`
    or `get_section_for_coding` (already scoped): only their segments are
    looked at, without filtering the user's whole reach again.
    """
    segments = CodedSegment.objects.filter(section__in=eligible_sections(request) if sections is None else sections)
    if round is not None:
        if round.is_open:
            return segments.filter(round=round, coder=request.user)
        return segments.filter(round=round)
    return segments.filter(Q(round__isnull=True))


def get_segment_for_coder(request: HttpRequest, pk: int) -> CodedSegment:
    """A segment the user may change: their own, or a shared one of their course."""
    segments = CodedSegment.objects.filter(section__in=eligible_sections(request)).filter(
        Q(round__isnull=True) | Q(round__status=CodingRound.Status.OPEN, coder=request.user)
    )
    try:
        return segments.select_related("code", "section__note__meeting__group__course", "round").get(pk=pk)
    except CodedSegment.DoesNotExist:
        raise Http404("No such segment.") from None


def get_round_for(request: HttpRequest, pk: int) -> CodingRound:
    try:
        return CodingRound.objects.select_related("course").get(pk=pk, course_id__in=research_course_ids(request))
    except CodingRound.DoesNotExist:
        raise Http404("No such round.") from None


def get_case_for_research(request: HttpRequest, pk: int) -> CasePresentation:
    try:
        return CasePresentation.objects.select_related("meeting__group__course", "presenter").get(
            pk=pk, meeting__group__course_id__in=research_course_ids(request)
        )
    except CasePresentation.DoesNotExist:
        raise Http404("No such case.") from None
