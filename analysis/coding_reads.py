"""The coding page's three reads, in SQL written out.

The coding page is the page researchers open most, and its database work is
small: one section, its segments, the course's codebook. Building those three
queries with the ORM cost three times what the database spent answering them
(`bench/coding_page.py`: ≈ 4 ms of Python per page against ≈ 1.5 ms in
PostgreSQL), so here they are written once, by hand, and their rows read as
tuples.

The scoping is the same as `analysis.access`, and must stay so:
- a section is read only if it is research data (`research_ok`, the stored
  decision `NoteSection.objects.research_eligible()` filters on) and its
  course is one the user researches (the caller passes those course ids);
- segments follow `access.visible_segments`: outside a round, the shared
  coding (no round); in an open round, only the user's own segments of it;
  in a closed round, every coder's of it.
`analysis/tests/test_coding_reads.py` holds these functions to the ORM
versions on the same data.

Written for both PostgreSQL and SQLite, with the helpers of `balint.rawsql`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from balint.rawsql import Prepared, db_datetime
from fieldnotes.models import NoteSection

from .models import CodingRound

QUOTE_EXCERPT = 90


@dataclass(frozen=True, slots=True)
class CodingSection:
    """A research section and what the coding page heads it with."""

    pk: int
    text: str
    kind: str
    case_id: int | None
    course_id: int
    course_name: str
    time_zone: str
    group_name: str
    meeting_number: int
    starts_at: datetime
    author: str  # full name, or the user name when there is none
    label: str  # "Case 2: <title> (S3)", "Group discussion" or "Other observations"


@dataclass(slots=True)
class SegmentView:
    """A segment as the coding page and its script show it."""

    pk: int
    code_id: int
    code_name: str
    start: int
    end: int
    quote: str
    coder: str
    needs_review: bool
    round_id: int | None

    @classmethod
    def of(cls, segment) -> SegmentView:
        """The same for a CodedSegment instance (with its code and coder loaded)."""
        return cls(segment.pk, segment.code_id, segment.code.name, segment.start, segment.end, segment.quote,
                   segment.coder.get_full_name() or segment.coder.get_username(), segment.needs_review,
                   segment.round_id)

    @property
    def excerpt(self) -> str:
        return self.quote if len(self.quote) <= QUOTE_EXCERPT else self.quote[:QUOTE_EXCERPT - 1] + "…"


@dataclass(frozen=True, slots=True)
class CodebookEntry:
    pk: int
    name: str
    shortcut: str
    definition: str
    category: str


# The author's name and the case's label come from scalar subqueries rather
# than joins: PostgreSQL plans a five-table join in about half the time of
# the eight-table one. It is prepared (planned once per connection), so the
# user's courses are checked on the row rather than in the SQL: an IN list of
# varying length would be a different statement.
SECTION = Prepared("coding_section", """
SELECT s.id, s.text, s.kind, s.case_id, g.course_id, c.name, c.time_zone, g.name, m.number, m.starts_at,
       (SELECT coalesce(nullif(trim(u.first_name || ' ' || u.last_name), ''), u.username)
          FROM auth_user u WHERE u.id = n.author_id),
       (SELECT 'Case ' || cp."order" || ': ' || cp.title || ' (' || p.pseudonym || ')'
          FROM balint_sessions_casepresentation cp JOIN balint_sessions_participant p ON p.id = cp.presenter_id
         WHERE cp.id = s.case_id)
  FROM fieldnotes_notesection s
  JOIN fieldnotes_fieldnote n ON n.id = s.note_id
  JOIN balint_sessions_meeting m ON m.id = n.meeting_id
  JOIN balint_sessions_group g ON g.id = m.group_id
  JOIN balint_sessions_course c ON c.id = g.course_id
 WHERE s.id = %s AND s.research_ok
""")

SEGMENTS_SQL = """
SELECT g.id, g.code_id, c.name, g.start, g."end", g.quote, u.first_name, u.last_name, u.username,
       g.needs_review, g.round_id
  FROM analysis_codedsegment g
  JOIN analysis_code c ON c.id = g.code_id
  JOIN auth_user u ON u.id = g.coder_id
 WHERE g.section_id = %s AND {round}
 ORDER BY g.start, g."end", g.id
"""
# By round, the three cases of `access.visible_segments`.
SEGMENTS_SHARED = Prepared("coding_segments_shared", SEGMENTS_SQL.format(round="g.round_id IS NULL"))
SEGMENTS_OWN = Prepared("coding_segments_own", SEGMENTS_SQL.format(round="g.round_id = %s AND g.coder_id = %s"))
SEGMENTS_ROUND = Prepared("coding_segments_round", SEGMENTS_SQL.format(round="g.round_id = %s"))

CODEBOOK = Prepared("coding_codebook", """
SELECT c.id, c.name, c.shortcut, c.definition, k.name
  FROM analysis_code c
  JOIN analysis_category k ON k.id = c.category_id
 WHERE c.course_id = %s AND c.retired_at IS NULL
 ORDER BY k."order", k.name, c.name
""")


def person(first: str, last: str, username: str) -> str:
    """User.get_full_name() or the user name, without loading the user."""
    return f"{first} {last}".strip() or username


def label_of(kind: str, case_order: int | None, case_title: str | None, presenter: str | None) -> str:
    """A section's label from its row, as `views.coding.section_label` makes it from the objects."""
    if kind == NoteSection.Kind.CASE:
        return f"Case {case_order}: {case_title} ({presenter})"
    return str(NoteSection.Kind(kind).label)


def coding_section(pk: int, course_ids) -> CodingSection | None:
    """The section if it is research data of one of `course_ids`, else None."""
    rows = SECTION.rows([pk])
    if not rows or rows[0][4] not in course_ids:
        return None
    (pk, text, kind, case_id, course_id, course_name, time_zone, group_name, number, starts_at, author,
     case_label) = rows[0]
    label = case_label if kind == NoteSection.Kind.CASE else str(NoteSection.Kind(kind).label)
    return CodingSection(pk, text, kind, case_id, course_id, course_name, time_zone, group_name, number,
                         db_datetime(starts_at), author, label)


def section_segments(section_id: int, coding_round: CodingRound | None, user) -> list[SegmentView]:
    """The section's segments the user may see (as `access.visible_segments`), in text order."""
    if coding_round is None:
        rows = SEGMENTS_SHARED.rows([section_id])
    elif coding_round.is_open:
        rows = SEGMENTS_OWN.rows([section_id, coding_round.pk, user.pk])
    else:
        rows = SEGMENTS_ROUND.rows([section_id, coding_round.pk])
    return [
        SegmentView(pk, code_id, code_name, start, end, quote, person(first, last, username), bool(review), round_id)
        for pk, code_id, code_name, start, end, quote, first, last, username, review, round_id in rows
    ]


def active_codebook(course_id: int) -> list[CodebookEntry]:
    """The course's codes offered for coding (not retired), by category order, category, name."""
    return [CodebookEntry(*row) for row in CODEBOOK.rows([course_id])]
