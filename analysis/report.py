"""The per-course report: one HTML document, and the same document as PDF.

`collect` (in `report_data`) reads the numbers; this module draws the charts,
renders `templates/analysis/report/report.html` and prints it with
WeasyPrint. The HTML is a downloaded file, not a page of the app, so it
carries its own stylesheet and its charts as data: URIs and works offline.

The background job calls `build_report`; `manage.py course_report` and the
tests call the same pieces.
"""

from __future__ import annotations

import base64
import logging
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from django.template.loader import render_to_string
from django.utils import timezone, translation

from sessions.models import Course

from . import charts
from .report_data import ParticipantRow, Ratio, ReportData, SessionRow, collect

__all__ = ["ReportData", "build_report", "collect", "render_html", "render_pdf"]


# Above these sizes a list would run to dozens of pages: the report summarises it.
SESSION_LIST_MAX = 60
PARTICIPANT_LIST_MAX = 60
PARTICIPANTS_PER_ROW = 4


@dataclass
class GroupAttendance:
    group: str
    sessions: int  # held sessions with attendance recorded
    attendance: Ratio
    lowest: SessionRow | None
    highest: SessionRow | None


def group_attendance(sessions: list[SessionRow]) -> list[GroupAttendance]:
    """Attendance per group over its held sessions, with its lowest and highest session."""
    by_group: dict[str, list[SessionRow]] = {}
    for row in sessions:
        if row.attendance is not None:
            by_group.setdefault(row.group, []).append(row)
    out = []
    for group, rows in by_group.items():
        def rate(row: SessionRow) -> Fraction:
            return Fraction(row.attendance.count, row.attendance.of)

        out.append(GroupAttendance(
            group, len(rows),
            Ratio(sum(r.attendance.count for r in rows), sum(r.attendance.of for r in rows)),
            # Of equal rates, the earliest session.
            min(rows, key=lambda r: (rate(r), r.number)), max(rows, key=lambda r: (rate(r), -r.number)),
        ))
    return sorted(out, key=lambda g: g.group)


def participant_grid(participants: list[ParticipantRow]) -> list[tuple[str, list[list[ParticipantRow]]]]:
    """Participants per group in rows of PARTICIPANTS_PER_ROW, for a compact table."""
    groups: dict[str, list[ParticipantRow]] = {}
    for p in participants:
        groups.setdefault(p.group, []).append(p)
    return [(group, [rows[i:i + PARTICIPANTS_PER_ROW] for i in range(0, len(rows), PARTICIPANTS_PER_ROW)])
            for group, rows in groups.items()]


@dataclass
class Chart:
    uri: str
    alt: str


@dataclass
class Chapter:
    anchor: str
    number: str
    title: str

    @property
    def heading(self) -> str:
        return f"{self.number} {self.title}" if self.number else self.title


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _joined(names: list[str]) -> str:
    names = [n.lower() if n[:1].isupper() and n[1:].islower() else n for n in names]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def draw_charts(data: ReportData) -> dict:
    """Every chart of the report as a data: URI with its alternative text."""
    out: dict = {"per_case": [], "per_session": [], "cooccurrence": []}
    for table in data.per_case:
        out["per_case"].append(Chart(_uri(charts.bar_chart(
            [r.code for r in table.rows], [("Cases", [r.units.count for r in table.rows], table.units)],
            unit="cases")),
            f"Bar chart: share of cases carrying each code of {table.category}."))
    for table in data.per_session:
        out["per_session"].append(Chart(_uri(charts.bar_chart(
            [r.code for r in table.rows],
            [("Sessions", [r.units.count for r in table.rows], table.units),
             ("Group discussions", [r.discussions.count for r in table.rows], table.discussions or 0)],
            unit="sessions or discussions")),
            f"Bar chart: share of sessions and of group discussions carrying each code of {table.category}."))
    for heatmap in data.cooccurrence:
        out["cooccurrence"].append(Chart(_uri(charts.heatmap(
            heatmap.rows, heatmap.columns, heatmap.cells, row_title=heatmap.row_category,
            column_title=heatmap.column_category)),
            f"Heat map: {heatmap.unit}s carrying both a code of {heatmap.row_category} and one of "
            f"{heatmap.column_category}, counts in the cells."))
    timeline = data.timeline
    out["timeline"] = None if timeline.empty else Chart(_uri(charts.timeline(
        timeline.sessions, timeline.codes, timeline.categories, timeline.segments, timeline.present)),
        "Chart: which codes appear in which session, sessions in time order.")
    out["saturation"] = None if not data.saturation else Chart(_uri(charts.saturation(
        [p.session for p in data.saturation], [p.cumulative for p in data.saturation],
        [len(p.new) for p in data.saturation])),
        "Line chart: distinct codes seen so far, by session in time order, with new codes per session as bars.")
    return out


def chapters(data: ReportData) -> list[Chapter]:
    case_names = _joined([t.category for t in data.per_case]) or "codes counted per case"
    session_names = _joined([t.category for t in data.per_session]) or "codes counted per session"
    out = [
        Chapter("overview", "1", "Course overview"),
        Chapter("consent", "2", "Consent and excluded text"),
        Chapter("per_case", "3", f"Per case: {case_names}"),
        Chapter("per_session", "4", f"Per session: {session_names}"),
        Chapter("cooccurrence", "5", "Co-occurrence"),
        Chapter("timeline", "6", "Codes across sessions and saturation"),
        Chapter("quotes", "7", "Exemplar quotes"),
        Chapter("agreement", "8", "Inter-coder agreement"),
        Chapter("methods", "", "Appendix A. Methods"),
        Chapter("codebook", "", "Appendix B. Codebook"),
    ]
    if data.memos is not None:
        out.append(Chapter("memos", "", "Appendix C. Memos"))
    return out


def _render(data: ReportData, figures: dict) -> str:
    generated = timezone.localtime(data.generated_at, zoneinfo.ZoneInfo(data.course.time_zone))
    toc = chapters(data)
    context = {
        "data": data,
        "charts": figures,
        "per_case": list(zip(data.per_case, figures["per_case"])),
        "per_session": list(zip(data.per_session, figures["per_session"])),
        "cooccurrence": list(zip(data.cooccurrence, figures["cooccurrence"])),
        "chapters": {c.anchor: c for c in toc},
        "toc": toc,
        "session_summary": (group_attendance(data.overview.sessions)
                            if len(data.overview.sessions) > SESSION_LIST_MAX else None),
        "participant_grid": (participant_grid(data.overview.participants)
                             if len(data.overview.participants) > PARTICIPANT_LIST_MAX else None),
        "grid_columns": range(PARTICIPANTS_PER_ROW),
        "grid_span": 2 * PARTICIPANTS_PER_ROW,
        "saturation_rows": [p for p in data.saturation if p.new],
        # "A = Group A" says nothing a reader would not guess.
        "group_key_obvious": all(name.lower() == f"group {short}".lower()
                                 for short, name in data.timeline.group_key),
        "generated": generated,
        "generated_iso": generated.isoformat(timespec="seconds"),
    }
    with translation.override("en-gb"):
        return render_to_string("analysis/report/report.html", context)


def render_html(data: ReportData) -> str:
    """The report as one self-contained HTML document (UTF-8 text)."""
    return _render(data, draw_charts(data))


def render_pdf(html: str) -> bytes:
    """The same document printed to PDF (A4) by WeasyPrint; title and date go into its metadata."""
    from weasyprint import HTML

    # WeasyPrint logs every page of every layout pass at INFO: a worker's log would drown in it.
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    return HTML(string=html, base_url=None).write_pdf()


def build_report(course: Course, *, include_memos: bool, progress: Callable[[int, str], None],
                 data_hash: str | None = None) -> dict[str, bytes]:
    """Collect, draw, render and print the course's report: {"report.html": ..., "report.pdf": ...}."""
    progress(0, "Reading the course's research data")
    data = collect(course, include_memos=include_memos, data_hash=data_hash)
    progress(35, "Drawing the charts")
    figures = draw_charts(data)
    progress(60, "Writing the HTML report")
    html = _render(data, figures)
    progress(70, "Printing the PDF")
    pdf = render_pdf(html)
    progress(100, "Done")
    return {"report.html": html.encode("utf-8"), "report.pdf": pdf}
