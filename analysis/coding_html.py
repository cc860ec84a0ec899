"""The coding page's text, segment list and code list as HTML, built in
Python rather than in template loops: a section has dozens of pieces and
segments, and the loops were most of the page's rendering time. Every value
is escaped by `format_html`, or is an int.

static/js/coding.js builds the same markup in the browser after each change
(`renderText`, `renderSegments`); the two must agree on class names and
attributes, which the coding tests and the browser tests check.
"""

from __future__ import annotations

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from .coding_reads import CodebookEntry, SegmentView


def text_pieces(text: str, segments) -> list[dict]:
    """The text cut at every segment boundary; each piece lists the segments
    covering it, so overlapping codings stay readable. static/js/coding.js
    does the same cut in the browser after each change."""
    bounds = sorted({0, len(text), *(s.start for s in segments), *(s.end for s in segments)})
    pieces = []
    for a, b in zip(bounds, bounds[1:]):
        if a >= b or b > len(text):
            continue
        covering = [s for s in segments if s.start <= a and s.end >= b]
        pieces.append({"text": text[a:b], "segments": covering, "codes": _unique_codes(covering)})
    return pieces


def text_html(pieces: list[dict]) -> SafeString:
    """The pieces as the spans static/js/coding.js also builds: a coded piece
    takes its first code's colour and names every code in its title."""
    out = []
    for piece in pieces:
        codes = piece["codes"]
        if not codes:
            out.append(f"<span>{escape(piece['text'])}</span>")
            continue
        multi = " seg-multi" if len(codes) > 1 else ""
        names = escape(", ".join(c["name"] for c in codes))
        out.append(f'<span class="seg code-{int(codes[0]["pk"])}{multi}" title="{names}">{escape(piece["text"])}</span>')
    return mark_safe("".join(out))  # every value above is escaped, or an int


def _unique_codes(segments) -> list[dict]:
    seen, codes = set(), []
    for s in segments:
        if s.code_id not in seen:
            seen.add(s.code_id)
            codes.append({"pk": s.code_id, "name": s.code_name})
    return codes


_REVIEW = mark_safe(' <span class="badge text-bg-warning">Needs review</span>')


def segment_items_html(segments: list[SegmentView]) -> SafeString:
    """The `<li>`s of the segment list, as `renderSegments` draws them before its buttons."""
    if not segments:
        return mark_safe('<li class="text-body-secondary small segment-empty">No segments yet.</li>')
    return format_html_join(
        "\n",
        '<li class="segment-item" data-segment="{}"><div><span class="code-swatch code-{}" aria-hidden="true"></span> '
        '<strong>{}</strong>{}</div><div class="segment-quote">“{}”</div>'
        '<div class="small text-body-secondary">{}</div></li>',
        (
            (s.pk, s.code_id, s.code_name, _REVIEW if s.needs_review else "", s.excerpt, s.coder)
            for s in segments
        ),
    )


def code_list_html(codebook: list[CodebookEntry]) -> SafeString:
    """The code buttons, grouped under their category's heading (the codebook comes in category order)."""
    groups: dict[str, list[CodebookEntry]] = {}
    for code in codebook:
        groups.setdefault(code.category, []).append(code)
    return format_html_join(
        "\n",
        '<div class="code-category" data-category="{}">'
        '<h3 class="h6 small text-body-secondary text-uppercase mt-2 mb-1">{}</h3>'
        '<ul class="list-unstyled mb-0">{}</ul></div>',
        ((category, category, _code_buttons(codes)) for category, codes in groups.items()),
    )


def _code_buttons(codes: list[CodebookEntry]) -> SafeString:
    return format_html_join(
        "",
        '<li><button type="button" class="code-btn code-{}" data-code="{}"{}{}>'
        '<span class="code-swatch" aria-hidden="true"></span><span class="code-name">{}</span>{}</button></li>',
        (
            (
                c.pk, c.pk,
                format_html(' aria-keyshortcuts="{}"', c.shortcut) if c.shortcut else "",
                format_html(' title="{}"', c.definition) if c.definition else "",
                c.name,
                format_html('<kbd class="code-key">{}</kbd>', c.shortcut) if c.shortcut else "",
            )
            for c in codes
        ),
    )
