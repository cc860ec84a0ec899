"""The segment search's result rows as HTML, built in Python rather than
in a template included once per row: 25 rows of nine fields and two links
were most of the page's rendering time. Every value is escaped with
`html.escape` (what Django's `escape` calls), or is an int.
"""

from __future__ import annotations

from datetime import tzinfo
from html import escape

from django.utils import dateformat, timezone
from django.utils.safestring import SafeString, mark_safe

from balint.reversing import url_for

from .queries import SegmentHit

_REVIEW = ('<span class="badge text-bg-warning" title="The note was amended and this segment could not be '
           're-anchored: its stored quote is shown.">needs review</span>')


def segment_hits_html(rows: list[SegmentHit], tz: tzinfo) -> SafeString:
    """The `<li>`s of one page of results; dates are the session's, in the course's time zone."""
    out = []
    for s in rows:
        day = dateformat.format(timezone.localtime(s.starts_at, tz), "j M Y")
        coding_page = escape(url_for("analysis:coding_page", s.section_id))
        case_link = ""
        if s.case_id:
            case_link = f' · <a href="{escape(url_for("analysis:case_analysis", s.case_id))}">Case page</a>'
        out.append(
            f'<li class="segment-hit" id="segment-{int(s.pk)}">\n'
            f'  <div class="d-flex flex-wrap column-gap-3 row-gap-1 align-items-baseline small mb-1">\n'
            f'    <span class="code-tag code-{int(s.code_id)} fw-semibold"><span class="code-swatch" '
            f'aria-hidden="true"></span> {escape(s.code_name)}</span>\n'
            f'    <span>{escape(s.group_name)} · session {int(s.meeting_number)} · {escape(day)}</span>\n'
            f'    <span>{escape(s.section_label)}</span>\n'
            f'    <span class="text-body-secondary">note by {escape(s.author)} · coded by {escape(s.coder)}</span>\n'
            f'    {_REVIEW if s.needs_review else ""}\n'
            f'  </div>\n'
            f'  <blockquote class="segment-context mb-1">{"…" if s.cut_before else ""}{escape(s.before)}'
            f'<mark class="code-mark code-{int(s.code_id)}">{escape(s.marked)}</mark>{escape(s.after)}'
            f'{"…" if s.cut_after else ""}</blockquote>\n'
            f'  <div class="small">\n'
            f'    <a href="{coding_page}#segment-{int(s.pk)}">Open in coding page</a>\n'
            f'    {case_link}\n'
            f'  </div>\n'
            f'</li>\n'
        )
    return mark_safe("".join(out))  # every value above is escaped, or an int
