"""Coding in the browser: the list of sections to code, the coding page, and
the JSON endpoints static/js/coding.js calls to create, adjust and remove
segments.

Offsets on the wire and in the database count Unicode code points, end
excluded; the script converts from the browser's UTF-16 units before sending.
Every object comes through analysis.access, so anything out of scope is a 404,
and during an open double-coding round a coder reaches only their own
segments of it.
"""

from __future__ import annotations

import json
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from balint.decorators import login_required_json
from balint.reversing import url_for

from .. import services
from ..access import (
    eligible_sections,
    get_research_course,
    get_round_for,
    get_section_for_coding,
    get_segment_for_coder,
    research_course_ids,
    visible_segments,
)
from ..coding_html import code_list_html, segment_items_html, text_html, text_pieces
from ..coding_reads import SegmentView, active_codebook, coding_section, label_of, section_segments
from ..models import Code, CodedSegment, CodingRound

SECTIONS_PER_PAGE = 100


# --- Helpers ------------------------------------------------------------------


class BadRequest(Exception):
    """A request the endpoint cannot act on; str() is the message for the user."""

    def __init__(self, message: str, error: str = "invalid"):
        super().__init__(message)
        self.error = error


def _error(message: str, error: str = "invalid", status: int = 400) -> JsonResponse:
    return JsonResponse({"error": error, "message": message}, status=status)


def _json_body(request) -> dict:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep to parse
        raise BadRequest("The request was not valid JSON.", "bad_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The request must be a JSON object.", "bad_json")
    return data


def _whole_number(data: dict, key: str, *, required: bool = True) -> int | None:
    value = data.get(key)
    if value is None and not required:
        return None
    # bool is an int in Python; true/false is never an offset or an id.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"“{key}” must be a whole number.")
    return value


def _course_code(course_id: int, code_id: int) -> Code:
    try:
        return Code.objects.select_related("course").get(pk=code_id, course_id=course_id)
    except Code.DoesNotExist:
        raise BadRequest("That code is not in this course's codebook.", "unknown_code") from None


def _round_param(request, course_id: int) -> CodingRound | None:
    """The round named by ?round=, which must be this course's and have the user as a coder."""
    raw = request.GET.get("round")
    if not raw:
        return None
    try:
        pk = int(raw)
    except ValueError:
        raise Http404("No such round.") from None
    return _coder_round(request, pk, course_id)


def _coder_round(request, pk: int, course_id: int) -> CodingRound:
    coding_round = get_round_for(request, pk)
    if coding_round.course_id != course_id or not coding_round.coders.filter(pk=request.user.pk).exists():
        raise Http404("No such round.")
    return coding_round


def section_label(section) -> str:
    """The label `coding_reads.label_of` gives a row, from a section with its case and presenter loaded."""
    case = section.case if section.kind == section.Kind.CASE else None
    return label_of(section.kind, case and case.order, case and case.title, case and case.presenter.pseudonym)


def segment_json(segment: SegmentView) -> dict:
    return {
        "id": segment.pk,
        "code": segment.code_id,
        "code_name": segment.code_name,
        "start": segment.start,
        "end": segment.end,
        "quote": segment.quote,
        "coder": segment.coder,
        "needs_review": segment.needs_review,
        "round": segment.round_id,
        "update_url": url_for("analysis:segment_update", segment.pk),
        "delete_url": url_for("analysis:segment_delete", segment.pk),
    }


# --- Pages --------------------------------------------------------------------


@login_required
@require_GET
def coding_index(request, pk):
    """The course's research-eligible sections, by group and session, paged."""
    course = get_research_course(request, pk)
    coding_round = _round_param(request, course.pk)
    sections = (
        eligible_sections(request)
        .filter(note__meeting__group__course=course)
        .exclude(text="")
        .select_related("note__meeting__group", "note__author", "case__presenter")
        .order_by("note__meeting__group__name", "note__meeting__group_id", "note__meeting__starts_at",
                  "note__meeting__number", "note__author__username", "kind", "case__order", "pk")
    )
    if coding_round is not None:
        sections = sections.filter(coding_rounds=coding_round)
    page = Paginator(sections, SECTIONS_PER_PAGE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    counts = dict(
        visible_segments(request, coding_round)
        .filter(section__in=[s.pk for s in rows])
        .values("section")
        .annotate(n=Count("pk"))
        .values_list("section", "n")
    )
    for section in rows:
        section.label = section_label(section)
        section.segment_count = counts.get(section.pk, 0)
    open_rounds = [] if coding_round else list(
        CodingRound.objects.filter(course=course, coders=request.user, status=CodingRound.Status.OPEN)
    )
    return render(request, "analysis/coding_index.html", {
        "course": course, "page": page, "sections": rows, "coding_round": coding_round,
        "open_rounds": open_rounds,
    })


@login_required
@require_GET
def coding_page(request, pk):
    section = coding_section(pk, research_course_ids(request))
    if section is None:
        raise Http404("No such section, or it is not research data.")
    coding_round = _round_param(request, section.course_id)
    if coding_round is not None and not coding_round.sections.filter(pk=section.pk).exists():
        raise Http404("This section is not part of the round.")
    can_code = coding_round is None or coding_round.is_open
    segments = section_segments(section.pk, coding_round, request.user)
    codebook = active_codebook(section.course_id)
    data = {
        "section": section.pk,
        "text": section.text,
        "round": coding_round.pk if coding_round else None,
        "can_code": can_code,
        "create_url": url_for("analysis:segment_create", section.pk),
        "csrf": get_token(request),
        "segments": [segment_json(s) for s in segments],
        "codes": [{"id": c.pk, "name": c.name, "shortcut": c.shortcut, "category": c.category} for c in codebook],
    }
    # Codes of segments already made may since have been retired: the script
    # still needs their names.
    offered = {c.pk for c in codebook}
    for s in segments:
        if s.code_id not in offered:
            offered.add(s.code_id)
            data["codes"].append({"id": s.code_id, "name": s.code_name, "shortcut": "", "category": "",
                                  "retired": True})
    return render(request, "analysis/coding_page.html", {
        "section": section, "segments": segments, "text_html": text_html(text_pieces(section.text, segments)),
        "segment_items": segment_items_html(segments), "codebook": codebook, "code_list": code_list_html(codebook),
        "coding_round": coding_round, "can_code": can_code, "data": data,
        "links": {
            "codes_css": url_for("analysis:codes_css", section.course_id),
            "course": url_for("sessions:course_detail", section.course_id),
            "coding_index": url_for("analysis:coding_index", section.course_id),
            "codebook": url_for("analysis:codebook", section.course_id),
            "case": url_for("analysis:case_analysis", section.case_id) if section.case_id else "",
        },
    })


# --- JSON endpoints -----------------------------------------------------------


def _json_endpoint(view):
    """POST only, logged in (401 JSON otherwise); BadRequest and CodingError
    become 400 {"error", "message"} with nothing written, and anything out of
    the user's reach a 404 in JSON that says no more than that."""

    @require_POST
    @login_required_json
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except Http404:
            return _error("This text or segment is not available to you (it may no longer be research data); "
                          "reload the page.", "not_found", status=404)
        except BadRequest as problem:
            return _error(str(problem), problem.error)
        except services.CodingError as problem:
            return _error(str(problem), "refused")

    return wrapped


@_json_endpoint
def segment_create(request, pk):
    """Code [start, end) of the section: {"code", "start", "end", "round"} → 201 {"segment"}."""
    section = get_section_for_coding(request, pk)
    course_id = section.note.meeting.group.course_id
    data = _json_body(request)
    code_id = _whole_number(data, "code")
    start, end = _whole_number(data, "start"), _whole_number(data, "end")
    round_id = _whole_number(data, "round", required=False)
    coding_round = None
    if round_id is not None:
        coding_round = _coder_round(request, round_id, course_id)
        if not coding_round.sections.filter(pk=section.pk).exists():
            raise BadRequest("This section is not part of that double-coding round.")
    code = _course_code(course_id, code_id)
    segment = services.segment_create(section=section, code=code, coder=request.user, start=start, end=end,
                                      round=coding_round)
    return JsonResponse({"segment": segment_json(SegmentView.of(segment))}, status=201)


@_json_endpoint
def segment_update(request, pk):
    """Adjust a segment: {"start", "end", "code"?} → {"segment"}.

    A researcher may adjust any shared segment of their course (the change is
    recorded under their name), but within a round only their own.
    """
    segment = get_segment_for_coder(request, pk)
    data = _json_body(request)
    start, end = _whole_number(data, "start"), _whole_number(data, "end")
    code_id = _whole_number(data, "code", required=False)
    code = None
    if code_id is not None and code_id != segment.code_id:
        code = _course_code(segment.section.note.meeting.group.course_id, code_id)
        if code.is_retired:
            raise BadRequest(f"“{code.name}” is retired and no longer used for coding.", "refused")
    segment = services.segment_update(segment=segment, start=start, end=end, code=code, actor=request.user)
    segment = CodedSegment.objects.select_related("code", "coder").get(pk=segment.pk)
    return JsonResponse({"segment": segment_json(SegmentView.of(segment))})


@_json_endpoint
def segment_delete(request, pk):
    """Remove a segment (the same reach as adjusting) → {"deleted": id}."""
    segment = get_segment_for_coder(request, pk)
    services.segment_delete(segment=segment, actor=request.user)
    return JsonResponse({"deleted": pk})
