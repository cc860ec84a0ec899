"""The course's codebook: categories and codes, their history, and the colours stylesheet."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Prefetch, Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sessions import audit
from sessions.access import get_course_for

from .. import services
from ..access import CODEBOOK_READERS, RESEARCH, can_edit_codebook, eligible_sections, get_category_for, get_code_for
from ..forms import CategoryForm, CodeForm, MergeForm, RetireForm, SplitForm
from ..models import HEX_COLOUR, Category, Code, CodebookChange, CodedSegment, Memo


def _segment_count_filter(request):
    return Q(segments__round__isnull=True, segments__section__in=eligible_sections(request))


@login_required
@require_GET
def codebook(request, pk):
    course = get_course_for(request, pk, *CODEBOOK_READERS)
    editor = can_edit_codebook(request, course)
    codes = Code.objects.filter(course=course).select_related("parent").order_by("name")
    if editor:
        codes = codes.annotate(segment_count=Count("segments", filter=_segment_count_filter(request)))
    categories = Category.objects.filter(course=course).prefetch_related(
        Prefetch("codes", queryset=codes.filter(retired_at__isnull=True), to_attr="active_codes")
    )
    retired = codes.filter(retired_at__isnull=False).select_related("merged_into")
    return render(request, "analysis/codebook.html", {
        "course": course, "categories": categories, "retired": retired, "editor": editor,
        "empty": not categories,
    })


@login_required
@require_POST
def codebook_start(request, pk):
    course = get_course_for(request, pk, *RESEARCH)
    try:
        services.codebook_start_from_study(course=course, actor=request.user)
    except services.CodingError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "The codebook now has the study's three categories and twelve codes. Edit them freely.")
    return redirect("analysis:codebook", pk=course.pk)


@login_required
@require_GET
def codebook_history(request, pk):
    course = get_course_for(request, pk, *CODEBOOK_READERS)
    changes = CodebookChange.objects.filter(course=course).select_related("actor")
    return render(request, "analysis/codebook_history.html", {"course": course, "changes": changes})


@login_required
@require_http_methods(["GET", "POST"])
def category_new(request, pk):
    course = get_course_for(request, pk, *RESEARCH)
    form = CategoryForm(request.POST or None, course=course,
                        initial={"order": services.next_category_order(course), "unit": "session"})
    if request.method == "POST" and form.is_valid():
        category = form.save(commit=False)
        category.course = course
        services.category_save(category=category, actor=request.user, why=form.cleaned_data["why"])
        messages.success(request, f"Category “{category.name}” added.")
        return redirect("analysis:codebook", pk=course.pk)
    return render(request, "analysis/codebook_form.html", {"course": course, "form": form, "title": "New category"})


@login_required
@require_http_methods(["GET", "POST"])
def category_edit(request, pk):
    category = get_category_for(request, pk)
    form = CategoryForm(request.POST or None, instance=category, course=category.course)
    if request.method == "POST" and form.is_valid():
        services.category_save(category=form.save(commit=False), actor=request.user, why=form.cleaned_data["why"])
        messages.success(request, "Category saved.")
        return redirect("analysis:codebook", pk=category.course_id)
    return render(request, "analysis/codebook_form.html",
                  {"course": category.course, "form": form, "title": f"Edit category “{category.name}”"})


@login_required
@require_http_methods(["GET", "POST"])
def code_new(request, pk):
    course = get_course_for(request, pk, *RESEARCH)
    if not Category.objects.filter(course=course).exists():
        messages.info(request, "Add a category first (or start from the study's codebook).")
        return redirect("analysis:codebook", pk=course.pk)
    form = CodeForm(request.POST or None, course=course, initial={"category": request.GET.get("category")})
    if request.method == "POST" and form.is_valid():
        code = form.save(commit=False)
        code.course, code.created_by = course, request.user
        try:
            services.code_save(code=code, before=None, actor=request.user, why=form.cleaned_data["why"])
        except services.CodingError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Code “{code.name}” added.")
            return redirect("analysis:codebook", pk=course.pk)
    return render(request, "analysis/codebook_form.html", {"course": course, "form": form, "title": "New code"})


@login_required
@require_GET
def code_detail(request, pk):
    code = get_code_for(request, pk)
    editor = can_edit_codebook(request, code.course)
    context = {"course": code.course, "code": code, "editor": editor,
               "children": code.children.order_by("name")}
    if editor:
        context["segment_count"] = CodedSegment.objects.filter(
            code=code, round__isnull=True, section__in=eligible_sections(request)
        ).count()
        context["memos"] = Memo.objects.filter(code=code).select_related("author")
        context["changes"] = CodebookChange.objects.filter(course=code.course).filter(
            Q(details__source=code.pk) | Q(details__target=code.pk) | Q(details__new=code.pk)
            | Q(summary__contains=f"“{code.name}”")
        ).select_related("actor")[:20]
    return render(request, "analysis/code_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def code_edit(request, pk):
    code = get_code_for(request, pk, *RESEARCH)
    before = audit.snapshot(code, services.CODE_FIELDS)
    form = CodeForm(request.POST or None, instance=code, course=code.course)
    if request.method == "POST" and form.is_valid():
        try:
            services.code_save(code=form.save(commit=False), before=before, actor=request.user,
                               why=form.cleaned_data["why"])
        except services.CodingError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, "Code saved.")
            return redirect("analysis:code_detail", pk=code.pk)
    return render(request, "analysis/codebook_form.html",
                  {"course": code.course, "form": form, "title": f"Edit code “{before['name']}”", "code": code})


@login_required
@require_http_methods(["GET", "POST"])
def code_merge(request, pk):
    code = get_code_for(request, pk, *RESEARCH)
    form = MergeForm(request.POST or None, code=code)
    if request.method == "POST" and form.is_valid():
        target = form.cleaned_data["target"]
        try:
            moved = services.code_merge(source=code, target=target, actor=request.user, why=form.cleaned_data["why"])
        except services.CodingError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Merged into “{target.name}”: {moved} segment{'s' if moved != 1 else ''} moved.")
            return redirect("analysis:code_detail", pk=target.pk)
    return render(request, "analysis/codebook_form.html", {
        "course": code.course, "form": form, "code": code, "title": f"Merge “{code.name}” into another code",
        "explain": "Every segment and case coding of this code moves to the code you choose; this code is retired "
                   "and stays in the history.",
    })


@login_required
@require_http_methods(["GET", "POST"])
def code_split(request, pk):
    code = get_code_for(request, pk, *RESEARCH)
    segments = CodedSegment.objects.filter(code=code).select_related(
        "section__note__meeting__group", "coder"
    ).order_by("section__note__meeting__starts_at", "start")
    choices = [
        (str(s.pk), f"{s.section.note.meeting.group.name} · session {s.section.note.meeting.number} · "
                    f"{s.coder.get_username()}: “{s.quote[:140]}”")
        for s in segments
    ]
    form = SplitForm(request.POST or None, code=code, segment_choices=choices)
    if request.method == "POST" and form.is_valid():
        new_code = Code(category=code.category, parent=code.parent, colour=code.colour,
                        name=form.cleaned_data["name"], definition=form.cleaned_data["definition"])
        moved = services.code_split(source=code, new_code=new_code, actor=request.user,
                                    segment_ids=[int(i) for i in form.cleaned_data["segments"]],
                                    why=form.cleaned_data["why"])
        messages.success(request, f"“{new_code.name}” split out of “{code.name}”: {moved} segments moved.")
        return redirect("analysis:code_detail", pk=new_code.pk)
    return render(request, "analysis/codebook_form.html", {
        "course": code.course, "form": form, "code": code, "title": f"Split “{code.name}”",
        "explain": "The segments you tick move to a new code; the others stay with this one.",
    })


@login_required
@require_http_methods(["GET", "POST"])
def code_retire(request, pk):
    code = get_code_for(request, pk, *RESEARCH)
    form = RetireForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.code_retire(code=code, actor=request.user, why=form.cleaned_data["why"])
        except services.CodingError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"“{code.name}” is retired: no longer offered for coding; its segments stay.")
        return redirect("analysis:code_detail", pk=code.pk)
    return render(request, "analysis/codebook_form.html", {
        "course": code.course, "form": form, "code": code, "title": f"Retire “{code.name}”",
        "explain": "A retired code is no longer offered for coding. Its segments, memos and history stay.",
    })


@login_required
@require_GET
def codes_css(request, pk):
    """`.code-<pk>` classes with each code's colour: the pages may not use inline styles (CSP)."""
    course = get_course_for(request, pk, *CODEBOOK_READERS)
    rules = [
        f".code-{pk} {{ --code-colour: {colour}; }}"
        for pk, colour in Code.objects.filter(course=course).values_list("pk", "colour")
        if HEX_COLOUR.match(colour)  # validated on save; checked again because this is CSS
    ]
    response = HttpResponse("\n".join(rules) + "\n", content_type="text/css; charset=utf-8")
    response["Cache-Control"] = "private, no-cache"
    return response
