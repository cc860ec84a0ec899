"""Tidy data of one course: the tables behind the report, as CSV and XLSX.

Four tables, each a list of tuples in a fixed column order (the `*_rows`
functions give the same rows as dicts by column name, for reading):

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
Every table has an explicit order. The database orders rows by ids and
numbers only; text is compared in Python, by code point (as COLLATE "C"
would), except group, category and code names, which sort case-insensitively
first (`_name_key`); so two runs on the same data give the same bytes
whatever the database's collation. Nothing here writes the time of the run.

Every table reads research data through the stored eligibility decision
(`NoteSection.research_ok`): segments of eligible sections, and cases with
an eligible section.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timezone as dt_timezone, tzinfo
from operator import itemgetter

from django.db.models import Count, Sum
from django.db.models.functions import Coalesce, Length
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.xml.functions import tostring

from balint.rawsql import db_datetime, fetch_rows
from fieldnotes.models import FieldNote, NoteSection
from sessions.models import Attendance, Consent, Participant

from .models import Category, CodedSegment, CodingRound, Memo, Resolution

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


def _local_date(moment: datetime, tz: tzinfo) -> str:
    return timezone.localtime(moment, tz).date().isoformat()


def _utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = moment.astimezone(dt_timezone.utc)
    # What strftime("%Y-%m-%dT%H:%M:%S.%fZ") writes, a few times faster: the
    # segments table writes one a row.
    return "%d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond
    )


def _name_key(name: str) -> tuple[str, str]:
    # Case-insensitive, with the exact text as tie-break: stable under any collation.
    return (name.casefold(), name)


def _joined(names: Iterable[str]) -> str:
    return LIST_SEPARATOR.join(sorted(set(names), key=_name_key))


def _eligible_sections(course):
    return NoteSection.objects.research_eligible().filter(note__meeting__group__course=course)


def _in_group_name_order(table: list[tuple], runs: list[tuple[tuple, int]]) -> list[tuple]:
    """The table's rows with whole groups put in name order.

    The rows come ordered by group id first, then by the rest of the table's
    order; group names sort case-insensitively (`_name_key`), which no
    database collation does the same way everywhere, so the groups' runs of
    rows move here, whole. `runs` holds (sort key, index of the first row) of
    each run in table order; the sort key is (`_name_key(name)`, group id).
    The result is what sorting every row by (name key, group id, the rest)
    gives."""
    if all(runs[i][0] < runs[i + 1][0] for i in range(len(runs) - 1)):
        return table
    ends = [start for _, start in runs[1:]] + [len(table)]
    out: list[tuple] = []
    for (_, start), end in sorted(zip(runs, ends)):
        out.extend(table[start:end])
    return out


# --- The four tables -------------------------------------------------------------


def _segment_counts(course) -> dict[tuple, int]:
    """How many research segments there are of each code in each session and
    case, by (meeting id, case id or None, code id, code, category unit):
    what the cases, sessions and codebook count (1 query)."""
    rows = (
        CodedSegment.objects.research(course)
        .values_list("section__note__meeting_id", "section__case_id", "code_id", "code__name", "code__category__unit")
        .annotate(n=Count("pk"))
        .order_by()  # only added up
    )
    return {row[:-1]: row[-1] for row in rows}


def _segments_and_counts(course) -> tuple[list[tuple], dict[tuple, int]]:
    """The segments table, and `_segment_counts` counted from the same rows (1 query)."""
    rows = (
        CodedSegment.objects.research(course)
        .values_list(
            # the table's order
            "section__note__meeting__group_id", "section__note__meeting__number", "section__kind",
            "section__case__order", "section__note__author__username", "section_id", "start", "end", "pk",
            # what `_segment_counts` counts by
            "section__note__meeting_id", "section__case_id", "code_id", "code__name", "code__category__unit",
            "section__note__meeting__starts_at", "section__note__meeting__group__name", "section__case__title",
            "section__case__presenter__pseudonym", "coder__username", "code__category__name", "quote",
            "needs_review", "created_at",
        )
        .order_by()
    )
    # Sorted here rather than by the database, which sorted the whole rows,
    # quotes and all, in a good quarter of the query's time. Python compares
    # strings by code point, as COLLATE "C" does. Only a case section has a
    # case (a constraint of NoteSection), so the case columns are blank, and
    # the case order ties (None with None), everywhere else.
    rows = sorted(rows, key=itemgetter(slice(9)))
    counts = Counter(map(itemgetter(slice(9, 14)), rows))
    tz = course.tz
    table: list[tuple] = []
    runs: list[tuple[tuple, int]] = []
    group_now = None
    dates: dict[int, str] = {}  # meeting id -> its local date
    for (group_id, number, kind, case_order, author, section_id, start, end, pk, meeting_id, _, _, code, _, starts_at,
         group, case_title, presenter, coder, category, quote, needs_review, created_at) in rows:
        if group_id != group_now:
            group_now = group_id
            runs.append(((_name_key(group), group_id), len(table)))
        day = dates.get(meeting_id)
        if day is None:
            day = dates[meeting_id] = _local_date(starts_at, tz)
        table.append((pk, group, number, day, case_order, case_title, presenter, section_id, kind, author, coder,
                      code, category, start, end, quote, needs_review, _utc(created_at)))
    return _in_group_name_order(table, runs), counts


def segment_table(course) -> list[tuple]:
    """One row per coded segment of the course's research data, in
    SEGMENT_COLUMNS order (1 query)."""
    return _segments_and_counts(course)[0]


# The cases, sessions and codebook read a few hundred rows each, and the ORM
# took longer to build their queries than the database took to answer them
# (≈ 9 against 6 ms at 300 notes), so they are written out here. For
# PostgreSQL and SQLite alike: reserved words quoted, timestamps read by
# `balint.rawsql.db_datetime`. A case is research data if it has an eligible section
# (`research_ok`, the stored decision `NoteSection.objects.research_eligible()`
# filters on).
RESEARCH_CASES_SQL = """
SELECT s.case_id
  FROM fieldnotes_notesection s
  JOIN fieldnotes_fieldnote n ON n.id = s.note_id
  JOIN balint_sessions_meeting m ON m.id = n.meeting_id
  JOIN balint_sessions_group gr ON gr.id = m.group_id
 WHERE s.research_ok AND s.case_id IS NOT NULL AND gr.course_id = %s
"""

CASES_SQL = f"""
SELECT m.group_id, k.id, gr.name, m.number, m.starts_at, k."order", k.title, p.pseudonym
  FROM balint_sessions_casepresentation k
  JOIN balint_sessions_meeting m ON m.id = k.meeting_id
  JOIN balint_sessions_group gr ON gr.id = m.group_id
  JOIN balint_sessions_participant p ON p.id = k.presenter_id
 WHERE k.id IN ({RESEARCH_CASES_SQL})
 ORDER BY m.group_id, m.number, k."order", k.id
"""

# The codes of one category unit set on research cases: (case id, its meeting id, code).
CASE_CODINGS_SQL = f"""
SELECT cc.case_id, k.meeting_id, c.name
  FROM analysis_casecoding cc
  JOIN balint_sessions_casepresentation k ON k.id = cc.case_id
  JOIN analysis_code c ON c.id = cc.code_id
  JOIN analysis_category cat ON cat.id = c.category_id
 WHERE cat.unit = %s AND cc.case_id IN ({RESEARCH_CASES_SQL})
"""

# Group sizes joined from a grouped count: as a subquery of each session,
# PostgreSQL scanned all the participants once a session.
SESSIONS_SQL = """
SELECT m.group_id, m.id, gr.name, m.number, m.starts_at, m.status, m.duration_minutes,
       (SELECT count(*) FROM balint_sessions_attendance a WHERE a.meeting_id = m.id AND a.present),
       (SELECT count(*) FROM balint_sessions_attendance a WHERE a.meeting_id = m.id),
       (SELECT count(*) FROM balint_sessions_casepresentation k WHERE k.meeting_id = m.id),
       coalesce(sizes.n, 0)
  FROM balint_sessions_meeting m
  JOIN balint_sessions_group gr ON gr.id = m.group_id
  LEFT JOIN (SELECT p.group_id, count(*) AS n
               FROM balint_sessions_participant p
               JOIN balint_sessions_group pg ON pg.id = p.group_id
              WHERE pg.course_id = %s
              GROUP BY p.group_id) sizes ON sizes.group_id = m.group_id
 WHERE gr.course_id = %s
 ORDER BY m.group_id, m.number, m.id
"""

CODES_SQL = """
SELECT c.id, cat.name, cat.unit, c.name, parent.name, c.definition, c.when_to_use, c.when_not_to_use, c.example,
       c.colour, c.retired_at, cat."order", c.category_id
  FROM analysis_code c
  JOIN analysis_category cat ON cat.id = c.category_id
  LEFT JOIN analysis_code parent ON parent.id = c.parent_id
 WHERE c.course_id = %s
"""


def case_table(course, counts: dict[tuple, int] | None = None) -> list[tuple]:
    """One row per case presentation with research-eligible text, in
    CASE_COLUMNS order (3 queries; 2 given the `_segment_counts`)."""
    if counts is None:
        counts = _segment_counts(course)
    from_segments: dict[int, set[str]] = defaultdict(set)
    segment_count: Counter = Counter()
    case_code_segment_count: Counter = Counter()
    for (_, case_id, _, code, unit), n in counts.items():
        if case_id is None:
            continue
        segment_count[case_id] += n
        if unit == CASE_UNIT:
            case_code_segment_count[case_id] += n
            from_segments[case_id].add(code)
    set_on_case: dict[int, set[str]] = defaultdict(set)
    for case_id, _, code in fetch_rows(CASE_CODINGS_SQL, [CASE_UNIT, course.pk]):
        set_on_case[case_id].add(code)

    tz = course.tz
    table: list[tuple] = []
    runs: list[tuple[tuple, int]] = []
    group_now = None
    for group_id, pk, group, number, starts_at, order, title, presenter in fetch_rows(CASES_SQL, [course.pk]):
        if group_id != group_now:
            group_now = group_id
            runs.append(((_name_key(group), group_id), len(table)))
        table.append((
            pk, group, number, _local_date(db_datetime(starts_at), tz), order, title, presenter,
            _joined(from_segments[pk] | set_on_case[pk]), _joined(from_segments[pk]), _joined(set_on_case[pk]),
            segment_count[pk], case_code_segment_count[pk],
        ))
    return _in_group_name_order(table, runs)


def session_table(course, counts: dict[tuple, int] | None = None) -> list[tuple]:
    """One row per session of the course, whatever its status, in
    SESSION_COLUMNS order (3 queries; 2 given the `_segment_counts`)."""
    if counts is None:
        counts = _segment_counts(course)
    themes: dict[int, set[str]] = defaultdict(set)
    segment_count: Counter = Counter()
    for (meeting_id, _, _, code, unit), n in counts.items():
        segment_count[meeting_id] += n
        if unit == SESSION_UNIT:
            themes[meeting_id].add(code)
    for _, meeting_id, code in fetch_rows(CASE_CODINGS_SQL, [SESSION_UNIT, course.pk]):
        themes[meeting_id].add(code)

    tz = course.tz
    table: list[tuple] = []
    runs: list[tuple[tuple, int]] = []
    group_now = None
    for (group_id, pk, group, number, starts_at, status, duration, present, recorded, case_total,
         group_size) in fetch_rows(SESSIONS_SQL, [course.pk, course.pk]):
        if group_id != group_now:
            group_now = group_id
            runs.append(((_name_key(group), group_id), len(table)))
        table.append((
            group, number, _local_date(db_datetime(starts_at), tz), status, duration,
            present if recorded else None, group_size, case_total, _joined(themes[pk]), segment_count[pk],
        ))
    return _in_group_name_order(table, runs)


def codebook_table(course, counts: dict[tuple, int] | None = None) -> list[tuple]:
    """One row per code of the course, retired ones too, in CODEBOOK_COLUMNS
    order (2 queries; 1 given the `_segment_counts`)."""
    if counts is None:
        counts = _segment_counts(course)
    segment_count: Counter = Counter()
    for (_, _, code_id, _, _), n in counts.items():
        segment_count[code_id] += n
    # A few dozen codes: sorted here, names case-insensitively.
    rows = []
    for (pk, category, unit, name, parent, definition, when_to_use, when_not_to_use, example, colour, retired_at,
         category_order, category_id) in fetch_rows(CODES_SQL, [course.pk]):
        rows.append((
            (category_order, _name_key(category), category_id, _name_key(name), pk),
            (pk, category, unit, name, parent, definition, when_to_use, when_not_to_use, example, colour,
             retired_at is not None, segment_count[pk]),
        ))
    return [row for _, row in sorted(rows, key=itemgetter(0))]


# (file stem and sheet name, columns, table(course)), in the order files and
# sheets appear (`_tables` builds them all, in the same order).
TABLES = [
    ("segments", SEGMENT_COLUMNS, segment_table),
    ("cases", CASE_COLUMNS, case_table),
    ("sessions", SESSION_COLUMNS, session_table),
    ("codebook", CODEBOOK_COLUMNS, codebook_table),
]


def _tables(course) -> Iterator[tuple[str, list[str], list[tuple]]]:
    """(name, columns, table) of each of TABLES, in order: the other three
    count the segments read for the segments table rather than reading them
    again (6 queries, 3 less than calling each)."""
    segments, counts = _segments_and_counts(course)
    yield "segments", SEGMENT_COLUMNS, segments
    del segments  # so the caller can let go of it before the next table
    yield "cases", CASE_COLUMNS, case_table(course, counts)
    yield "sessions", SESSION_COLUMNS, session_table(course, counts)
    yield "codebook", CODEBOOK_COLUMNS, codebook_table(course, counts)


def _as_dicts(columns: list[str], table: list[tuple]) -> list[dict]:
    return [dict(zip(columns, row)) for row in table]


def segments_rows(course) -> list[dict]:
    """The segments table as dicts by column name (1 query)."""
    return _as_dicts(SEGMENT_COLUMNS, segment_table(course))


def cases_rows(course) -> list[dict]:
    """The cases table as dicts by column name (3 queries)."""
    return _as_dicts(CASE_COLUMNS, case_table(course))


def sessions_rows(course) -> list[dict]:
    """The sessions table as dicts by column name (3 queries)."""
    return _as_dicts(SESSION_COLUMNS, session_table(course))


def codebook_rows(course) -> list[dict]:
    """The codebook table as dicts by column name (2 queries)."""
    return _as_dicts(CODEBOOK_COLUMNS, codebook_table(course))


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


_CSV_NATIVE = frozenset({int, type(None)})  # what the csv module writes as _csv_cell would
_CSV_TEXT = frozenset({str, type(None)})
_FORMULA_FIRST = frozenset(FORMULA_STARTS)  # each one character


def _csv_column(values: tuple) -> Sequence:
    """One column's values as `_csv_cell` makes them, or as they are where
    the csv module writes them the same way by itself (None as nothing, a
    whole number as its digits, text that no spreadsheet would run). Checked
    a column at a time, so a plain column costs no Python per value."""
    kinds = set(map(type, values))
    if kinds <= _CSV_NATIVE:
        return values
    if kinds <= _CSV_TEXT and _FORMULA_FIRST.isdisjoint(map(itemgetter(0), filter(None, values))):
        return values
    return [_csv_cell(value) for value in values]


def to_csv(rows: Iterable[Sequence], columns: list[str]) -> bytes:
    """RFC 4180 CSV (CRLF rows, quotes where needed), UTF-8 with a BOM so
    Excel reads it as UTF-8; text cells that would run as a formula start
    with a '. Numbers are written bare, booleans as true/false, None empty.
    `rows` hold their values in the order of `columns`."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([neutralise(c) for c in columns])
    writer.writerows(zip(*map(_csv_column, zip(*rows))))
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def export_csv_files(course) -> dict[str, bytes]:
    return {f"{name}.csv": to_csv(table, columns) for name, columns, table in _tables(course)}


# --- XLSX ------------------------------------------------------------------------


def _xlsx_text(text: str) -> str:
    text = ILLEGAL_CHARACTERS_RE.sub("\ufffd", text)
    # At most two UTF-16 units a code point: only a long text can be too long.
    if 2 * len(text) > XLSX_CELL_LIMIT and len(text.encode("utf-16-le")) // 2 > XLSX_CELL_LIMIT:
        keep = XLSX_CELL_LIMIT - len(XLSX_TRUNCATED)
        while len(text[:keep].encode("utf-16-le")) // 2 > keep:
            keep -= 1
        text = text[:keep] + XLSX_TRUNCATED
    return text


def _xlsx_value(ws, value):
    """What to append to a write-only sheet for a value: numbers, booleans and
    None as they are; text made safe, and always a string: openpyxl takes
    text starting with "=" for a formula and "#N/A" and the like for errors,
    so those go in a cell whose type is set to string."""
    if type(value) is not str:
        return value
    text = _xlsx_text(value)
    if text.startswith("=") or text in ERROR_CODES:
        cell = WriteOnlyCell(ws, text)
        cell.data_type = "s"
        return cell
    return text


def _display_width(value) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return 5
    text = str(value)
    return max((len(line) for line in text.split("\n")), default=0)


def _column_widths(columns: list[str], table: list[tuple]) -> list[int]:
    """Each column's width: its longest line of text (the header's too), up to
    the widest a column is made (XLSX_MAX_WIDTH, with 2 of margin)."""
    enough = XLSX_MAX_WIDTH - 2
    widths = []
    for index, column in enumerate(columns):
        width = len(column)
        for value in map(itemgetter(index), table):
            if width >= enough:
                break
            width = max(width, _display_width(value))
        widths.append(width)
    return widths


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
    created/modified properties are fixed, not the time of the run.

    A write-only workbook: rows stream to the file as they are appended, with
    no object kept per cell; so each sheet's column widths, frozen header and
    filter are set before its first row."""
    wb = Workbook(write_only=True)
    bold = Font(bold=True)
    for name, columns, table in _tables(course):
        ws = wb.create_sheet(title=name)
        for col, width in enumerate(_column_widths(columns, table), start=1):
            ws.column_dimensions[get_column_letter(col)].width = max(XLSX_MIN_WIDTH, min(XLSX_MAX_WIDTH, width + 2))
        ws.freeze_panes = "A2"
        used = f"A1:{get_column_letter(len(columns))}{max(1, len(table) + 1)}"
        ws.auto_filter.ref = used
        # The sheet's <dimension> (optional; readers size the sheet by it), which
        # openpyxl writes only for a sheet it holds whole, asks for it this way.
        ws.calculate_dimension = lambda used=used: used
        header = []
        for column in columns:
            cell = WriteOnlyCell(ws, _xlsx_text(column))
            cell.data_type = "s"
            cell.font = bold
            header.append(cell)
        ws.append(header)
        for row in table:
            ws.append([_xlsx_value(ws, value) for value in row])
        del table
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
    """What the fingerprint hashes, by name. Most parts are functions that
    read them: `fingerprint` reads each part only when it hashes it, and
    lets go of it before the next (the eligible sections come first: the
    tables and the excluded text are counted from them). The four tables are
    one part, read together by `_tables` so the segments are read once; the
    segments table is most of that part anyway."""
    sections = [
        list(row) for row in _eligible_sections(course).values_list(
            "pk", "revision", "kind", "case_id", "note__meeting_id", "note__author__username", "text"
        ).order_by("pk")
    ]

    def excluded():
        counted = (
            NoteSection.objects.filter(note__meeting__group__course=course, note__status=FieldNote.Status.SUBMITTED)
            .filter(research_ok=False)
            .aggregate(sections=Count("pk"), chars=Coalesce(Sum(Length("text")), 0))
        )
        return [counted["sections"], counted["chars"]]

    def rows(queryset):
        return lambda: [list(row) for row in queryset]

    def rounds():
        return [
            [pk, name, status, _utc(closed)] for pk, name, status, closed in CodingRound.objects.filter(course=course)
            .values_list("pk", "name", "status", "closed_at").order_by("pk")
        ]

    return {
        "format": FINGERPRINT_FORMAT,
        "course": [course.pk, course.name, course.institution, course.time_zone,
                   course.starts_on.isoformat() if course.starts_on else None,
                   course.ends_on.isoformat() if course.ends_on else None],
        "tables": lambda: {name: table for name, _, table in _tables(course)},
        "eligible_sections": sections,
        "excluded_text": excluded,
        "consent": lambda: _consent_summary(course),
        "attendance": rows(
            Attendance.objects.filter(meeting__group__course=course)
            .values_list("meeting_id", "participant__pseudonym", "present").order_by("meeting_id", "participant_id")
        ),
        "categories": rows(
            Category.objects.filter(course=course)
            .values_list("pk", "name", "description", "order", "unit").order_by("pk")
        ),
        "memos": rows(
            Memo.objects.filter(course=course)
            .values_list("pk", "author__username", "title", "text", "code_id", "segment_id", "section_id", "case_id",
                         "round_id").order_by("pk")
        ),
        "rounds": rounds,
        "round_segments": rows(
            CodedSegment.objects.filter(round__course=course)
            .values_list("pk", "round_id", "section_id", "code_id", "coder__username", "start", "end").order_by("pk")
        ),
        "resolutions": rows(
            Resolution.objects.filter(round__course=course)
            .values_list("pk", "round_id", "section_id", "code_id", "kept_coder__username", "why").order_by("pk")
        ),
    }


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _hash_canonical(digest, value) -> None:
    """Feed `_canonical(value)` to `digest` (UTF-8), a dict item at a time:
    a function standing for a value is called when its turn comes, and its
    value let go once hashed, so the whole JSON never is in memory at once."""
    if not isinstance(value, dict):
        digest.update(_canonical(value).encode("utf-8"))
        return
    digest.update(b"{")
    for i, key in enumerate(sorted(value)):
        digest.update(("," if i else "").encode() + _canonical(key).encode("utf-8") + b":")
        item = value[key]
        _hash_canonical(digest, item() if callable(item) else item)
        del item
    digest.update(b"}")


def fingerprint(course) -> str:
    """sha256 of a canonical JSON of everything the report reads: the four
    tables, the eligible section texts, consent events and counts, the
    amount of excluded text, attendance, categories, memos and double-coding
    rounds. Same data, same hash; any change to any of it, another hash.
    (The JSON is hashed as it is made, part by part; it is the same text as
    `json.dumps(..., sort_keys=True, ensure_ascii=False, separators=(",", ":"))`
    of all the parts.)"""
    digest = hashlib.sha256()
    _hash_canonical(digest, _fingerprint_data(course))
    return digest.hexdigest()
