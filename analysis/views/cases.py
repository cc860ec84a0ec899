"""A case presentation seen by research: every coded segment from both co-leaders'
sections on the case, the contexts and triggers they carry, and codes set directly."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from sessions import audit

from .. import services
from ..access import eligible_sections, get_case_for_research, research_course_ids, visible_segments
from ..models import CaseCoding, Code, Memo


@login_required
@require_GET
def case_analysis(request, pk):
    case = get_case_for_research(request, pk)
    course = case.meeting.group.course
    sections = list(
        eligible_sections(request).filter(case=case).select_related("note__author").order_by("note__author__username")
    )
    segments = list(
        visible_segments(request).filter(section__in=[s.pk for s in sections])
        .select_related("code__category", "coder", "section__note__author").order_by("section_id", "start")
    )
    codings = list(CaseCoding.objects.filter(case=case).select_related("code__category", "set_by"))
    derived: dict[int, dict] = {}
    for segment in segments:
        if segment.code.category.unit == "case":
            entry = derived.setdefault(segment.code.pk, {"code": segment.code, "segments": 0, "direct": None})
            entry["segments"] += 1
    for coding in codings:
        entry = derived.setdefault(coding.code.pk, {"code": coding.code, "segments": 0, "direct": None})
        entry["direct"] = coding
    case_codes = sorted(derived.values(), key=lambda e: (e["code"].category.order, e["code"].name))
    return render(request, "analysis/case_analysis.html", {
        "course": course,
        "case": case,
        "sections": sections,
        "segments": segments,
        "case_codes": case_codes,
        "hidden_sections": not sections,
        "settable_codes": Code.objects.active().filter(course=course, category__unit="case").select_related("category"),
        "memos": Memo.objects.filter(case=case).select_related("author"),
    })


@login_required
@require_POST
def case_coding_set(request, pk):
    case = get_case_for_research(request, pk)
    try:
        code = Code.objects.active().get(pk=request.POST.get("code"), course=case.meeting.group.course_id)
    except (Code.DoesNotExist, ValueError):
        messages.error(request, "Choose a code of this course's codebook.")
        return redirect("analysis:case_analysis", pk=case.pk)
    try:
        services.case_coding_set(case=case, code=code, actor=request.user,
                                 why=request.POST.get("why", "").replace("\x00", ""))  # PostgreSQL refuses NUL
    except services.CodingError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"“{code.name}” set for this case.")
    return redirect("analysis:case_analysis", pk=case.pk)


@login_required
@require_POST
def case_coding_delete(request, pk):
    try:
        coding = CaseCoding.objects.select_related("case__meeting__group", "code").get(
            pk=pk, case__meeting__group__course_id__in=research_course_ids(request)
        )
    except CaseCoding.DoesNotExist:
        raise Http404("No such case coding.") from None
    case_pk = coding.case_id
    audit.record(actor=request.user, action="case_coding.delete", obj=coding, course=coding.code.course,
                 summary=f"Removed “{coding.code.name}” set directly for case {case_pk}")
    coding.delete()
    messages.success(request, "Removed.")
    return redirect("analysis:case_analysis", pk=case_pk)
