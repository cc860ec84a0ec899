"""What the per-course report says, as plain numbers and tables.

`collect(course)` reads the course once and returns a `ReportData`: only
strings, numbers, dates and lists of them, so the tests can hold every
figure against a hand count and the renderer needs no database.

Consent decides: the report counts exactly the shared coding of
research-eligible text (`CodedSegment.objects.research`), the case codings
of cases with an eligible section, and quotes only from that coding.
Participants appear only by pseudonym; their names are read once, to blank
them out of any quoted text that still carries one.

Counting units (the same as the retrieval pages, see `analysis.queries`):
- a case carries a code if a research segment of it lies in one of the
  case's sections (either co-leader's) or a researcher set it on the case;
  the denominator is the cases with at least one eligible section;
- a session carries a code if any of its eligible sections does, or one of
  its cases carries it directly; the denominator is the sessions with at
  least one eligible section;
- a discussion (a session's group discussion) carries a code if a segment
  of it lies in one of the session's eligible discussion sections; the
  denominator is the sessions with an eligible discussion section.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction
from math import floor

from django.contrib.auth import get_user_model
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.functions import Length
from django.utils import timezone

from fieldnotes.models import FieldNote, NoteSection
from sessions.models import CasePresentation, Consent, Course, Meeting, Participant

from . import queries
from .models import CaseCoding, Category, CodebookChange, CodedSegment, CodingRound, Memo
from .rounds import round_comparison
from .tidy import fingerprint

QUOTES_PER_CODE = 3
QUOTE_MAX_CHARS = 400


# --- The shape of the report ---------------------------------------------------------


@dataclass(frozen=True)
class Ratio:
    """`count` of `of`, e.g. cases carrying a code of the cases with eligible text."""

    count: int
    of: int

    @property
    def percent(self) -> float | None:
        return None if not self.of else 100 * self.count / self.of

    @property
    def whole_percent(self) -> int | None:
        """Rounded half up, so the same counts always print the same."""
        return None if not self.of else floor(Fraction(100 * self.count, self.of) + Fraction(1, 2))

    @property
    def label(self) -> str:
        return "–" if not self.of else f"{self.count} / {self.of} ({self.whole_percent}%)"

    @property
    def percent_label(self) -> str:
        return "–" if not self.of else f"{self.whole_percent}%"


@dataclass
class CourseInfo:
    name: str
    institution: str
    starts_on: date | None
    ends_on: date | None
    description: str
    time_zone: str


@dataclass
class GroupSummary:
    name: str
    participants: int
    held: int
    cancelled: int
    scheduled: int
    cases: int  # presented in held sessions


@dataclass
class SessionRow:
    group: str
    number: int
    on: date  # local date in the course's time zone
    status: str  # "held" or "cancelled"
    attendance: Ratio | None  # present of recorded; None when cancelled or not recorded
    cases: int

    @property
    def name(self) -> str:
        return f"{self.group} · session {self.number}"


@dataclass
class ParticipantRow:
    pseudonym: str
    group: str
    attendance: Ratio  # held sessions present of held sessions with their attendance recorded


@dataclass
class Overview:
    groups: list[GroupSummary]
    sessions: list[SessionRow]  # held and cancelled, in time order
    participants: list[ParticipantRow]
    held: int
    cancelled: int
    scheduled: int
    cases: int
    attendance: Ratio  # over all held sessions


@dataclass
class ExclusionRow:
    reason: str
    sections: int
    characters: int


@dataclass
class ConsentSummary:
    """Consent as it stands (each participant's latest decision), and the text it keeps out.

    Sections are those of submitted notes that have any text.
    """

    participants: int
    given: int
    declined: int
    withdrawn_future: int  # stopped future collection
    withdrawn_past: int  # also removed their past data
    no_decision: int
    included_sections: int
    included_characters: int
    exclusions: list[ExclusionRow]

    @property
    def excluded_sections(self) -> int:
        return sum(row.sections for row in self.exclusions)

    @property
    def excluded_characters(self) -> int:
        return sum(row.characters for row in self.exclusions)

    @property
    def excluded_share(self) -> Ratio:
        return Ratio(self.excluded_characters, self.excluded_characters + self.included_characters)


@dataclass
class CodeCount:
    code: str
    units: Ratio  # cases (or sessions) carrying the code, of the category's denominator
    segments: int
    discussions: Ratio | None = None  # themes only: discussions carrying it
    retired: bool = False


@dataclass
class CategoryTable:
    category: str
    unit: str  # "case" or "session"
    description: str
    units: int  # the denominator
    rows: list[CodeCount]
    without_code: int  # units carrying none of the category's codes
    discussions: int | None = None  # the discussion denominator (session categories)


@dataclass
class Heatmap:
    """Units (cases or sessions) carrying both the row and the column code."""

    unit: str
    row_category: str
    column_category: str
    rows: list[str]
    columns: list[str]
    cells: list[list[int]]
    units: int

    @property
    def empty(self) -> bool:
        return not any(any(row) for row in self.cells)


@dataclass
class Timeline:
    sessions: list[str]  # short labels ("A1", "Tue3"), in time order
    session_names: list[str]  # "Group A · session 1"
    group_key: list[tuple[str, str]]  # (short label, group name)
    codes: list[str]
    categories: list[str]  # each code's category, parallel to `codes`
    segments: list[list[int]]  # [code][session] research segments
    present: list[list[bool]]  # [code][session] the session carries the code

    @property
    def empty(self) -> bool:
        return not any(any(row) for row in self.present)


@dataclass
class SaturationPoint:
    session: str  # short label
    name: str
    used: int
    new: list[str]
    cumulative: int


@dataclass
class Quote:
    text: str
    reference: str  # "Group A · session 3 · case 2 (S3)"
    segment_id: int


@dataclass
class CodeQuotes:
    category: str
    code: str
    quotes: list[Quote]


NOT_DEFINED = "not defined"


def _signed(value: float) -> str:
    """Two decimals with a typographic minus; never "-0.00"."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text.replace("-", "\u2212")


@dataclass
class Stats:
    units: int
    percent: float | None  # 0..1, None where not defined
    kappa: float | None
    alpha: float | None

    @property
    def percent_label(self) -> str:
        return NOT_DEFINED if self.percent is None else f"{100 * self.percent:.1f}%"

    @property
    def kappa_label(self) -> str:
        return NOT_DEFINED if self.kappa is None else _signed(self.kappa)

    @property
    def alpha_label(self) -> str:
        return NOT_DEFINED if self.alpha is None else _signed(self.alpha)


@dataclass
class AgreementRow:
    code: str
    sections: Stats
    characters: Stats


@dataclass
class RoundAgreement:
    name: str
    closed_on: date | None
    coders: list[str]
    sections: int
    rows: list[AgreementRow]
    pooled: AgreementRow
    disagreements: int
    resolved: int


@dataclass
class CodebookCode:
    name: str
    parent: str
    definition: str
    when_to_use: str
    when_not_to_use: str
    example: str
    retired: bool


@dataclass
class CodebookCategory:
    name: str
    unit: str
    description: str
    codes: list[CodebookCode]


@dataclass
class MemoItem:
    title: str
    text: str
    about: str
    author: str
    written_on: date


@dataclass
class Methods:
    notes: int  # submitted notes with at least one eligible section
    coleaders: int  # their authors
    sessions: int  # sessions with eligible text
    first_session: date | None
    last_session: date | None
    sections: int  # eligible sections with text
    characters: int
    segments: int
    case_codings: int
    coders: list[tuple[str, int]]  # (researcher, research segments)
    case_coders: list[tuple[str, int]]  # (researcher, case codings)
    codebook_version: int  # the number of recorded codebook changes
    codebook_changed_at: datetime | None
    categories: int
    codes: int  # active
    retired_codes: int
    closed_rounds: int
    data_hash: str = ""


@dataclass
class ReportData:
    course: CourseInfo
    overview: Overview
    consent: ConsentSummary
    per_case: list[CategoryTable]
    per_session: list[CategoryTable]
    cooccurrence: list[Heatmap]
    timeline: Timeline
    saturation: list[SaturationPoint]
    exemplars: list[CodeQuotes]
    agreement: list[RoundAgreement]
    codebook: list[CodebookCategory]
    memos: list[MemoItem] | None  # None: not asked for
    methods: Methods
    generated_at: datetime = field(default_factory=timezone.now)  # not a number of the report


# --- Small helpers -------------------------------------------------------------------


def natural_key(text: str) -> tuple:
    """'S2' before 'S10'."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text))


def person(user) -> str:
    return (user.get_full_name() or user.get_username()).strip()


def short_labels(group_names: list[str]) -> dict[str, str]:
    """A short label per group for crowded axes: "Group A" -> "A", "Tuesday group" -> "Tue"."""
    labels = {}
    for name in group_names:
        words = [w for w in re.split(r"\s+", name.strip()) if w]
        rest = [w for w in words if w.lower() not in {"group", "ryhmä"}]
        if rest and len(rest[-1]) <= 2:
            labels[name] = rest[-1]
        elif rest:
            labels[name] = rest[0][:3]
        else:
            labels[name] = ""
    if len(set(labels.values())) < len(labels) or "" in labels.values():
        labels = {name: f"G{i}" for i, name in enumerate(group_names, start=1)}
    return labels


class NameScrubber:
    """Replaces participants' real names that slipped into text with their pseudonym.

    Notes are checked for identifiers when saved, but an author may confirm a
    false alarm; the report is what leaves the system, so it checks again.
    """

    def __init__(self, course: Course):
        replacements: dict[str, str] = {}
        parts: dict[str, set[str]] = defaultdict(set)
        for name, pseudonym in Participant.objects.filter(course=course).values_list("name", "pseudonym"):
            name = " ".join(name.split())
            if not name:
                continue
            replacements[name] = pseudonym
            for part in re.split(r"[\s\-]+", name):
                if len(part) >= 3:
                    parts[part].add(pseudonym)
        for part, pseudonyms in parts.items():
            replacements.setdefault(part, next(iter(pseudonyms)) if len(pseudonyms) == 1 else "[name]")
        self.replacements = replacements
        self.pattern = (
            re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(replacements, key=len, reverse=True)) + r")\b")
            if replacements else None
        )

    def __call__(self, text: str) -> str:
        if not self.pattern or not text:
            return text
        return self.pattern.sub(lambda m: self.replacements[m.group(1)], text)


def section_references(section_ids) -> dict[int, str]:
    """Section id -> "Group A · session 3 · case 2 (S3)" (or "· group discussion"), in one query."""
    rows = NoteSection.objects.filter(pk__in=section_ids).values_list(
        "pk", "kind", "case__order", "case__presenter__pseudonym", "note__meeting__number",
        "note__meeting__group__name",
    )
    refs = {}
    for pk, kind, order, pseudonym, number, group in rows:
        where = f"{group} · session {number}"
        if kind == NoteSection.Kind.CASE:
            refs[pk] = f"{where} · case {order} ({pseudonym})"
        elif kind == NoteSection.Kind.DISCUSSION:
            refs[pk] = f"{where} · group discussion"
        else:
            refs[pk] = f"{where} · other observations"
    return refs


def case_references(case_ids) -> dict[int, str]:
    rows = CasePresentation.objects.filter(pk__in=case_ids).values_list(
        "pk", "order", "presenter__pseudonym", "meeting__number", "meeting__group__name"
    )
    return {pk: f"{group} · session {number} · case {order} ({pseudonym})" for pk, order, pseudonym, number, group
            in rows}


# --- Collecting ----------------------------------------------------------------------


@dataclass
class _Scope:
    """The course's research data, as querysets read by every part."""

    course: Course
    eligible: QuerySet[NoteSection]
    segments: QuerySet[CodedSegment]
    case_codings: QuerySet[CaseCoding]
    codes: list  # every code of the course, retired ones too
    report_codes: list  # active codes, and retired ones still carried by some research data
    meetings: list[Meeting]
    cases: list[CasePresentation]
    units: queries.CodesByUnit
    scrub: NameScrubber


def collect(course: Course, *, include_memos: bool = False, data_hash: str | None = None) -> ReportData:
    """Everything the report says about `course`, read in a few dozen aggregate queries.

    `data_hash` is tidy.fingerprint(course) when the caller has it already
    (the report job computes it once for all the files it builds).
    """
    eligible = NoteSection.objects.research_eligible().filter(note__meeting__group__course=course)
    segments = CodedSegment.objects.research(course)
    case_codings = queries.visible_case_codings(eligible)
    codes = queries.course_codes(course)
    units = queries.codes_by_unit(segments, case_codings)
    carried = set().union(*units.cases.values(), *units.sessions.values())
    scope = _Scope(
        course=course, eligible=eligible, segments=segments, case_codings=case_codings,
        codes=codes, report_codes=[c for c in codes if not c.is_retired or c.pk in carried],
        meetings=queries.research_meetings(eligible),
        cases=queries.research_cases(eligible),
        units=units,
        scrub=NameScrubber(course),
    )
    per_case, per_session = _category_tables(scope)
    return ReportData(
        course=CourseInfo(name=course.name, institution=course.institution, starts_on=course.starts_on,
                          ends_on=course.ends_on, description=course.description, time_zone=course.time_zone),
        overview=_overview(course),
        consent=_consent(course),
        per_case=per_case,
        per_session=per_session,
        cooccurrence=_cooccurrence(scope),
        timeline=_timeline(scope),
        saturation=_saturation(scope),
        exemplars=_exemplars(scope),
        agreement=_agreement(scope),
        codebook=_codebook(scope),
        memos=_memos(scope) if include_memos else None,
        methods=_methods(scope, data_hash=data_hash if data_hash is not None else fingerprint(course)),
    )


def _overview(course: Course) -> Overview:
    tz = course.tz
    groups = list(course.groups.order_by("name", "pk"))
    meetings = list(
        Meeting.objects.filter(group__course=course)
        .select_related("group")
        .annotate(
            present=Count("attendance", filter=Q(attendance__present=True), distinct=True),
            recorded=Count("attendance", distinct=True),
            n_cases=Count("cases", distinct=True),
        )
        .order_by("starts_at", "group__name", "number", "pk")
    )
    members = Counter(Participant.objects.filter(course=course).values_list("group_id", flat=True))
    per_group = {g.pk: GroupSummary(g.name, members[g.pk], 0, 0, 0, 0) for g in groups}
    sessions = []
    present = recorded = 0
    for m in meetings:
        summary = per_group[m.group_id]
        if m.status == Meeting.Status.HELD:
            summary.held += 1
            summary.cases += m.n_cases
            present += m.present
            recorded += m.recorded
        elif m.status == Meeting.Status.CANCELLED:
            summary.cancelled += 1
        else:
            summary.scheduled += 1
            continue
        held = m.status == Meeting.Status.HELD
        sessions.append(SessionRow(
            group=m.group.name, number=m.number, on=timezone.localtime(m.starts_at, tz).date(), status=m.status,
            attendance=Ratio(m.present, m.recorded) if held and m.recorded else None, cases=m.n_cases,
        ))
    held_attendance = Q(attendance__meeting__status=Meeting.Status.HELD)
    participants = [
        ParticipantRow(pseudonym, group, Ratio(attended, rows))
        for pseudonym, group, attended, rows in Participant.objects.filter(course=course)
        .annotate(
            attended=Count("attendance", filter=held_attendance & Q(attendance__present=True)),
            rows=Count("attendance", filter=held_attendance),
        )
        .values_list("pseudonym", "group__name", "attended", "rows")
    ]
    participants.sort(key=lambda p: (p.group, natural_key(p.pseudonym)))
    summaries = list(per_group.values())
    return Overview(
        groups=summaries, sessions=sessions, participants=participants,
        held=sum(g.held for g in summaries), cancelled=sum(g.cancelled for g in summaries),
        scheduled=sum(g.scheduled for g in summaries), cases=sum(g.cases for g in summaries),
        attendance=Ratio(present, recorded),
    )


def _consent(course: Course) -> ConsentSummary:
    latest: dict[int, tuple] = {}
    for participant, decision, scope, decided_at, pk in Consent.objects.filter(participant__course=course).values_list(
        "participant", "decision", "withdrawal_scope", "decided_at", "pk"
    ):
        key = (decided_at, pk)
        if participant not in latest or key > latest[participant][0]:
            latest[participant] = (key, decision, scope)
    total = Participant.objects.filter(course=course).count()
    states = Counter(
        "past" if scope == Consent.WithdrawalScope.PAST else "future" if decision == Consent.Decision.WITHDRAWN
        else decision
        for _, decision, scope in latest.values()
    )

    sections = (
        NoteSection.objects.filter(note__meeting__group__course=course, note__status=FieldNote.Status.SUBMITTED)
        .with_eligibility()
        .annotate(length=Length("text"))
        .filter(length__gt=0)
        .defer("text")
        .order_by("pk")
    )
    included = [0, 0]
    excluded: dict[str, list[int]] = {}
    for section in sections:
        reason = section.ineligibility_reason()
        if not reason:
            included[0] += 1
            included[1] += section.length
        else:
            row = excluded.setdefault(reason, [0, 0])
            row[0] += 1
            row[1] += section.length
    exclusions = [ExclusionRow(reason, n, chars) for reason, (n, chars) in excluded.items()]
    exclusions.sort(key=lambda r: (-r.characters, r.reason))
    return ConsentSummary(
        participants=total, given=states[Consent.Decision.GIVEN], declined=states[Consent.Decision.DECLINED],
        withdrawn_future=states["future"], withdrawn_past=states["past"], no_decision=total - len(latest),
        included_sections=included[0], included_characters=included[1], exclusions=exclusions,
    )


def _category_tables(scope: _Scope) -> tuple[list[CategoryTable], list[CategoryTable]]:
    segment_counts = dict(scope.segments.values_list("code").annotate(n=Count("pk")).order_by())
    case_ids = {c.pk for c in scope.cases}
    meeting_ids = {m.pk for m in scope.meetings}
    by_case = {case: codes for case, codes in scope.units.cases.items() if case in case_ids}
    by_session = {m: codes for m, codes in scope.units.sessions.items() if m in meeting_ids}
    by_discussion: dict[int, set[int]] = defaultdict(set)
    for meeting, code in (
        scope.segments.filter(section__kind=NoteSection.Kind.DISCUSSION)
        .values_list("section__note__meeting", "code").distinct().order_by()
    ):
        by_discussion[meeting].add(code)
    discussions = scope.eligible.filter(kind=NoteSection.Kind.DISCUSSION).values("note__meeting").distinct().count()

    per_case, per_session = [], []
    for category, codes in queries.by_category(scope.report_codes):
        ids = {c.pk for c in codes}
        if category.unit == "case":
            found, denominator = by_case, len(case_ids)
        else:
            found, denominator = by_session, len(meeting_ids)
        rows = []
        for code in codes:
            carrying = sum(1 for present in found.values() if code.pk in present)
            row = CodeCount(code.name, Ratio(carrying, denominator), segment_counts.get(code.pk, 0),
                            retired=code.is_retired)
            if category.unit != "case":
                row.discussions = Ratio(sum(1 for present in by_discussion.values() if code.pk in present),
                                        discussions)
            rows.append(row)
        with_code = sum(1 for present in found.values() if present & ids)
        table = CategoryTable(category.name, category.unit, category.description, denominator, rows,
                              without_code=denominator - with_code,
                              discussions=discussions if category.unit != "case" else None)
        (per_case if category.unit == "case" else per_session).append(table)
    return per_case, per_session


def _cooccurrence(scope: _Scope) -> list[Heatmap]:
    """Every pair of case categories by case (contexts × triggers); every case
    category against every session category by session (triggers × themes)."""
    case_ids = {c.pk for c in scope.cases}
    meeting_ids = {m.pk for m in scope.meetings}
    by_case = {k: v for k, v in scope.units.cases.items() if k in case_ids}
    by_session = {k: v for k, v in scope.units.sessions.items() if k in meeting_ids}
    categories = queries.by_category(scope.report_codes)
    case_cats = [(cat, codes) for cat, codes in categories if cat.unit == "case"]
    session_cats = [(cat, codes) for cat, codes in categories if cat.unit != "case"]
    pairs = [(a, b, "case", by_case, len(case_ids)) for i, a in enumerate(case_cats) for b in case_cats[i + 1:]]
    pairs += [(a, b, "session", by_session, len(meeting_ids)) for a in case_cats for b in session_cats]
    maps = []
    for (row_cat, row_codes), (col_cat, col_codes), unit, units, total in pairs:
        counts = queries.unit_pair_counts(units, row_codes=[c.pk for c in row_codes],
                                          col_codes=[c.pk for c in col_codes])
        maps.append(Heatmap(
            unit=unit, row_category=row_cat.name, column_category=col_cat.name,
            rows=[c.name for c in row_codes], columns=[c.name for c in col_codes],
            cells=[[counts.get((r.pk, c.pk), 0) for c in col_codes] for r in row_codes], units=total,
        ))
    return maps


def _session_labels(meetings: list[Meeting]) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    names = sorted({m.group.name for m in meetings}, key=natural_key)
    short = short_labels(names)

    def label(m: Meeting) -> str:
        prefix = short[m.group.name]
        # "A3", "Tue3", but "07·3" rather than "073".
        return f"{prefix}·{m.number}" if prefix[-1:].isdigit() else f"{prefix}{m.number}"

    return ([label(m) for m in meetings],
            [f"{m.group.name} · session {m.number}" for m in meetings],
            [(short[n], n) for n in names])


def _timeline(scope: _Scope) -> Timeline:
    counts = queries.code_session_counts(scope.segments)
    meeting_ids = [m.pk for m in scope.meetings]
    codes = scope.report_codes
    short, names, key = _session_labels(scope.meetings)
    return Timeline(
        sessions=short, session_names=names, group_key=key,
        codes=[c.name for c in codes], categories=[c.category.name for c in codes],
        segments=[[counts.get((c.pk, m), 0) for m in meeting_ids] for c in codes],
        present=[[c.pk in scope.units.sessions.get(m, ()) for m in meeting_ids] for c in codes],
    )


def _saturation(scope: _Scope) -> list[SaturationPoint]:
    rows = queries.saturation(scope.segments, scope.case_codings, meetings=scope.meetings, codes=scope.codes)
    short, names, _ = _session_labels([r.meeting for r in rows])
    return [SaturationPoint(s, n, r.used, [c.name for c in r.new_codes], r.cumulative)
            for s, n, r in zip(short, names, rows)]


def _exemplars(scope: _Scope) -> list[CodeQuotes]:
    """Up to three quotes per code: the longest up to 400 characters, then the
    oldest, each from a different note section. Chosen over integers in one
    pass, so a course with tens of thousands of segments loads only the few
    quotes it prints."""
    candidates = (
        scope.segments.filter(needs_review=False)
        .annotate(n=Length("quote"))
        .filter(n__lte=QUOTE_MAX_CHARS)
        .values_list("pk", "code_id", "section_id")
        .order_by("code_id", "-n", "pk")
    )
    chosen: dict[int, list[int]] = defaultdict(list)
    sections_used: dict[int, set[int]] = defaultdict(set)
    for pk, code, section in candidates:
        if len(chosen[code]) < QUOTES_PER_CODE and section not in sections_used[code]:
            chosen[code].append(pk)
            sections_used[code].add(section)
    ids = [pk for pks in chosen.values() for pk in pks]
    rows = dict((pk, (quote, section)) for pk, quote, section in
                CodedSegment.objects.filter(pk__in=ids).values_list("pk", "quote", "section_id"))
    refs = section_references({section for _, section in rows.values()})
    out = []
    for code in scope.report_codes:
        quotes = [Quote(scope.scrub(" ".join(rows[pk][0].split())), refs[rows[pk][1]], pk) for pk in chosen[code.pk]]
        out.append(CodeQuotes(code.category.name, code.name, quotes))
    return out


def _stats(agreement) -> Stats:
    return Stats(agreement.units, agreement.percent, agreement.kappa, agreement.alpha)


def _agreement(scope: _Scope) -> list[RoundAgreement]:
    out = []
    rounds = CodingRound.objects.filter(course=scope.course, status=CodingRound.Status.CLOSED).order_by(
        "closed_at", "pk")
    for round in rounds:
        comparison = round_comparison(round=round, sections=scope.eligible)
        out.append(RoundAgreement(
            name=round.name,
            closed_on=timezone.localtime(round.closed_at, scope.course.tz).date() if round.closed_at else None,
            coders=[person(c) for c in comparison.coders],
            sections=len(comparison.sections),
            rows=[AgreementRow(code.name, _stats(s), _stats(c)) for code, s, c in comparison.rows],
            pooled=AgreementRow("All codes (pooled)", _stats(comparison.pooled_section),
                                _stats(comparison.pooled_character)),
            disagreements=len(comparison.disagreements),
            resolved=sum(1 for d in comparison.disagreements if d.resolved),
        ))
    return out


def _codebook(scope: _Scope) -> list[CodebookCategory]:
    names = {c.pk: c.name for c in scope.codes}
    by_category = defaultdict(list)
    for code in scope.codes:
        by_category[code.category_id].append(code)
    return [
        CodebookCategory(
            category.name, category.get_unit_display(), category.description,
            [CodebookCode(c.name, names.get(c.parent_id, ""), c.definition, c.when_to_use, c.when_not_to_use,
                          scope.scrub(c.example), c.is_retired) for c in by_category[category.pk]],
        )
        for category in Category.objects.filter(course=scope.course).order_by("order", "name", "pk")
    ]


def _memos(scope: _Scope) -> list[MemoItem]:
    """Memos on codes, rounds and the course; on text only while that text is research data."""
    eligible_cases = scope.eligible.filter(case__isnull=False).values("case")
    memos = list(
        Memo.objects.filter(course=scope.course)
        .filter(Q(section__isnull=True) | Q(section__in=scope.eligible))
        .filter(Q(segment__isnull=True) | Q(segment__section__in=scope.eligible))
        .filter(Q(case__isnull=True) | Q(case__in=eligible_cases))
        .select_related("author", "code", "round", "segment__code")
        .order_by("created_at", "pk")
    )
    section_refs = section_references({m.section_id for m in memos if m.section_id}
                                      | {m.segment.section_id for m in memos if m.segment_id})
    case_refs = case_references({m.case_id for m in memos if m.case_id})
    out = []
    for memo in memos:
        if memo.code_id:
            about = f"Code: {memo.code.name}"
        elif memo.segment_id:
            about = f"Segment of “{memo.segment.code.name}”, {section_refs[memo.segment.section_id]}"
        elif memo.section_id:
            about = f"Note section: {section_refs[memo.section_id]}"
        elif memo.case_id:
            about = f"Case: {case_refs[memo.case_id]}"
        elif memo.round_id:
            about = f"Double-coding round: {memo.round.name}"
        else:
            about = "The course"
        out.append(MemoItem(scope.scrub(memo.title), scope.scrub(memo.text), about, person(memo.author),
                            timezone.localtime(memo.created_at, scope.course.tz).date()))
    return out


def _methods(scope: _Scope, *, data_hash: str) -> Methods:
    course = scope.course
    tz = course.tz
    sections = scope.eligible.annotate(length=Length("text")).filter(length__gt=0)
    notes = scope.eligible.values("note").distinct()
    coders = Counter(dict(scope.segments.values_list("coder").annotate(n=Count("pk")).order_by()))
    case_coders = Counter(dict(scope.case_codings.values_list("set_by").annotate(n=Count("pk")).order_by()))
    users = {u.pk: person(u) for u in get_user_model().objects.filter(pk__in=set(coders) | set(case_coders))}
    changes = CodebookChange.objects.filter(course=course).aggregate(n=Count("pk"), at=Max("at"))
    first = scope.meetings[0].starts_at if scope.meetings else None
    last = scope.meetings[-1].starts_at if scope.meetings else None
    chars = sections.aggregate(n=Sum("length"))["n"] or 0
    return Methods(
        notes=FieldNote.objects.filter(pk__in=notes).count(),
        coleaders=FieldNote.objects.filter(pk__in=notes).values("author").distinct().count(),
        sessions=len(scope.meetings),
        first_session=timezone.localtime(first, tz).date() if first else None,
        last_session=timezone.localtime(last, tz).date() if last else None,
        sections=sections.count(), characters=chars,
        segments=sum(coders.values()), case_codings=sum(case_coders.values()),
        coders=sorted(((users[u], n) for u, n in coders.items()), key=lambda x: (-x[1], x[0])),
        case_coders=sorted(((users[u], n) for u, n in case_coders.items()), key=lambda x: (-x[1], x[0])),
        codebook_version=changes["n"], codebook_changed_at=changes["at"],
        categories=Category.objects.filter(course=course).count(),
        codes=sum(1 for c in scope.codes if not c.is_retired),
        retired_codes=sum(1 for c in scope.codes if c.is_retired),
        closed_rounds=CodingRound.objects.filter(course=course, status=CodingRound.Status.CLOSED).count(),
        data_hash=data_hash,
    )
