"""Tidy data of one course: the tables behind the report, as CSV and XLSX.

Four tables, each a list of flat dicts with a fixed column order:

- segments (`SEGMENT_COLUMNS`), one row per coded segment of the shared
  coding of research-eligible text (`CodedSegment.objects.research`), so a
  consent withdrawal of past data takes rows out of every file at once:
  segment_id, group, session_number, session_date (the course's local date),
  case_order, case_title, presenter_pseudonym (these three blank outside a
  case section), section_id, section_kind (case / discussion / other),
  note_author, coder (usernames), code, category, start, end (Unicode code
  points, end excluded), quote, needs_review, created_utc (ISO 8601, "Z").
- cases (`CASE_COLUMNS`), one row per case presentation that has
  research-eligible text (a case whose presenter's consent does not allow
  research use is not research data, so it is not listed): case_id, group,
  session_number, session_date, case_order, case_title, presenter_pseudonym;
  case_codes = the codes of "per case" categories (contexts, triggers) the
  case carries, from its segments (either co-leader's note) or set on the
  case directly, ";"-joined and sorted by name, case-insensitively;
  codes_from_segments and codes_set_on_case say where each came from;
  segment_count (all segments in the case's sections) and
  case_code_segment_count (those of "per case" codes).
- sessions (`SESSION_COLUMNS`), one row per session of the course, held,
  scheduled or cancelled: group, session_number, session_date, status,
  duration_minutes, attendance_count (present; blank when attendance was not
  recorded), group_size (participants in the group now), cases_presented
  (all cases, those without research consent too: a count, never who),
  themes (codes of "per session" categories the session carries, from any
  segment in its notes or set on one of its cases; ";"-joined, sorted),
  segment_count.
- codebook (`CODEBOOK_COLUMNS`), one row per code, retired ones too:
  code_id, category, category_unit, code, parent, definition, when_to_use,
  when_not_to_use, example, colour, retired, segment_count.

Participants appear only by pseudonym: identity fields are never selected.
Every query has an explicit order and rows are sorted again in Python by
code-point keys, so two runs on the same data give the same bytes whatever
the database's collation; nothing here writes the time of the run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timezone as dt_timezone

from django.db.models import Count, IntegerField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Length
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.xml.functions import tostring

from fieldnotes.models import FieldNote, NoteSection
from sessions.models import Attendance, CasePresentation, Consent, Meeting, Participant

from .models import CaseCoding, Category, Code, CodedSegment, CodingRound, Memo, Resolution

SEGMENT_COLUMNS = [
    "segment_id", "group", "session_number", "session_date", "case_order", "case_title", "presenter_pseudonym",
    "section_id", "section_kind", "note_author", "coder", "code", "category", "start", "end", "quote",
    "needs_review", "created_utc",
]
CASE_COLUMNS = [
    "case_id", "group", "session_number", "session_date", "case_order", "case_title", "presenter_pseudonym",
    "case_codes", "codes_from_segments", "codes_set_on_case", "segment_count", "case_code_segment_count",
]
SESSION_COLUMNS = [
    "group", "session_number", "session_date", "status", "duration_minutes", "attendance_count", "group_size",
    "cases_presented", "themes", "segment_count",
]
CODEBOOK_COLUMNS = [
    "code_id", "category", "category_unit", "code", "parent", "definition", "when_to_use", "when_not_to_use",
    "example", "colour", "retired", "segment_count",
]

CASE_UNIT = "case"
SESSION_UNIT = "session"
LIST_SEPARATOR = ";"

# A spreadsheet runs a cell starting with one of these as a formula (tab and
# CR too: some spreadsheets strip them and then see the "=" behind).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")

# Files and workbook properties carry this instead of the time of the run,
# so two runs on the same data are byte-identical (zip cannot go earlier).
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_DOC_TIME = datetime(1980, 1, 1, 0, 0, 0)
# Excel refuses longer cell text (counted in UTF-16 units); the CSV keeps all of it.
XLSX_CELL_LIMIT = 32_767
XLSX_TRUNCATED = " […cut: the full text is in the CSV file]"
XLSX_MAX_WIDTH = 60
XLSX_MIN_WIDTH = 8

FINGERPRINT_FORMAT = "balint-tidy-fingerprint/1"


# --- Small helpers -------------------------------------------------------------


def _local_date(moment: datetime, course) -> str:
    return timezone.localtime(moment, course.tz).date().isoformat()


def _utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _name_key(name: str) -> tuple[str, str]:
    # Case-insensitive, with the exact text as tie-break: stable under any collation.
    return (name.casefold(), name)


def _joined(names: Iterable[str]) -> str:
    return LIST_SEPARATOR.join(sorted(set(names), key=_name_key))


def _research_segments(course):
    return CodedSegment.objects.research(course)


def _eligible_sections(course):
    return NoteSection.objects.research_eligible().filter(note__meeting__group__course=course)


# --- The four tables -------------------------------------------------------------


def segments_rows(course) -> list[dict]:
    """One row per coded segment of the course's research data (1 query)."""
    fields = (
        "pk", "start", "end", "quote", "needs_review", "created_at", "section_id", "section__kind",
        "section__note__author__username", "section__note__meeting__number", "section__note__meeting__starts_at",
        "section__note__meeting__group__name", "section__note__meeting__group_id", "section__note__meeting_id",
        "section__case__order", "section__case__title", "section__case__presenter__pseudonym",
        "coder__username", "code__name", "code__category__name",
    )
    values = (
        _research_segments(course)
        .values(*fields)
        .order_by(
            "section__note__meeting__group__name", "section__note__meeting__group_id",
            "section__note__meeting__number", "section__kind", "section__case__order",
            "section__note__author__username", "section_id", "start", "end", "pk",
        )
    )
    rows = []
    for v in values:
        is_case = v["section__kind"] == NoteSection.Kind.CASE
        row = {
            "segment_id": v["pk"],
            "group": v["section__note__meeting__group__name"],
            "session_number": v["section__note__meeting__number"],
            "session_date": _local_date(v["section__note__meeting__starts_at"], course),
            "case_order": v["section__case__order"] if is_case else None,
            "case_title": v["section__case__title"] if is_case else None,
            "presenter_pseudonym": v["section__case__presenter__pseudonym"] if is_case else None,
            "section_id": v["section_id"],
            "section_kind": v["section__kind"],
            "note_author": v["section__note__author__username"],
            "coder": v["coder__username"],
            "code": v["code__name"],
            "category": v["code__category__name"],
            "start": v["start"],
            "end": v["end"],
            "quote": v["quote"],
            "needs_review": v["needs_review"],
            "created_utc": _utc(v["created_at"]),
        }
        sort_key = (
            _name_key(row["group"]), v["section__note__meeting__group_id"], row["session_number"],
            row["section_kind"], row["case_order"] or 0, row["note_author"], row["section_id"],
            row["start"], row["end"], row["segment_id"],
        )
        rows.append((sort_key, row))
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


def cases_rows(course) -> list[dict]:
    """One row per case presentation with research-eligible text (3 queries)."""
    eligible_cases = _eligible_sections(course).filter(case__isnull=False).values("case")
    cases = (
        CasePresentation.objects.filter(pk__in=eligible_cases)
        .values(
            "pk", "order", "title", "presenter__pseudonym", "meeting__number", "meeting__starts_at",
            "meeting__group__name", "meeting__group_id",
        )
        .order_by("meeting__group__name", "meeting__group_id", "meeting__number", "order", "pk")
    )
    from_segments: dict[int, set[str]] = defaultdict(set)
    segment_count: Counter = Counter()
    case_code_segment_count: Counter = Counter()
    segment_codes = (
        _research_segments(course)
        .filter(section__case__isnull=False)
        .values_list("section__case_id", "code__name", "code__category__unit")
        .order_by("section__case_id", "pk")
    )
    for case_id, code, unit in segment_codes:
        segment_count[case_id] += 1
        if unit == CASE_UNIT:
            case_code_segment_count[case_id] += 1
            from_segments[case_id].add(code)
    set_on_case: dict[int, set[str]] = defaultdict(set)
    direct = (
        CaseCoding.objects.filter(case__in=eligible_cases, code__category__unit=CASE_UNIT)
        .values_list("case_id", "code__name")
        .order_by("case_id", "code__name", "pk")
    )
    for case_id, code in direct:
        set_on_case[case_id].add(code)

    rows = []
    for c in cases:
        pk = c["pk"]
        row = {
            "case_id": pk,
            "group": c["meeting__group__name"],
            "session_number": c["meeting__number"],
            "session_date": _local_date(c["meeting__starts_at"], course),
            "case_order": c["order"],
            "case_title": c["title"],
            "presenter_pseudonym": c["presenter__pseudonym"],
            "case_codes": _joined(from_segments[pk] | set_on_case[pk]),
            "codes_from_segments": _joined(from_segments[pk]),
            "codes_set_on_case": _joined(set_on_case[pk]),
            "segment_count": segment_count[pk],
            "case_code_segment_count": case_code_segment_count[pk],
        }
        rows.append(((_name_key(row["group"]), c["meeting__group_id"], row["session_number"], row["case_order"],
                      pk), row))
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


def _count_of(queryset, field: str):
    """How many rows of `queryset` (correlated by `field`), as a subquery; 0 for none."""
    return Coalesce(
        Subquery(queryset.values(field).annotate(n=Count("pk")).values("n")[:1], output_field=IntegerField()),
        Value(0),
    )


def sessions_rows(course) -> list[dict]:
    """One row per session of the course, whatever its status (3 queries)."""
    meetings = (
        Meeting.objects.filter(group__course=course)
        .annotate(
            present=_count_of(Attendance.objects.filter(meeting=OuterRef("pk"), present=True).order_by(), "meeting"),
            recorded=_count_of(Attendance.objects.filter(meeting=OuterRef("pk")).order_by(), "meeting"),
            case_total=_count_of(CasePresentation.objects.filter(meeting=OuterRef("pk")).order_by(), "meeting"),
            group_size=_count_of(Participant.objects.filter(group=OuterRef("group")).order_by(), "group"),
        )
        .values(
            "pk", "number", "starts_at", "status", "duration_minutes", "group__name", "group_id",
            "present", "recorded", "case_total", "group_size",
        )
        .order_by("group__name", "group_id", "number", "pk")
    )
    themes: dict[int, set[str]] = defaultdict(set)
    segment_count: Counter = Counter()
    segment_codes = (
        _research_segments(course)
        .values_list("section__note__meeting_id", "code__name", "code__category__unit")
        .order_by("section__note__meeting_id", "pk")
    )
    for meeting_id, code, unit in segment_codes:
        segment_count[meeting_id] += 1
        if unit == SESSION_UNIT:
            themes[meeting_id].add(code)
    eligible_cases = _eligible_sections(course).filter(case__isnull=False).values("case")
    direct = (
        CaseCoding.objects.filter(case__in=eligible_cases, code__category__unit=SESSION_UNIT)
        .values_list("case__meeting_id", "code__name")
        .order_by("case__meeting_id", "code__name", "pk")
    )
    for meeting_id, code in direct:
        themes[meeting_id].add(code)

    rows = []
    for m in meetings:
        pk = m["pk"]
        row = {
            "group": m["group__name"],
            "session_number": m["number"],
            "session_date": _local_date(m["starts_at"], course),
            "status": m["status"],
            "duration_minutes": m["duration_minutes"],
            "attendance_count": m["present"] if m["recorded"] else None,
            "group_size": m["group_size"],
            "cases_presented": m["case_total"],
            "themes": _joined(themes[pk]),
            "segment_count": segment_count[pk],
        }
        rows.append(((_name_key(row["group"]), m["group_id"], row["session_number"], pk), row))
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


def codebook_rows(course) -> list[dict]:
    """One row per code of the course, retired ones too (2 queries)."""
    codes = (
        Code.objects.filter(course=course)
        .values(
            "pk", "name", "parent__name", "definition", "when_to_use", "when_not_to_use", "example", "colour",
            "retired_at", "category_id", "category__name", "category__order", "category__unit",
        )
        .order_by("category__order", "category__name", "category_id", "name", "pk")
    )
    counts = dict(
        _research_segments(course).values("code_id").annotate(n=Count("pk")).values_list("code_id", "n")
        .order_by("code_id")
    )
    rows = []
    for c in codes:
        row = {
            "code_id": c["pk"],
            "category": c["category__name"],
            "category_unit": c["category__unit"],
            "code": c["name"],
            "parent": c["parent__name"],
            "definition": c["definition"],
            "when_to_use": c["when_to_use"],
            "when_not_to_use": c["when_not_to_use"],
            "example": c["example"],
            "colour": c["colour"],
            "retired": c["retired_at"] is not None,
            "segment_count": counts.get(c["pk"], 0),
        }
        rows.append(((c["category__order"], _name_key(row["category"]), c["category_id"], _name_key(row["code"]),
                      row["code_id"]), row))
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


# (file stem and sheet name, columns, rows), in the order files and sheets appear.
TABLES = [
    ("segments", SEGMENT_COLUMNS, segments_rows),
    ("cases", CASE_COLUMNS, cases_rows),
    ("sessions", SESSION_COLUMNS, sessions_rows),
    ("codebook", CODEBOOK_COLUMNS, codebook_rows),
]


def _tables(course) -> list[tuple[str, list[str], list[dict]]]:
    return [(name, columns, build(course)) for name, columns, build in TABLES]


# --- CSV -------------------------------------------------------------------------


def neutralise(text: str) -> str:
    """Text a spreadsheet would run as a formula, made inert with a leading '."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return neutralise(str(value))


def to_csv(rows: list[dict], columns: list[str]) -> bytes:
    """RFC 4180 CSV (CRLF rows, quotes where needed), UTF-8 with a BOM so
    Excel reads it as UTF-8; text cells that would run as a formula start
    with a '. Numbers are written bare, booleans as true/false, None empty."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([neutralise(c) for c in columns])
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def export_csv_files(course) -> dict[str, bytes]:
    return {f"{name}.csv": to_csv(rows, columns) for name, columns, rows in _tables(course)}


# --- XLSX ------------------------------------------------------------------------


def _xlsx_text(text: str) -> str:
    text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)
    if len(text.encode("utf-16-le")) // 2 > XLSX_CELL_LIMIT:
        keep = XLSX_CELL_LIMIT - len(XLSX_TRUNCATED)
        while len(text[:keep].encode("utf-16-le")) // 2 > keep:
            keep -= 1
        text = text[:keep] + XLSX_TRUNCATED
    return text


def _set_cell(cell, value) -> None:
    if value is None:
        return
    if isinstance(value, str):
        cell.value = _xlsx_text(value)
        # openpyxl takes text starting with "=" for a formula; a string it stays.
        cell.data_type = "s"
    else:
        cell.value = value


def _display_width(value) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return 5
    text = str(value)
    return max((len(line) for line in text.split("\n")), default=0)


def _normalise_zip(data: bytes, core_xml: bytes) -> bytes:
    """Rewrite openpyxl's zip with fixed timestamps and fixed document properties."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = core_xml if info.filename == "docProps/core.xml" else source.read(info.filename)
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o600 << 16
            fixed.create_system = 0
            target.writestr(fixed, content)
    return out.getvalue()


def export_xlsx(course) -> bytes:
    """One sheet per table, header bold and frozen, columns sized to their text.
    The same data gives the same bytes: zip times and the workbook's
    created/modified properties are fixed, not the time of the run."""
    wb = Workbook()
    wb.remove(wb.active)
    bold = Font(bold=True)
    for name, columns, rows in _tables(course):
        ws = wb.create_sheet(title=name)
        widths = [len(column) for column in columns]
        for col, column in enumerate(columns, start=1):
            cell = ws.cell(row=1, column=col)
            _set_cell(cell, column)
            cell.font = bold
        for r, row in enumerate(rows, start=2):
            for col, column in enumerate(columns, start=1):
                value = row.get(column)
                _set_cell(ws.cell(row=r, column=col), value)
                widths[col - 1] = max(widths[col - 1], _display_width(value))
        for col, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(col)].width = max(XLSX_MIN_WIDTH, min(XLSX_MAX_WIDTH, width + 2))
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(1, len(rows) + 1)}"
    props = wb.properties
    props.creator = "Balint groups"
    props.lastModifiedBy = None
    props.created = FIXED_DOC_TIME
    props.modified = FIXED_DOC_TIME
    buffer = io.BytesIO()
    wb.save(buffer)  # stamps `modified` with now; _normalise_zip puts the fixed one back
    props.modified = FIXED_DOC_TIME
    return _normalise_zip(buffer.getvalue(), tostring(props.to_tree()))


# --- Fingerprint -------------------------------------------------------------------


def _consent_summary(course) -> dict:
    """Every consent event (by pseudonym) and the count of participants by
    their latest recorded decision ("none" when they have no record)."""
    participants = list(
        Participant.objects.filter(course=course).values_list("pk", "pseudonym", "group_id").order_by("pk")
    )
    events = list(
        Consent.objects.filter(participant__course=course)
        .values_list("participant_id", "decision", "decided_at", "withdrawal_scope", "form_version", "pk")
        .order_by("participant_id", "decided_at", "pk")
    )
    latest = {}
    for participant_id, decision, *_ in events:  # ordered: the last one wins
        latest[participant_id] = decision
    counts = Counter(latest.get(pk, "none") for pk, _, _ in participants)
    pseudonym = {pk: name for pk, name, _ in participants}
    return {
        "participants": [[name, group_id] for _, name, group_id in participants],
        "events": [
            [pseudonym.get(p), decision, _utc(at), scope, version, pk]
            for p, decision, at, scope, version, pk in events
        ],
        "counts": dict(sorted(counts.items())),
    }


def _fingerprint_data(course) -> dict:
    eligible = _eligible_sections(course)
    sections = [
        list(row) for row in eligible.values_list(
            "pk", "revision", "kind", "case_id", "note__meeting_id", "note__author__username", "text"
        ).order_by("pk")
    ]
    excluded = (
        NoteSection.objects.filter(note__meeting__group__course=course, note__status=FieldNote.Status.SUBMITTED)
        .exclude(pk__in=eligible.values("pk"))
        .aggregate(sections=Count("pk"), chars=Coalesce(Sum(Length("text")), 0))
    )
    attendance = [
        list(row) for row in Attendance.objects.filter(meeting__group__course=course)
        .values_list("meeting_id", "participant__pseudonym", "present").order_by("meeting_id", "participant_id")
    ]
    categories = [
        list(row) for row in Category.objects.filter(course=course)
        .values_list("pk", "name", "description", "order", "unit").order_by("pk")
    ]
    memos = [
        list(row) for row in Memo.objects.filter(course=course)
        .values_list("pk", "author__username", "title", "text", "code_id", "segment_id", "section_id", "case_id",
                     "round_id").order_by("pk")
    ]
    rounds = [
        [pk, name, status, _utc(closed)] for pk, name, status, closed in CodingRound.objects.filter(course=course)
        .values_list("pk", "name", "status", "closed_at").order_by("pk")
    ]
    round_segments = [
        list(row) for row in CodedSegment.objects.filter(round__course=course)
        .values_list("pk", "round_id", "section_id", "code_id", "coder__username", "start", "end").order_by("pk")
    ]
    resolutions = [
        list(row) for row in Resolution.objects.filter(round__course=course)
        .values_list("pk", "round_id", "section_id", "code_id", "kept_coder__username", "why").order_by("pk")
    ]
    return {
        "format": FINGERPRINT_FORMAT,
        "course": [course.pk, course.name, course.institution, course.time_zone,
                   course.starts_on.isoformat() if course.starts_on else None,
                   course.ends_on.isoformat() if course.ends_on else None],
        "tables": {name: [[row[c] for c in columns] for row in rows] for name, columns, rows in _tables(course)},
        "eligible_sections": sections,
        "excluded_text": [excluded["sections"], excluded["chars"]],
        "consent": _consent_summary(course),
        "attendance": attendance,
        "categories": categories,
        "memos": memos,
        "rounds": rounds,
        "round_segments": round_segments,
        "resolutions": resolutions,
    }


def fingerprint(course) -> str:
    """sha256 of a canonical JSON of everything the report reads: the four
    tables, the eligible section texts, consent events and counts, the
    amount of excluded text, attendance, categories, memos and double-coding
    rounds. Same data, same hash; any change to any of it, another hash."""
    canonical = json.dumps(
        _fingerprint_data(course), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
