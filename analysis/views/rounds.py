"""Double-coding rounds: list, set up, follow, close, compare, resolve.

Blindness: while a round is open a user sees only their own segments of it
(through `visible_segments`), nothing on these pages shows another coder's
work, and the disagreement view is a 404.
"""

from __future__ import annotations

from itertools import groupby

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Prefetch
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from balint.forms import Textarea
from balint.limits import REASON_CHARS
from fieldnotes.models import NoteSection

from .. import rounds as services
from ..access import eligible_sections, get_research_course, get_round_for, visible_segments
from ..agreement import NOTHING_PAIRABLE, CodeAgreement
from ..models import Code, CodingRound, Resolution
from ..services import CodingError

User = get_user_model()

NONE_APPLIES = "none"


# --- Forms ----------------------------------------------------------------------------


class UserChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, user):
        full = user.get_full_name()
        return f"{full} ({user.get_username()})" if full else user.get_username()


class RoundForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="For example “Spring sessions, triggers”.")
    coders = UserChoiceField(queryset=User.objects.none(), widget=forms.CheckboxSelectMultiple,
                             help_text="Two or more researchers of the course; each codes blind to the others.")
    sections = forms.ModelMultipleChoiceField(queryset=None, widget=forms.CheckboxSelectMultiple)
    codes = forms.ModelMultipleChoiceField(queryset=None, widget=forms.CheckboxSelectMultiple, required=False,
                                           help_text="Leave all unticked to compare every active code.")

    def __init__(self, *args, course, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["coders"].queryset = services.course_researchers(course)
        self.fields["codes"].queryset = Code.objects.active().filter(course=course).order_by("category__order", "name")
        # An empty section has nothing to code.
        self.fields["sections"].queryset = services.course_eligible_sections(course).exclude(text="")
        self.fields["sections"].error_messages["required"] = "Choose at least one note section to code."

    def clean_coders(self):
        coders = self.cleaned_data["coders"]
        if len(coders) < 2:
            raise forms.ValidationError("Choose two or more coders: agreement needs someone to agree with.")
        return coders


class ResolutionForm(forms.Form):
    kept = forms.ChoiceField(widget=forms.RadioSelect, label="Agreed coding")
    why = forms.CharField(max_length=REASON_CHARS, widget=Textarea(attrs={"rows": 3}), label="Why",
                          error_messages={"required": "Say why this is the agreed coding."},
                          help_text="Kept with the resolution and as a memo on the round.")

    def __init__(self, *args, coders, code, **kwargs):
        super().__init__(*args, **kwargs)
        self.coders = {str(c.pk): c for c in coders}
        self.fields["kept"].choices = [
            (str(c.pk), f"Keep {c.get_username()}'s coding") for c in coders
        ] + [(NONE_APPLIES, f"“{code.name}” does not apply here")]

    def kept_coder(self):
        return self.coders.get(self.cleaned_data["kept"])


# --- Pages -----------------------------------------------------------------------------


@login_required
@require_GET
def round_list(request, pk):
    course = get_research_course(request, pk)
    rounds = (
        CodingRound.objects.filter(course=course)
        .select_related("created_by")
        .prefetch_related(Prefetch("coders", queryset=User.objects.order_by("username")))
        .annotate(section_count=Count("sections", distinct=True))
        .order_by("-created_at", "-pk")
    )
    return render(request, "analysis/round_list.html", {"course": course, "rounds": rounds})


@login_required
@require_http_methods(["GET", "POST"])
def round_new(request, pk):
    course = get_research_course(request, pk)
    form = RoundForm(request.POST or None, course=course, initial={"coders": [request.user.pk]})
    if request.method == "POST" and form.is_valid():
        try:
            round = services.round_create(course=course, name=form.cleaned_data["name"],
                                          coders=form.cleaned_data["coders"],
                                          sections=form.cleaned_data["sections"],
                                          codes=form.cleaned_data["codes"], actor=request.user)
        except CodingError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Round “{round.name}” is open. Each coder now codes its sections blind.")
            return redirect("analysis:round_detail", pk=round.pk)
    chosen = set(form["sections"].value() or [])
    sections = list(form.fields["sections"].queryset)
    tree = [
        {"group": group, "meetings": [
            {"meeting": meeting, "notes": [
                {"note": note, "sections": list(in_note)}
                for note, in_note in groupby(in_meeting, key=lambda s: s.note)
            ]}
            for meeting, in_meeting in groupby(in_group, key=lambda s: s.note.meeting)
        ]}
        for group, in_group in groupby(sections, key=lambda s: s.note.meeting.group)
    ]
    return render(request, "analysis/round_new.html", {
        "course": course, "form": form, "tree": tree, "chosen": {str(c) for c in chosen},
        "section_count": len(sections),
    })


@login_required
@require_GET
def round_detail(request, pk):
    round = get_round_for(request, pk)
    coders = services.round_coders(round)
    is_coder = any(c.pk == request.user.pk for c in coders)
    sections = list(
        eligible_sections(request).filter(coding_rounds=round)
        .select_related("note__meeting__group", "note__author", "case__presenter")
        .order_by("note__meeting__group__name", "note__meeting__starts_at", "note__meeting__number",
                  "note__author__username", "kind", "case__order", "pk")
    )
    left_out = round.sections.count() - len(sections)
    # Open round: only the user's own segments exist for them. Closed: everyone's.
    segments = visible_segments(request, round).filter(section__in=[s.pk for s in sections])
    coded = {}
    for coder_id, section_id in segments.values_list("coder_id", "section_id"):
        coded.setdefault(coder_id, {}).setdefault(section_id, 0)
        coded[coder_id][section_id] += 1
    mine = coded.get(request.user.pk, {})
    for section in sections:
        section.my_segments = mine.get(section.pk, 0)
    progress = [
        {"coder": c, "done": len(coded.get(c.pk, {})), "total": len(sections)}
        for c in coders if not round.is_open or c.pk == request.user.pk
    ]
    return render(request, "analysis/round_detail.html", {
        "course": round.course, "round": round, "coders": coders, "sections": sections, "left_out": left_out,
        "is_coder": is_coder, "progress": progress, "can_close": services.can_close(round, request.user),
        "resolved": round.resolutions.count() if not round.is_open else 0,
    })


@login_required
@require_POST
def round_close(request, pk):
    round = get_round_for(request, pk)
    if not request.POST.get("confirm"):
        messages.error(request, "Tick the box to confirm that coding in this round is finished.")
        return redirect("analysis:round_detail", pk=round.pk)
    try:
        services.round_close(round=round, actor=request.user)
    except CodingError as error:
        messages.error(request, str(error))
        return redirect("analysis:round_detail", pk=round.pk)
    messages.success(request, f"Round “{round.name}” is closed. Here is how the coders agreed.")
    return redirect("analysis:round_agreement", pk=round.pk)


def _stat(value: float | None, reason: str | None, percent: bool = False) -> dict:
    if value is None:
        return {"text": None, "reason": reason}
    return {"text": f"{value * 100:.1f} %" if percent else f"{value:.3f}", "reason": None}


def _cells(result: CodeAgreement, two_coders: bool) -> dict:
    return {
        "result": result,
        "units": result.units,
        "percent": _stat(result.percent, NOTHING_PAIRABLE, percent=True),
        "kappa": _stat(result.kappa, result.kappa_reason) if two_coders else None,
        "alpha": _stat(result.alpha, result.alpha_reason),
        "counts": result.counts,
    }


@login_required
@require_GET
def round_agreement(request, pk):
    round = get_round_for(request, pk)
    context = {"course": round.course, "round": round}
    if round.is_open:
        return render(request, "analysis/round_agreement.html", context)
    all_codes = list(services.default_codes(round))
    codes = all_codes
    if request.GET.get("compare"):
        wanted = set(request.GET.getlist("code"))
        codes = [c for c in all_codes if str(c.pk) in wanted]
        if not codes:
            messages.warning(request, "Choose at least one code to compare; showing all of them.")
            codes = all_codes
    comparison = services.round_comparison(
        round=round, sections=eligible_sections(request), segments=visible_segments(request, round), codes=codes,
    )
    two = len(comparison.coders) == 2
    rows = [
        {"code": code, "section": _cells(by_section, two), "character": _cells(by_character, two)}
        for code, by_section, by_character in comparison.rows
    ]
    levels = [
        {"key": key, "title": title, "units": units,
         "rows": [{"code": row["code"], "cells": row[key]} for row in rows],
         "pooled": _cells(getattr(comparison, f"pooled_{key}"), two)}
        for key, title, units in [("section", "Section level: is the code present in the section?", "Sections"),
                                  ("character", "Character level: which text carries the code?", "Characters")]
    ]
    context.update({
        "comparison": comparison, "rows": rows, "levels": levels, "two_coders": two,
        "all_codes": all_codes, "chosen_codes": {c.pk for c in codes}, "filtered": len(codes) != len(all_codes),
        "left_out": round.sections.count() - len(comparison.sections),
        "unresolved": sum(1 for d in comparison.disagreements if not d.resolved),
    })
    return render(request, "analysis/round_agreement.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def disagreement(request, pk, section_pk, code_pk):
    round = get_round_for(request, pk)
    if round.is_open:
        # Blind: nothing about another coder's work while the round runs, not even by URL.
        raise Http404("No such disagreement.")
    try:
        section = (eligible_sections(request).filter(coding_rounds=round)
                   .select_related("note__meeting__group", "note__author", "case__presenter").get(pk=section_pk))
        code = Code.objects.select_related("category").get(pk=code_pk, course_id=round.course_id)
    except (NoteSection.DoesNotExist, Code.DoesNotExist):
        raise Http404("No such disagreement.") from None
    coders = services.round_coders(round)
    segments = list(visible_segments(request, round).filter(section=section, code=code, coder__in=coders)
                    .order_by("start", "end", "pk"))
    resolution = Resolution.objects.filter(round=round, section=section, code=code).select_related(
        "decided_by", "kept_coder").first()
    form = ResolutionForm(request.POST or None, coders=coders, code=code,
                          initial={"kept": str(resolution.kept_coder_id or NONE_APPLIES)} if resolution else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.resolution_record(round=round, section=section, code=code, kept_coder=form.kept_coder(),
                                       why=form.cleaned_data["why"], actor=request.user)
        except CodingError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Resolution saved for “{code.name}” in {section}.")
            return redirect(reverse("analysis:round_agreement", kwargs={"pk": round.pk}) + "#disagreements")

    spans = {c.pk: [(s.start, s.end) for s in segments if s.coder_id == c.pk] for c in coders}
    columns = [
        {
            "coder": c,
            "segments": [s for s in segments if s.coder_id == c.pk],
            "pieces": services.highlight(section.text, spans[c.pk],
                                         [spans[o.pk] for o in coders if o.pk != c.pk]),
        }
        for c in coders
    ]
    shared = visible_segments(request).filter(section=section, code=code).select_related("coder").order_by("start")
    return render(request, "analysis/disagreement.html", {
        "course": round.course, "round": round, "section": section, "code": code, "columns": columns,
        "resolution": resolution, "form": form, "shared": list(shared),
        "agree": len({tuple(services.coverage(v, len(section.text))) for v in spans.values()}) == 1,
    })
