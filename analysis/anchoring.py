"""Re-anchoring coded segments when a note section is amended, and converting
offsets between the browser (UTF-16 code units) and Python (code points).

A segment is `(start, end)` in code points, end excluded, plus `quote`, a
copy of the text it covered. After an amendment each segment is placed again:

1. If `old_text[start:end] == quote` and the diff from old to new text leaves
   that span untouched, the span is carried through the diff: "unchanged" if
   its offsets stay the same, "shifted" if edits before it moved it.
2. Otherwise the quote is searched for in the new text. Matches that the
   diff shows as other old text, unchanged, are skipped: they are someone
   saying the same words elsewhere, not the coded passage (which the diff saw
   change). One match left: "found" there. Several: the one nearest to where
   the diff carries the old start, if no other is as near: "found"; else
   "ambiguous".
   If the exact quote is absent, a match that differs only in whitespace
   counts as the quote: any run of Unicode whitespace (spaces, tabs, line
   breaks, no-break spaces) matches any other run, though whitespace cannot
   appear or vanish between two words. The anchor gives the exact span in the
   new text; the caller should then store `new_text[start:end]` as the
   segment's new quote.
3. Otherwise "lost": the quoted text was deleted or edited inside.

Ambiguous and lost anchors have no offsets; the caller keeps the segment
with its old quote and flags it for the coder, so nothing is dropped.

No Unicode normalization is done here: note sections are stored NFC, and a
quote is compared code point for code point.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

UNCHANGED = "unchanged"
SHIFTED = "shifted"
FOUND = "found"
AMBIGUOUS = "ambiguous"
LOST = "lost"

_PLACED = frozenset({UNCHANGED, SHIFTED, FOUND})
_HOWS = _PLACED | {AMBIGUOUS, LOST}


@dataclass(frozen=True)
class Anchor:
    """Where a segment lands in the new text, and how sure that is."""

    start: int | None  # None when it could not be placed
    end: int | None
    how: str  # "unchanged" | "shifted" | "found" | "ambiguous" | "lost"

    def __post_init__(self):
        if self.how not in _HOWS:
            raise ValueError(f"unknown anchor kind {self.how!r}")
        if (self.how in _PLACED) != (self.start is not None and self.end is not None):
            raise ValueError(f"a {self.how!r} anchor {'needs' if self.how in _PLACED else 'has no'} offsets")

    @property
    def ok(self) -> bool:
        """Placed with confidence: the segment can keep its code without review."""
        return self.how in _PLACED


# --- The diff ---------------------------------------------------------------
#
# difflib on 100,000 single characters is slow (and, with its popularity
# heuristic on, wrong: every common letter is ignored); on words it is fast
# but too coarse (an edited letter would mark the whole word changed). So the
# diff is hierarchical, as in most text-diff tools: lines first, then words
# inside changed lines, then characters inside changed words. Each level only
# sees what the level above could not match, which keeps every SequenceMatcher
# small.

_Op = tuple[str, int, int, int, int]  # difflib opcode, in code points

_LINE = re.compile(r"[^\n]*\n|[^\n]+")  # sections are stored with "\n" line endings
# Whitespace rides with the word before it so "the " is one token: separate
# space tokens would make every space a match candidate.
_WORD = re.compile(r"\w+\s*|[^\w\s]\s*|\s+")

_TOKENIZERS = (_LINE.findall, _WORD.findall)
_CHAR_LEVEL = len(_TOKENIZERS)
# Characters are compared only inside a change of a few words (an edited
# word, a changed space). Across longer changes they would mostly match
# coincidental letters, and "equal" must mean the coded text is really there.
_CHAR_TOKENS = 3  # words on each side
_CHAR_LIMIT = 10_000  # len(a) * len(b), for very long "words"
# difflib's popularity heuristic (frequent tokens never start a match) spoils
# small diffs, but keeps a rewrite of a whole long text to about a second;
# matches still grow through frequent tokens once started.
_AUTOJUNK_FROM = 5_000  # tokens


def _opcodes(ta: Sequence[str], tb: Sequence[str]) -> list[_Op]:
    """difflib opcodes, with the common ends matched first: amendments are
    usually local, and difflib is much slower than this on long equal runs."""
    n = min(len(ta), len(tb))
    lo = 0
    while lo < n and ta[lo] == tb[lo]:
        lo += 1
    hi = 0
    while hi < n - lo and ta[len(ta) - 1 - hi] == tb[len(tb) - 1 - hi]:
        hi += 1
    ops: list[_Op] = [("equal", 0, lo, 0, lo)] if lo else []
    ma, mb = ta[lo : len(ta) - hi], tb[lo : len(tb) - hi]
    if ma or mb:
        matcher = SequenceMatcher(None, ma, mb, autojunk=len(mb) > _AUTOJUNK_FROM)
        ops += [(tag, lo + i1, lo + i2, lo + j1, lo + j2) for tag, i1, i2, j1, j2 in matcher.get_opcodes()]
    if hi:
        ops.append(("equal", len(ta) - hi, len(ta), len(tb) - hi, len(tb)))
    return ops


def _refines(level: int, tokens_a: int, tokens_b: int) -> bool:
    """Whether a changed stretch found at `level` is diffed again one level finer."""
    if level + 1 < _CHAR_LEVEL:
        return True
    return level + 1 == _CHAR_LEVEL and max(tokens_a, tokens_b) <= _CHAR_TOKENS


def _replace(a: str, b: str, ia: int, jb: int, out: list[_Op]) -> None:
    """A change not diffed by character, less the letters it shares at its ends.

    "Helmi presented" -> "Helmi, a student, presented" changes the token
    "Helmi " as a whole; the coded "Helmi" is still untouched.
    """
    n = min(len(a), len(b))
    p = 0
    while p < n and a[p] == b[p]:
        p += 1
    s = 0
    while s < n - p and a[len(a) - 1 - s] == b[len(b) - 1 - s]:
        s += 1
    if p:
        out.append(("equal", ia, ia + p, jb, jb + p))
    tag = "replace" if len(a) - s > p and len(b) - s > p else "delete" if len(a) - s > p else "insert"
    out.append((tag, ia + p, ia + len(a) - s, jb + p, jb + len(b) - s))
    if s:
        out.append(("equal", ia + len(a) - s, ia + len(a), jb + len(b) - s, jb + len(b)))


def _refine(a: str, b: str, level: int, ia: int, jb: int, out: list[_Op]) -> None:
    """Append the opcodes turning a into b, offset by (ia, jb), to out."""
    if not b:
        if a:
            out.append(("delete", ia, ia + len(a), jb, jb))
        return
    if not a:
        out.append(("insert", ia, ia, jb, jb + len(b)))
        return
    if level == _CHAR_LEVEL:
        if len(a) * len(b) > _CHAR_LIMIT:
            _replace(a, b, ia, jb, out)
            return
        ta, tb = a, b
    else:
        ta, tb = _TOKENIZERS[level](a), _TOKENIZERS[level](b)
    ca, cb = [0], [0]  # code-point offset of each token boundary
    for t in ta:
        ca.append(ca[-1] + len(t))
    for t in tb:
        cb.append(cb[-1] + len(t))
    for tag, i1, i2, j1, j2 in _opcodes(ta, tb):
        a1, a2, b1, b2 = ca[i1], ca[i2], cb[j1], cb[j2]
        if tag == "replace" and _refines(level, i2 - i1, j2 - j1):
            _refine(a[a1:a2], b[b1:b2], level + 1, ia + a1, jb + b1, out)
        elif tag == "replace" and level < _CHAR_LEVEL:
            _replace(a[a1:a2], b[b1:b2], ia + a1, jb + b1, out)
        else:
            out.append((tag, ia + a1, ia + a2, jb + b1, jb + b2))


def _diff(old: str, new: str) -> list[_Op]:
    ops: list[_Op] = []
    _refine(old, new, 0, 0, 0, ops)
    # Levels can leave two equal stretches side by side ("Helmi" matched by
    # character after " said " matched by word); a span across them is untouched.
    merged: list[_Op] = []
    for op in ops:
        if merged and op[0] == "equal" and merged[-1][0] == "equal":
            prev = merged.pop()
            op = ("equal", prev[1], op[2], prev[3], op[4])
        merged.append(op)
    return merged


class _Mapping:
    """The diff from old to new text, as a lookup from old positions."""

    def __init__(self, old: str, new: str):
        self.old_len, self.new_len = len(old), len(new)
        ops = [("equal", 0, len(old), 0, len(new))] if old == new else _diff(old, new)
        # Pure insertions cover no old position; the equal stretch after one
        # starts at the same old offset and is the one a lookup should hit.
        self._ops = [op for op in ops if op[2] > op[1]]
        self._starts = [op[1] for op in self._ops]
        self._equal = [op for op in ops if op[0] == "equal"]
        self._equal_new_starts = [op[3] for op in self._equal]

    def _op_at(self, pos: int) -> _Op:
        return self._ops[bisect.bisect_right(self._starts, pos) - 1]

    def untouched(self, start: int, end: int) -> int | None:
        """New start of old [start, end) if no edit falls inside it, else None."""
        tag, i1, i2, j1, _ = self._op_at(start)
        if tag == "equal" and end <= i2:
            return j1 + start - i1
        return None

    def position(self, pos: int) -> int:
        """Best guess of where old position `pos` is in the new text."""
        if pos >= self.old_len:
            return self.new_len
        tag, i1, _, j1, j2 = self._op_at(pos)
        if tag == "equal":
            return j1 + pos - i1
        return j1 + min(pos - i1, j2 - j1)

    def unchanged_source(self, start: int, end: int) -> tuple[int, int] | None:
        """The old span that new [start, end) was copied from unchanged, if it was."""
        k = bisect.bisect_right(self._equal_new_starts, start) - 1
        if k < 0:
            return None
        _, i1, _, j1, j2 = self._equal[k]
        if end > j2:
            return None
        return i1 + start - j1, i1 + end - j1


# --- Finding a quote --------------------------------------------------------


def _whitespace_pattern(quote: str) -> re.Pattern[str] | None:
    words = quote.split()
    if not words or len(words) == 1 and words[0] == quote:
        return None  # only whitespace, or none: nothing to loosen
    body = r"\s+".join(re.escape(w) for w in words)
    # A quote that starts or ends with whitespace takes the whole run, so one
    # run of spaces gives one match, not one per space.
    if quote[0].isspace():
        body = r"(?<!\s)\s+" + body
    if quote[-1].isspace():
        body += r"\s+(?!\s)"
    return re.compile(f"(?=({body}))")  # lookahead: overlapping matches too


def _occurrences(text: str, quote: str) -> list[tuple[int, int]]:
    found = []
    i = text.find(quote)
    while i != -1:
        found.append((i, i + len(quote)))
        i = text.find(quote, i + 1)
    if found:
        return found
    pattern = _whitespace_pattern(quote)
    if pattern is None:
        return []
    return [m.span(1) for m in pattern.finditer(text)]


# --- Public API ---------------------------------------------------------------


def _check_span(text: str, start: int, end: int, quote: str, where: str = "") -> None:
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{where}{name} must be an int, not {type(value).__name__}")
    if not 0 <= start < end <= len(text):
        raise ValueError(
            f"{where}span [{start}, {end}) is not a non-empty range inside the old text "
            f"of {len(text)} code points"
        )
    if not isinstance(quote, str) or not quote:
        raise ValueError(f"{where}quote must be a non-empty string")


def _other_text(mapping: _Mapping, span: tuple[int, int], start: int, end: int) -> bool:
    """Whether a match in the new text is old text, unchanged, from elsewhere.

    Such a match is another utterance of the same words, not the coded one
    (which the diff saw changed, or rule 1 would have placed it).
    """
    source = mapping.unchanged_source(*span)
    return source is not None and (source[1] <= start or source[0] >= end)


def _place(mapping: _Mapping, old_text: str, new_text: str, start: int, end: int, quote: str) -> Anchor:
    if old_text[start:end] == quote:
        new_start = mapping.untouched(start, end)
        if new_start is not None:
            new_end = new_start + end - start
            how = UNCHANGED if (new_start, new_end) == (start, end) else SHIFTED
            return Anchor(new_start, new_end, how)
    found = [span for span in _occurrences(new_text, quote) if not _other_text(mapping, span, start, end)]
    if not found:
        return Anchor(None, None, LOST)
    if len(found) == 1:
        return Anchor(*found[0], FOUND)
    target = mapping.position(start)
    distances = [abs(s - target) for s, _ in found]
    nearest = min(distances)
    if distances.count(nearest) > 1:
        return Anchor(None, None, AMBIGUOUS)
    return Anchor(*found[distances.index(nearest)], FOUND)


def reanchor(old_text: str, new_text: str, start: int, end: int, quote: str) -> Anchor:
    """Place the segment old_text[start:end] (a copy of which is `quote`) in new_text."""
    return reanchor_many(old_text, new_text, [(start, end, quote)])[0]


def reanchor_many(old_text: str, new_text: str, spans: Sequence[tuple[int, int, str]]) -> list[Anchor]:
    """reanchor() for every (start, end, quote) of one section, diffing only once.

    All spans are checked before any work is done, so a bad one raises
    without a partial result.
    """
    for n, (start, end, quote) in enumerate(spans):
        _check_span(old_text, start, end, quote, where=f"segment {n}: " if len(spans) > 1 else "")
    if not spans:
        return []
    mapping = _Mapping(old_text, new_text)
    return [_place(mapping, old_text, new_text, start, end, quote) for start, end, quote in spans]


# --- UTF-16 offsets -----------------------------------------------------------
#
# JavaScript strings count UTF-16 code units: a character outside the BMP
# (emoji, U+10000 and up) is two units, a surrogate pair; everything else is
# one unit, as in Python. Combining marks and ZWJ sequences are several code
# points in both counts and need no special care. Encoding to UTF-16 does the
# counting in C, so 100,000-character texts cost well under a millisecond.


def _utf16(text: str) -> bytes:
    # surrogatepass: a lone surrogate (possible in a Python str) is one unit, as in JS.
    return text.encode("utf-16-le", "surrogatepass")


def _check_index(index: int) -> None:
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError(f"index must be an int, not {type(index).__name__}")


def codepoint_to_utf16(text: str, index: int) -> int:
    """The UTF-16 code-unit offset of code-point offset `index` in text."""
    _check_index(index)
    if not 0 <= index <= len(text):
        raise ValueError(f"code-point index {index} is outside 0..{len(text)}")
    if text.isascii():
        return index
    return len(_utf16(text[:index])) // 2


def utf16_to_codepoint(text: str, index: int) -> int:
    """The code-point offset of UTF-16 code-unit offset `index` in text.

    Raises ValueError for an index between the two halves of a surrogate pair.
    """
    _check_index(index)
    if text.isascii():
        if not 0 <= index <= len(text):
            raise ValueError(f"UTF-16 index {index} is outside 0..{len(text)}")
        return index
    units = _utf16(text)
    length = len(units) // 2
    if not 0 <= index <= length:
        raise ValueError(f"UTF-16 index {index} is outside 0..{length}")
    if 0 < index < length:
        before = int.from_bytes(units[2 * index - 2 : 2 * index], "little")
        at = int.from_bytes(units[2 * index : 2 * index + 2], "little")
        if 0xD800 <= before <= 0xDBFF and 0xDC00 <= at <= 0xDFFF:
            raise ValueError(f"UTF-16 index {index} falls inside a surrogate pair")
    return len(units[: 2 * index].decode("utf-16-le", "surrogatepass"))
