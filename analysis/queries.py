"""Read-side queries: retrieval, matrices, co-occurrence and saturation.

Every function takes querysets the caller has already scoped: the visible
segments of one course (`access.visible_segments(request)` narrowed to the
course), its research-eligible sections, and the case codings of cases that
have such a section (`visible_case_codings`). Nothing here decides who sees
what, so a consent withdrawal that takes sections out of `eligible_sections`
takes them out of every table built here at once, and the per-course report
can reuse the same functions with the same scoping.

Counting units, as the study counts them:
- segments: one coded span of text;
- overlap pairs: two segments of different codes whose ranges intersect in
  the same section (code points, end excluded);
- cases: a case carries a code if a segment of that code lies in one of its
  sections (either co-leader's) or a researcher set it on the case directly;
- sessions: a session carries a code if any section of any of its notes does,
  or one of its cases carries it directly.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from urllib.parse import urlencode

from django.db.models import Count, F, Q, QuerySet, TextChoices
from django.utils import timezone

from balint.rawsql import Prepared, db_datetime, placeholders
from fieldnotes.models import NoteSection
from sessions.models import CasePresentation, Meeting

from . import coding_reads
from .models import CaseCoding, Category, Code, CodedSegment

CONTEXT_CHARS = 120
# A cut context is trimmed back to a word boundary if one is this close.
WORD_SLACK = 20


class Mode(TextChoices):
    """How several chosen codes combine in a segment search."""

    OR = "or", "Any of the codes (OR)"
    AND = "and", "All of them in the same section (AND)"
    AND_CASE = "and_case", "All of them in the same case"
    AND_SESSION = "and_session", "All of them in the same session"
    OVERLAP = "overlap", "Overlapping each other in the text"


# Where "the same unit" is, seen from a segment and from a case coding.
UNIT_PATHS = {
    Mode.AND: ("section", None),
    Mode.AND_CASE: ("section__case", "case"),
    Mode.AND_SESSION: ("section__note__meeting", "case__meeting"),
}


# --- Scoping helpers ---------------------------------------------------------


def visible_case_codings(sections: QuerySet[NoteSection]) -> QuerySet[CaseCoding]:
    """Case codings of the cases that have a research-eligible section.

    A case whose presenter's consent does not allow research use has no
    eligible section, so what a researcher set on it directly drops out too.
    """
    return CaseCoding.objects.filter(case__in=sections.filter(case__isnull=False).values("case"))


def research_meetings(sections: QuerySet[NoteSection]) -> list[Meeting]:
    """Sessions with at least one research-eligible section, in time order."""
    return list(
        Meeting.objects.filter(pk__in=sections.values("note__meeting"))
        .select_related("group")
        .order_by("starts_at", "group__name", "number", "pk")
    )


def research_cases(sections: QuerySet[NoteSection]) -> list[CasePresentation]:
    """Cases with at least one research-eligible section, per group in session order."""
    return list(
        CasePresentation.objects.filter(pk__in=sections.filter(case__isnull=False).values("case"))
        .select_related("meeting__group", "presenter")
        .defer("presenter__name", "presenter__email", "presenter__study_year")
        .order_by("meeting__group__name", "meeting__group_id", "meeting__starts_at", "meeting__number", "order")
    )


def course_codes(course) -> list[Code]:
    """The course's codes (retired ones too), by category and name, categories loaded."""
    return list(
        Code.objects.filter(course=course)
        .select_related("category")
        .order_by("category__order", "category__name", "category_id", "name", "pk")
    )


def by_category(codes: list[Code]) -> list[tuple[Category, list[Code]]]:
    """Codes (ordered as `course_codes` orders them) grouped under their category."""
    return [(category, list(group)) for category, group in itertools.groupby(codes, key=lambda c: c.category)]


# --- Segment retrieval -------------------------------------------------------


@dataclass(frozen=True)
class SegmentFilter:
    """What a segment search asks for; also the target of every count's link."""

    codes: tuple[int, ...] = ()
    mode: str = Mode.OR
    category: int | None = None
    group: int | None = None
    session: int | None = None
    case: int | None = None
    coder: int | None = None
    date_from: date | None = None
    date_to: date | None = None

    def params(self) -> list[tuple[str, str]]:
        """GET parameters, named as the search form names them."""
        out = [("codes", str(pk)) for pk in self.codes]
        if self.codes and self.mode != Mode.OR:
            out.append(("mode", str(self.mode)))
        for name in ("category", "group", "session", "case", "coder"):
            value = getattr(self, name)
            if value is not None:
                out.append((name, str(value)))
        if self.date_from:
            out.append(("date_from", self.date_from.isoformat()))
        if self.date_to:
            out.append(("date_to", self.date_to.isoformat()))
        return out

    def querystring(self) -> str:
        return urlencode(self.params())


def filter_segments(
    segments: QuerySet[CodedSegment],
    f: SegmentFilter,
    *,
    case_codings: QuerySet[CaseCoding] | None = None,
    tz: tzinfo | None = None,
) -> QuerySet[CodedSegment]:
    """The segments `f` asks for, as a queryset to page in SQL.

    Group, session, case, coder, dates (the session's local date in `tz`)
    and category narrow the segments first; the chosen codes then combine
    within what is left:
    - OR: segments of any chosen code;
    - AND: segments of the chosen codes in sections where every chosen code
      is present (AND_CASE, AND_SESSION: in cases or sessions, where a
      code a researcher set directly on a case counts as present; these two
      run two small queries here to find the cases or sessions);
    - OVERLAP: segments of a chosen code whose range intersects a segment of
      another chosen code in the same section (with one code chosen: of any
      other code).
    """
    tz = tz or timezone.get_current_timezone()
    base = segments
    if f.category is not None:
        base = base.filter(code__category_id=f.category)
    if f.group is not None:
        base = base.filter(section__note__meeting__group_id=f.group)
    if f.session is not None:
        base = base.filter(section__note__meeting_id=f.session)
    if f.case is not None:
        base = base.filter(section__case_id=f.case)
    if f.coder is not None:
        base = base.filter(coder_id=f.coder)
    if f.date_from is not None:
        base = base.filter(section__note__meeting__starts_at__gte=datetime.combine(f.date_from, time.min, tz))
    if f.date_to is not None:
        day_after = datetime.combine(f.date_to + timedelta(days=1), time.min, tz)
        base = base.filter(section__note__meeting__starts_at__lt=day_after)
    if f.mode == Mode.AND_CASE:
        base = base.filter(section__case__isnull=False)
    if not f.codes:
        return base

    rows = base.filter(code_id__in=f.codes)
    wanted = set(f.codes)
    if f.mode in UNIT_PATHS and len(wanted) > 1:
        path, coding_path = UNIT_PATHS[f.mode]
        chosen = base.filter(code_id__in=wanted)
        if coding_path and case_codings is not None:
            # Cases and sessions are few: find the complete ones here, merging
            # in the codes set on cases (a UNION the ORM cannot group over).
            present = defaultdict(set)
            pairs = chosen.values_list(path, "code").distinct().order_by()
            direct = case_codings.filter(code_id__in=wanted).values_list(coding_path, "code").order_by()
            for unit, code in itertools.chain(pairs, direct):
                present[unit].add(code)
            units = [unit for unit, codes in present.items() if unit is not None and codes >= wanted]
            rows = rows.filter(**{f"{path}__in": units})
        else:
            complete = (
                chosen.values(path).annotate(n=Count("code", distinct=True)).filter(n=len(wanted)).values(path)
            )
            rows = rows.filter(**{f"{path}__in": complete})
    elif f.mode == Mode.OVERLAP:
        # Per chosen code, a self-join through the section with the segments
        # of the other codes, each run once as a subquery: a correlated EXISTS
        # would re-run the eligibility per row, and joining every chosen
        # segment with every other one grows with the square of a section's
        # segments of one code.
        overlapping = Q()
        for code_id in wanted:
            join = {"section__segments__in": base.exclude(code_id=code_id)}
            if len(wanted) > 1:
                # Naming the other codes on the join itself lets the database
                # use the (code, section) index for it.
                join = {"section__segments__in": base.filter(code_id__in=wanted - {code_id}),
                        "section__segments__code_id__in": wanted - {code_id}}
            overlapping |= Q(pk__in=base.filter(
                code_id=code_id, section__segments__start__lt=F("end"), section__segments__end__gt=F("start"), **join
            ).values("pk"))
        rows = rows.filter(overlapping)
    return rows


# Session and section order: "case" < "discussion" < "other" is the order
# sections have in a note.
SEGMENT_ORDER = (
    "section__note__meeting__starts_at", "section__note__meeting__group__name", "section__note__meeting_id",
    "section__kind", "section__case__order", "section__note_id", "start", "end", "pk",
)


def segment_ids(segments: QuerySet[CodedSegment]) -> QuerySet:
    """The ids of `segments` in listing order: narrow rows to count and page
    in SQL before anything wide is read (`segment_rows` then reads one page)."""
    return segments.order_by(*SEGMENT_ORDER).values_list("pk", flat=True)


@dataclass(slots=True)
class SegmentHit:
    """A segment as the segment search lists it: one row of values."""

    pk: int
    code_id: int
    code_name: str
    section_id: int
    case_id: int | None
    group_name: str
    meeting_number: int
    starts_at: datetime
    section_label: str
    author: str
    coder: str
    needs_review: bool
    quote: str
    start: int
    end: int
    before: str
    marked: str
    after: str
    text_length: int
    cut_before: bool = False
    cut_after: bool = False


# Written out rather than built with the ORM, which spent twice the
# database's time on building the nine-table query and its 200 objects a
# page; prepared (`balint.rawsql.Prepared`), so PostgreSQL plans the ten-table
# join once per connection rather than on every page. The IN list has a fixed
# length, a page of ids padded with NULLs (which match nothing). The context is
# cut by the database from the rows' texts only, never whole texts; the first
# argument of substr is written as a CASE for SQLite, which has no greatest().
ROWS_AT_ONCE = 25  # the segment search's page

SEGMENT_ROWS = Prepared("segment_rows", """
SELECT g.id, g.code_id, c.name, g.section_id, s.case_id, gr.name, m.number, m.starts_at,
       s.kind, k."order", k.title, p.pseudonym, a.first_name, a.last_name, a.username,
       u.first_name, u.last_name, u.username, g.needs_review, g.quote, g.start, g."end",
       substr(s.text, CASE WHEN g.start - {before} > 1 THEN g.start - {before} ELSE 1 END,
              g.start - CASE WHEN g.start - {chars} > 0 THEN g.start - {chars} ELSE 0 END),
       substr(s.text, g.start + 1, g."end" - g.start),
       substr(s.text, g."end" + 1, {chars}),
       length(s.text)
  FROM analysis_codedsegment g
  JOIN analysis_code c ON c.id = g.code_id
  JOIN auth_user u ON u.id = g.coder_id
  JOIN fieldnotes_notesection s ON s.id = g.section_id
  JOIN fieldnotes_fieldnote n ON n.id = s.note_id
  JOIN auth_user a ON a.id = n.author_id
  JOIN balint_sessions_meeting m ON m.id = n.meeting_id
  JOIN balint_sessions_group gr ON gr.id = m.group_id
  LEFT JOIN balint_sessions_casepresentation k ON k.id = s.case_id
  LEFT JOIN balint_sessions_participant p ON p.id = k.presenter_id
 WHERE g.id IN ({ids})
""".format(before=CONTEXT_CHARS - 1, chars=CONTEXT_CHARS, ids=placeholders(range(ROWS_AT_ONCE))))


def segment_rows(ids) -> list[SegmentHit]:
    """The segments `ids` (one page, already scoped and in listing order)
    ready to list: with what a row shows, and up to CONTEXT_CHARS code points
    of context either side cut out by the database (`before`, `marked`,
    `after`, `text_length`), so a page never loads whole section texts.
    Then `add_context` on them."""
    ids = [int(pk) for pk in ids]
    hits = {}
    for first in range(0, len(ids), ROWS_AT_ONCE):
        some = ids[first:first + ROWS_AT_ONCE]
        for (pk, code_id, code_name, section_id, case_id, group_name, number, starts_at, kind, case_order,
             case_title, presenter, a_first, a_last, a_user, c_first, c_last, c_user, review, quote, start, end,
             before, marked, after, text_length) in SEGMENT_ROWS.rows(some + [None] * (ROWS_AT_ONCE - len(some))):
            hits[pk] = SegmentHit(
                pk, code_id, code_name, section_id, case_id, group_name, number, db_datetime(starts_at),
                coding_reads.label_of(kind, case_order, case_title, presenter),
                coding_reads.person(a_first, a_last, a_user), coding_reads.person(c_first, c_last, c_user),
                bool(review), quote, start, end, before, marked, after, text_length,
            )
    return [hits[pk] for pk in ids if pk in hits]


def add_context(rows, *, chars: int = CONTEXT_CHARS) -> list[SegmentHit]:
    """Finish the rows of one page: trim cut context to a word boundary and
    mark cuts with an ellipsis. A segment flagged for
    review after an amendment may not sit on its offsets any more: it shows
    its stored quote without context."""
    rows = list(rows)
    for row in rows:
        if row.needs_review:
            row.before, row.marked, row.after = "", row.quote, ""
            row.cut_before = row.cut_after = False
            continue
        row.cut_before = row.start > chars
        row.cut_after = row.end + chars < row.text_length
        if row.cut_before:
            space = row.before.find(" ")
            if 0 <= space < WORD_SLACK:
                row.before = row.before[space + 1:]
        if row.cut_after:
            space = row.after.rfind(" ")
            if space >= len(row.after) - WORD_SLACK:
                row.after = row.after[:space]
    return rows


# --- Matrices ----------------------------------------------------------------


@dataclass
class Cell:
    count: int
    filter: SegmentFilter | None = None  # the segments behind the count
    heat: int = 0  # 0-5, relative to the table's largest count


@dataclass
class CodeRow:
    code: Code
    cells: list
    total: int = 0
    units: int = 0  # how many columns (sessions, cases) carry the code
    filter: SegmentFilter | None = None


@dataclass
class CodeSessionMatrix:
    groups: list[tuple]  # (group, [meetings]) in the column order
    meetings: list[Meeting]
    categories: list[tuple[Category, list[CodeRow]]]
    column_totals: list[int]

    @property
    def empty(self) -> bool:
        return not any(row.total for _, rows in self.categories for row in rows)


def heat(count: int, top: int) -> int:
    """A shade 0-5 for a count, so a table reads like a heat map without inline styles."""
    if count <= 0 or top <= 0:
        return 0
    return max(1, min(5, -(-5 * count // top)))


def code_session_counts(segments: QuerySet[CodedSegment]) -> dict[tuple[int, int], int]:
    """(code id, session id) -> number of segments."""
    rows = segments.values_list("code", "section__note__meeting").annotate(n=Count("pk")).order_by()
    return {(code, meeting): n for code, meeting, n in rows}


def code_session_matrix(
    segments: QuerySet[CodedSegment], *, codes: list[Code], meetings: list[Meeting]
) -> CodeSessionMatrix:
    """Segments per code and session. Columns: sessions per group in session
    order; rows: codes by category (retired codes only if they have segments)."""
    counts = code_session_counts(segments)
    columns = sorted(meetings, key=lambda m: (m.group.name, m.group_id, m.starts_at, m.number))
    groups = [(g, list(ms)) for g, ms in itertools.groupby(columns, key=lambda m: m.group)]
    top = max(counts.values(), default=0)
    categories = []
    column_totals = [0] * len(columns)
    for category, category_codes in by_category(codes):
        rows = []
        for code in category_codes:
            cells = []
            for i, meeting in enumerate(columns):
                n = counts.get((code.pk, meeting.pk), 0)
                column_totals[i] += n
                cells.append(Cell(n, SegmentFilter(codes=(code.pk,), session=meeting.pk), heat(n, top)))
            total = sum(c.count for c in cells)
            if code.is_retired and not total:
                continue
            rows.append(CodeRow(code, cells, total, sum(1 for c in cells if c.count),
                                SegmentFilter(codes=(code.pk,))))
        if rows:
            categories.append((category, rows))
    return CodeSessionMatrix(groups, columns, categories, column_totals)


@dataclass
class CaseCell:
    segments: int
    set_directly: bool
    filter: SegmentFilter

    @property
    def carries(self) -> bool:
        return bool(self.segments or self.set_directly)


@dataclass
class CaseRow:
    case: CasePresentation
    cells: list[CaseCell]


@dataclass
class CodeCaseTable:
    categories: list[tuple[Category, list[Code]]]  # the columns, grouped
    codes: list[Code]
    rows: list[CaseRow]
    totals: list[int]  # cases carrying each code


def code_case_table(
    segments: QuerySet[CodedSegment],
    case_codings: QuerySet[CaseCoding],
    *,
    codes: list[Code],
    cases: list[CasePresentation],
) -> CodeCaseTable:
    """Which case carries which code, for the categories counted per case.

    A case carries a code if a segment of it is in one of the case's sections
    (either co-leader's) or a researcher set it on the case; the cell says
    which (segment count, set directly, or both).
    """
    columns = [c for c in codes if c.category.unit == "case"]
    ids = [c.pk for c in columns]
    seg_counts = {
        (case, code): n
        for case, code, n in segments.filter(section__case__isnull=False, code__in=ids)
        .values_list("section__case", "code").annotate(n=Count("pk")).order_by()
    }
    direct = set(case_codings.filter(code__in=ids).values_list("case", "code"))
    # A retired code is a column only while some case still carries it.
    carried = {code for _, code in seg_counts} | {code for _, code in direct}
    columns = [c for c in columns if not c.is_retired or c.pk in carried]
    rows = []
    totals = [0] * len(columns)
    for case in cases:
        cells = []
        for i, code in enumerate(columns):
            cell = CaseCell(seg_counts.get((case.pk, code.pk), 0), (case.pk, code.pk) in direct,
                            SegmentFilter(codes=(code.pk,), case=case.pk))
            totals[i] += cell.carries
            cells.append(cell)
        rows.append(CaseRow(case, cells))
    return CodeCaseTable(by_category(columns), columns, rows, totals)


# --- Co-occurrence -----------------------------------------------------------


def overlap_counts(
    segments: QuerySet[CodedSegment], *, row_codes: list[int], col_codes: list[int]
) -> dict[tuple[int, int], int]:
    """(row code, column code) -> pairs of segments whose ranges intersect in
    the same section. One SQL self-join through the section; a segment never
    pairs with one of its own code."""
    rows = (
        segments.filter(code__in=row_codes)
        .filter(
            section__segments__in=segments.filter(code__in=col_codes),
            section__segments__start__lt=F("end"),
            section__segments__end__gt=F("start"),
        )
        .values_list("code", "section__segments__code")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {(a, b): n for a, b, n in rows if a != b}


@dataclass
class CodesByUnit:
    cases: dict[int, set[int]] = field(default_factory=dict)
    sessions: dict[int, set[int]] = field(default_factory=dict)


def codes_by_unit(
    segments: QuerySet[CodedSegment], case_codings: QuerySet[CaseCoding], *, codes: list[int] | None = None
) -> CodesByUnit:
    """The codes each case and each session carries (two queries)."""
    if codes is not None:
        segments = segments.filter(code__in=codes)
        case_codings = case_codings.filter(code__in=codes)
    found = CodesByUnit(defaultdict(set), defaultdict(set))
    rows = segments.values_list("section__case", "section__note__meeting", "code").distinct().order_by()
    direct = case_codings.values_list("case", "case__meeting", "code").order_by()
    for case, meeting, code in itertools.chain(rows, direct):
        if case is not None:
            found.cases[case].add(code)
        found.sessions[meeting].add(code)
    return found


def unit_pair_counts(
    units: dict[int, set[int]], *, row_codes: list[int], col_codes: list[int]
) -> dict[tuple[int, int], int]:
    """(row code, column code) -> units carrying both; (a, a) = units carrying a."""
    counts: dict[tuple[int, int], int] = defaultdict(int)
    rows, cols = set(row_codes), set(col_codes)
    for present in units.values():
        for a in present & rows:
            for b in present & cols:
                counts[a, b] += 1
    return dict(counts)


@dataclass
class PairTable:
    kind: str  # "overlap", "case", "session"
    rows: list[tuple[Code, list[Cell]]]
    columns: list[Code]

    @property
    def empty(self) -> bool:
        return not any(cell.count for _, cells in self.rows for cell in cells if cell)


PAIR_MODES = {"overlap": Mode.OVERLAP, "case": Mode.AND_CASE, "session": Mode.AND_SESSION}


def pair_table(kind: str, counts: dict[tuple[int, int], int], *, rows: list[Code], columns: list[Code]) -> PairTable:
    """A co-occurrence table whose cells link to the segments behind them.
    A code against itself: no cell for overlaps; for cases and sessions, the
    units carrying it."""
    top = max((n for (a, b), n in counts.items() if a != b), default=0)
    table = []
    for r in rows:
        cells = []
        for c in columns:
            if r.pk == c.pk and kind == "overlap":
                cells.append(None)
                continue
            n = counts.get((r.pk, c.pk), 0)
            codes = (r.pk,) if r.pk == c.pk else (r.pk, c.pk)
            cells.append(Cell(n, SegmentFilter(codes=codes, mode=PAIR_MODES[kind]), 0 if r.pk == c.pk else heat(n, top)))
        table.append((r, cells))
    return PairTable(kind, table, columns)


def cooccurrence_tables(
    segments: QuerySet[CodedSegment],
    case_codings: QuerySet[CaseCoding],
    *,
    rows: list[Code],
    columns: list[Code],
) -> dict[str, PairTable]:
    """The three co-occurrence tables of `rows` × `columns` codes: "overlap"
    (segment pairs), "case" (cases) and "session" (sessions)."""
    row_ids, col_ids = [c.pk for c in rows], [c.pk for c in columns]
    units = codes_by_unit(segments, case_codings, codes=sorted(set(row_ids) | set(col_ids)))
    return {
        "overlap": pair_table("overlap", overlap_counts(segments, row_codes=row_ids, col_codes=col_ids),
                              rows=rows, columns=columns),
        "case": pair_table("case", unit_pair_counts(units.cases, row_codes=row_ids, col_codes=col_ids),
                           rows=rows, columns=columns),
        "session": pair_table("session", unit_pair_counts(units.sessions, row_codes=row_ids, col_codes=col_ids),
                              rows=rows, columns=columns),
    }


# --- Saturation --------------------------------------------------------------


@dataclass
class SaturationRow:
    meeting: Meeting
    used: int  # codes the session carries
    new_codes: list[Code]  # carried here for the first time
    cumulative: int  # codes seen so far

    @property
    def new(self) -> int:
        return len(self.new_codes)


def saturation(
    segments: QuerySet[CodedSegment],
    case_codings: QuerySet[CaseCoding],
    *,
    meetings: list[Meeting],
    codes: list[Code],
) -> list[SaturationRow]:
    """New codes per session, sessions in time order across the course's groups.

    A session "uses" a code if a segment of it is in one of the session's
    sections or a researcher set it on one of its cases.
    """
    by_pk = {c.pk: c for c in codes}
    per_session = codes_by_unit(segments, case_codings).sessions
    seen: set[int] = set()
    out = []
    for meeting in sorted(meetings, key=lambda m: (m.starts_at, m.group.name, m.number, m.pk)):
        used = per_session.get(meeting.pk, set())
        new = [by_pk[pk] for pk in used - seen if pk in by_pk]
        new.sort(key=lambda c: (c.category.order, c.category.name, c.name))
        seen |= used
        out.append(SaturationRow(meeting, len(used), new, len(seen)))
    return out
