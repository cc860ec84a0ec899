"""The coding page's text, segment list and code list as HTML, built in
Python rather than in template loops: a section has dozens of pieces and
segments, and the loops were most of the page's rendering time. Every value
is escaped with `html.escape` (what Django's `escape` calls, without its
lazy-string wrapper, which cost more than the escaping), or is an int.

static/js/coding.js builds the same markup in the browser after each change
(`renderText`, `renderSegments`); the two must agree on class names and
attributes, which the coding tests and the browser tests check.
"""

from __future__ import annotations

from html import escape

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


_REVIEW = ' <span class="badge text-bg-warning">Needs review</span>'


def segment_items_html(segments: list[SegmentView]) -> SafeString:
    """The `<li>`s of the segment list, as `renderSegments` draws them before its buttons."""
    if not segments:
        return mark_safe('<li class="text-body-secondary small segment-empty">No segments yet.</li>')
    return mark_safe("\n".join(  # every value escaped, or an int
        f'<li class="segment-item" data-segment="{int(s.pk)}"><div><span class="code-swatch code-{int(s.code_id)}" '
        f'aria-hidden="true"></span> <strong>{escape(s.code_name)}</strong>{_REVIEW if s.needs_review else ""}</div>'
        f'<div class="segment-quote">“{escape(s.excerpt)}”</div>'
        f'<div class="small text-body-secondary">{escape(s.coder)}</div></li>'
        for s in segments
    ))


def code_list_html(codebook: list[CodebookEntry]) -> SafeString:
    """The code buttons, grouped under their category's heading (the codebook comes in category order)."""
    groups: dict[str, list[CodebookEntry]] = {}
    for code in codebook:
        groups.setdefault(code.category, []).append(code)
    return mark_safe("\n".join(  # every value escaped, or an int
        f'<div class="code-category" data-category="{escape(category)}">'
        f'<h3 class="h6 small text-body-secondary text-uppercase mt-2 mb-1">{escape(category)}</h3>'
        f'<ul class="list-unstyled mb-0">{"".join(map(_code_button, codes))}</ul></div>'
        for category, codes in groups.items()
    ))


def _code_button(c: CodebookEntry) -> str:
    key = escape(c.shortcut)
    keyshortcuts = f' aria-keyshortcuts="{key}"' if key else ""
    title = f' title="{escape(c.definition)}"' if c.definition else ""
    kbd = f'<kbd class="code-key">{key}</kbd>' if key else ""
    return (
        f'<li><button type="button" class="code-btn code-{int(c.pk)}" data-code="{int(c.pk)}"{keyshortcuts}{title}>'
        f'<span class="code-swatch" aria-hidden="true"></span><span class="code-name">{escape(c.name)}</span>'
        f"{kbd}</button></li>"
    )
