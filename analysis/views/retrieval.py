"""Retrieval and matrices: find segments, code × session and code × case
tables, co-occurrence, and saturation. Read-only pages for the course's
researchers; every count links to the segments behind it.

The rows come from `analysis.queries`; this module scopes (always through
`get_research_course`, `eligible_sections` and `visible_segments`, so consent
decides what counts) and lays the results out.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.forms.utils import flatatt
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from sessions.models import CasePresentation, Group, Meeting, Membership, Role

from .. import queries
from ..access import eligible_sections, get_research_course, visible_segments
from ..models import CodedSegment
from ..queries import Mode, SegmentFilter
from ..retrieval_html import segment_hits_html

PAGE_SIZE = queries.ROWS_AT_ONCE  # a page of ids is read in one query


def _scope(request, pk):
    """The course, and what research may see of it: eligible sections, the
    shared coding on them, and the case codings of eligible cases."""
    course = get_research_course(request, pk)
    sections = eligible_sections(request).filter(note__meeting__group__course=course)
    segments = visible_segments(request).filter(section__note__meeting__group__course=course)
    return course, sections, segments, queries.visible_case_codings(sections)


def _session_label(meeting, tz) -> str:
    return _session_text(meeting.group.name, meeting.number, meeting.starts_at, tz)


def _session_text(group_name: str, number: int, starts_at, tz) -> str:
    local = timezone.localtime(starts_at, tz)
    return f"{group_name}, session {number} ({local.day} {local:%b %Y})"


class FastSelect(forms.Select):
    """Django's <select>, rendered in Python instead of through a template per
    <option>: the session and case filters list up to LISTED_AT_MOST sessions
    and cases each, and rendering them option by option cost more than the
    rest of the page."""

    def render(self, name, value, attrs=None, renderer=None):
        attrs = self.build_attrs(self.attrs, attrs)
        chosen = {str(v) for v in self.format_value(value)}
        options = "".join(
            f'<option value="{escape(key)}"{" selected" if str(key) in chosen else ""}>{escape(label)}</option>'
            for key, label in self.choices
        )
        return format_html('<select name="{}"{}>{}</select>', name, flatatt(attrs), mark_safe(options))


# A longer <select> is not something to scroll through: beyond it, the
# session and case filters list the chosen group's only.
LISTED_AT_MOST = 100


def _id_param(value: str | None) -> int | None:
    """A GET parameter as a database id, or None (the form reports bad values)."""
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if 0 < number < 2**31 else None


def _listed(rows: QuerySet, group: int | None, group_field: str, selected: int | None) -> tuple[list, bool]:
    """`rows` (a values_list) for a filter's <select>: all of them, or the
    chosen group's when there are too many; plus the selected one, so a link
    with ?session= or ?case= keeps working. Returns (rows, cut)."""
    listed = list((rows.filter(**{group_field: group}) if group else rows)[:LISTED_AT_MOST + 1])
    cut = len(listed) > LISTED_AT_MOST
    if cut:
        listed = []
    if selected and all(r[0] != selected for r in listed):
        listed += list(rows.filter(pk=selected))  # still scoped: only research data's
    return listed, cut


def filter_choices(request, sections, tz) -> dict:
    """The group, session and case choices of the segment search, scoped to
    research data and, in a large course, to the chosen group."""
    group, get = _id_param(request.GET.get("group")), request.GET.get
    groups = list(Group.objects.filter(pk__in=sections.values("note__meeting__group"))
                  .order_by("name", "pk").values_list("pk", "name"))
    meetings = (Meeting.objects.filter(pk__in=sections.values("note__meeting"))
                .order_by("group__name", "starts_at", "pk").values_list("pk", "group__name", "number", "starts_at"))
    sessions, sessions_cut = _listed(meetings, group, "group_id", _id_param(get("session")))
    cases = (
        CasePresentation.objects.filter(pk__in=sections.filter(case__isnull=False).values("case"))
        .order_by("meeting__group__name", "meeting__group_id", "meeting__starts_at", "meeting__number", "order")
        .values_list("pk", "meeting__group__name", "meeting__number", "order", "title", "presenter__pseudonym")
    )
    cases, cases_cut = _listed(cases, group, "meeting__group_id", _id_param(get("case")))
    return {
        "groups": groups,
        "sessions": [(pk, _session_text(name, number, starts_at, tz)) for pk, name, number, starts_at in sessions],
        "cases": [(pk, f"{name} s{number} · Case {order}: {title} ({pseudonym})")
                  for pk, name, number, order, title, pseudonym in cases],
        "cut": sessions_cut or cases_cut,
    }


class SegmentSearchForm(forms.Form):
    """The segment search's filters, as GET parameters. Choices are built from
    lists the view already has, so validating and rendering run no query."""

    codes = forms.TypedMultipleChoiceField(coerce=int, required=False, label="Codes")
    mode = forms.ChoiceField(choices=Mode.choices, required=False, label="Combine codes")
    category = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Category")
    group = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Group")
    session = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Session", widget=FastSelect)
    case = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Case", widget=FastSelect)
    coder = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Coder")
    date_from = forms.DateField(required=False, label="Sessions from",
                                widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    date_to = forms.DateField(required=False, label="to", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))

    def __init__(self, data, *, codes, groups, sessions, cases, cut, coders):
        super().__init__(data)
        any_ = [("", "Any")]
        self.fields["codes"].choices = [
            (category.name, [(c.pk, f"{c.name} (retired)" if c.is_retired else c.name) for c in category_codes])
            for category, category_codes in queries.by_category(codes)
        ]
        self.fields["category"].choices = any_ + [(cat.pk, cat.name) for cat, _ in queries.by_category(codes)]
        self.fields["group"].choices = any_ + groups
        self.fields["session"].choices = any_ + sessions
        self.fields["case"].choices = any_ + cases
        if cut:
            self.fields["group"].help_text = (
                f"This course has more than {LISTED_AT_MOST} sessions or cases: choose a group and press Find "
                "to pick one of its sessions or cases."
            )
        self.fields["coder"].choices = any_ + [(u.pk, u.get_full_name() or u.get_username()) for u in coders]
        for name, field in self.fields.items():
            field.widget.attrs.setdefault("class", "form-select form-select-sm" if isinstance(
                field, forms.ChoiceField) else "form-control form-control-sm")
        self.fields["codes"].widget.attrs["size"] = 8

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The first date is after the last one.")
        return data

    def to_filter(self) -> SegmentFilter:
        data = self.cleaned_data
        return SegmentFilter(
            codes=tuple(dict.fromkeys(data["codes"])), mode=data["mode"] or Mode.OR,
            category=data["category"], group=data["group"], session=data["session"], case=data["case"],
            coder=data["coder"], date_from=data["date_from"], date_to=data["date_to"],
        )

    def describe(self) -> list[str]:
        """The active filters in words, for the heading of the results."""
        data, out = self.cleaned_data, []
        labels = {name: dict(self._flat(name)) for name in ("codes", "category", "group", "session", "case", "coder")}
        if data["codes"]:
            names = [labels["codes"][pk] for pk in data["codes"]]
            mode = data["mode"] or Mode.OR
            how = Mode(mode).label if len(names) > 1 else ""
            out.append(f"{' · '.join(names)}" + (f" — {how[0].lower()}{how[1:]}" if how else ""))
        for name in ("category", "group", "session", "case", "coder"):
            if data[name] is not None:
                out.append(f"{self.fields[name].label}: {labels[name][data[name]]}")
        if data["date_from"] or data["date_to"]:
            out.append(f"Sessions {data['date_from'] or '…'} – {data['date_to'] or '…'}")
        return out

    def _flat(self, name):
        for key, value in self.fields[name].choices:
            if isinstance(value, (list, tuple)):
                yield from value
            elif key != "":
                yield key, value


def _coders(course):
    """The course's researchers, and anyone else whose coding is in it."""
    researchers = Membership.objects.filter(course=course, role=Role.RESEARCHER, group__isnull=True).values("user")
    coded = CodedSegment.objects.filter(code__course=course).values("coder")
    return list(get_user_model().objects.filter(Q(pk__in=researchers) | Q(pk__in=coded)).order_by("username"))


@login_required
@require_GET
def segment_search(request, pk):
    course, sections, segments, case_codings = _scope(request, pk)
    form = SegmentSearchForm(
        request.GET or None, codes=queries.course_codes(course), coders=_coders(course),
        **filter_choices(request, sections, course.tz),
    )
    page = rows = None
    if not form.is_bound or form.is_valid():
        f = form.to_filter() if form.is_bound else SegmentFilter()
        found = queries.filter_segments(segments, f, case_codings=case_codings, tz=course.tz)
        # The ordered ids in one read: paging a list needs no COUNT, which
        # would join and scan the same rows a second time.
        page = Paginator(list(queries.segment_ids(found)), PAGE_SIZE).get_page(request.GET.get("page"))
        rows = queries.add_context(queries.segment_rows(page.object_list))
    kept = request.GET.copy()
    kept.pop("page", None)
    return render(request, "analysis/segment_search.html", {
        "course": course, "form": form, "page": page, "rows": rows,
        "hits": segment_hits_html(rows, course.tz) if rows else "",
        "described": form.describe() if form.is_bound and form.is_valid() else [],
        "page_range": page.paginator.get_elided_page_range(page.number, on_each_side=2) if page else [],
        "querystring": kept.urlencode(), "active": "segments",
    })


@login_required
@require_GET
def matrix(request, pk):
    course, sections, segments, case_codings = _scope(request, pk)
    codes = queries.course_codes(course)
    meetings = queries.research_meetings(sections)
    cases = queries.research_cases(sections)
    return render(request, "analysis/matrix.html", {
        "course": course, "active": "matrix",
        "sessions": queries.code_session_matrix(segments, codes=codes, meetings=meetings),
        "cases": queries.code_case_table(segments, case_codings, codes=codes, cases=cases),
    })


def _pick_category(categories, raw, default_name, default_unit):
    by_pk = {str(c.pk): c for c in categories}
    if raw in by_pk:
        return by_pk[raw]
    for c in categories:
        if c.name.casefold() == default_name:
            return c
    for c in categories:
        if c.unit == default_unit:
            return c
    return categories[0] if categories else None


@login_required
@require_GET
def cooccurrence(request, pk):
    course, sections, segments, case_codings = _scope(request, pk)
    codes = [c for c in queries.course_codes(course) if c.merged_into_id is None]
    grouped = queries.by_category(codes)
    categories = [category for category, _ in grouped]
    row_cat = _pick_category(categories, request.GET.get("rows"), "triggers", "case")
    col_cat = _pick_category(categories, request.GET.get("cols"), "themes", "session")
    tables = {}
    if row_cat and col_cat:
        tables = queries.cooccurrence_tables(
            segments, case_codings,
            rows=[c for c in codes if c.category_id == row_cat.pk],
            columns=[c for c in codes if c.category_id == col_cat.pk],
        )
    return render(request, "analysis/cooccurrence.html", {
        "course": course, "active": "cooccurrence", "categories": categories,
        "row_category": row_cat, "col_category": col_cat, "tables": tables,
    })


# The saturation chart's geometry, in SVG user units.
CHART_HEIGHT, CHART_TOP, CHART_BOTTOM, CHART_LEFT, CHART_RIGHT = 260, 12, 64, 36, 12


def _saturation_chart(rows, tz):
    """Bars (new codes) and a line (codes so far) per session, laid out here
    because the page may carry no inline style: SVG attributes say it all."""
    if not rows:
        return None
    band = max(28, min(64, 720 // len(rows)))
    width = CHART_LEFT + band * len(rows) + CHART_RIGHT
    plot = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    top = max(max(r.cumulative for r in rows), 1)

    def y(value):
        return round(CHART_TOP + plot - plot * value / top, 1)

    bars, points = [], []
    for i, r in enumerate(rows):
        centre = CHART_LEFT + band * i + band / 2
        bars.append({
            "x": round(centre - band * 0.3, 1), "width": round(band * 0.6, 1), "y": y(r.new),
            "height": round(y(0) - y(r.new), 1), "cx": round(centre, 1), "cy": y(r.cumulative),
            "label": f"{r.meeting.group.name} {r.meeting.number}", "label_y": CHART_HEIGHT - CHART_BOTTOM + 14,
            "title": f"{_session_label(r.meeting, tz)}: {r.new} new, {r.cumulative} so far",
        })
        points.append(f"{round(centre, 1)},{y(r.cumulative)}")
    ticks = sorted({0, top // 2, top})
    return {
        "width": width, "height": CHART_HEIGHT, "bars": bars, "points": " ".join(points),
        "ticks": [{"value": t, "y": y(t)} for t in ticks],
        "left": CHART_LEFT, "right": width - CHART_RIGHT, "base": y(0),
    }


@login_required
@require_GET
def saturation(request, pk):
    course, sections, segments, case_codings = _scope(request, pk)
    codes = queries.course_codes(course)
    rows = queries.saturation(segments, case_codings, meetings=queries.research_meetings(sections), codes=codes)
    used = rows[-1].cumulative if rows else 0
    return render(request, "analysis/saturation.html", {
        "course": course, "active": "saturation", "rows": rows, "chart": _saturation_chart(rows, course.tz),
        "used": used, "active_codes": sum(1 for c in codes if not c.is_retired),
    })
