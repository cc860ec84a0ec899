"""Memos: researchers' notes on a code, a segment, a note section, a case, a round, or free-standing."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from sessions.models import CasePresentation

from ..access import eligible_sections, get_research_course
from ..forms import MemoForm
from ..models import Code, CodedSegment, CodingRound, Memo

TARGETS = {
    # target name: (model, lookup from the model to its course id)
    "code": (Code, "course_id"),
    "segment": (CodedSegment, "section__note__meeting__group__course_id"),
    "section": (None, "note__meeting__group__course_id"),
    "case": (CasePresentation, "meeting__group__course_id"),
    "round": (CodingRound, "course_id"),
}


def visible_memos(request, course):
    """The course's memos, less those about text that consent no longer lets research see."""
    eligible = eligible_sections(request)
    return Memo.objects.filter(course=course).filter(
        Q(section__isnull=True) | Q(section__in=eligible)
    ).filter(Q(segment__isnull=True) | Q(segment__section__in=eligible))


def _target(request, course, kind: str, pk: str):
    if kind not in TARGETS:
        return None
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404("No such item.") from None
    if kind == "section":
        queryset = eligible_sections(request)
    else:
        model, course_field = TARGETS[kind]
        queryset = model.objects.filter(**{course_field: course.pk})
        if kind == "segment":
            queryset = queryset.filter(section__in=eligible_sections(request))
    try:
        return queryset.get(pk=pk)
    except queryset.model.DoesNotExist:
        raise Http404("No such item.") from None


def _safe_next(request, fallback):
    target = request.POST.get("next") or request.GET.get("next")
    # A path on this site only: redirect() would take a bare word such as "0" for a view name (a 500).
    if target and target.startswith("/") and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


@login_required
@require_GET
def memo_list(request, pk):
    course = get_research_course(request, pk)
    query = request.GET.get("q", "").replace("\x00", "").strip()  # PostgreSQL refuses NUL
    memos = visible_memos(request, course).select_related("author", "code", "case", "round", "section__case")
    if query:
        memos = memos.filter(Q(title__icontains=query) | Q(text__icontains=query))
    page = Paginator(memos, 25).get_page(request.GET.get("page"))
    return render(request, "analysis/memo_list.html", {"course": course, "page": page, "query": query,
                                                        "form": MemoForm()})


@login_required
@require_http_methods(["GET", "POST"])
def memo_new(request, pk):
    course = get_research_course(request, pk)
    kind = request.POST.get("target") or request.GET.get("target") or ""
    target_id = request.POST.get("target_id") or request.GET.get("target_id")
    target = _target(request, course, kind, target_id) if kind else None
    form = MemoForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        memo = form.save(commit=False)
        memo.course, memo.author = course, request.user
        if target is not None:
            setattr(memo, kind, target)
        memo.save()
        messages.success(request, "Memo saved.")
        return redirect(_safe_next(request, fallback=reverse("analysis:memo_list", args=[course.pk])))
    return render(request, "analysis/memo_form.html", {"course": course, "form": form, "kind": kind,
                                                        "target": target, "target_id": target_id})


@login_required
@require_http_methods(["GET", "POST"])
def memo_edit(request, pk):
    try:
        memo = Memo.objects.select_related("course").get(pk=pk, author=request.user)
    except Memo.DoesNotExist:
        raise Http404("No such memo.") from None
    course = get_research_course(request, memo.course_id)  # still a researcher of the course
    form = MemoForm(request.POST or None, instance=memo)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Memo saved.")
        return redirect(_safe_next(request, fallback=reverse("analysis:memo_list", args=[course.pk])))
    return render(request, "analysis/memo_form.html", {"course": course, "form": form, "memo": memo})
