"""Find identifiers in field-note text before it becomes research data.

On save, a note is checked for participants' real names, e-mail addresses,
phone numbers, Finnish personal identity codes (henkilötunnus, "hetu") and
dates of birth. The author then fixes each finding or confirms it is not an
identifier; confirmed strings come back as ``ignore``.

Pure Python on purpose (no Django imports): it runs on every autosave and is
tested without a database.

Offsets count Unicode code points in the text as given, end excluded, like
CodedSegment offsets. Note text is stored NFC-normalised; names are matched in
both their composed and decomposed forms so a stray decomposed text still
matches, without renormalising the text and shifting offsets.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Finding", "KnownPerson", "find_identifiers", "valid_hetu"]


@dataclass(frozen=True)
class Finding:
    kind: str  # "name", "email", "phone", "hetu", "birth_date"
    start: int  # code-point offset in the text, end excluded
    end: int
    text: str  # text[start:end]
    suggestion: str  # the pseudonym for a name; "" otherwise
    message: str  # a short explanation for the author


@dataclass(frozen=True)
class KnownPerson:
    name: str  # full real name, e.g. "Helmi Mäkinen"
    pseudonym: str  # "S3"


# When two findings overlap, the longer one stays; on equal length the kind
# earlier in this list does (a validated hetu says more than a phone number).
_KIND_RANK = {"hetu": 0, "email": 1, "phone": 2, "birth_date": 3, "name": 4}

_MESSAGES = {
    "email": "Looks like an e-mail address",
    "phone": "Looks like a phone number",
    "hetu": "Looks like a Finnish personal identity code",
    "birth_date": "Looks like a date of birth",
}

# Characters that continue a word. Python's \w is Unicode-aware but does not
# cover combining marks, so "Helmi" followed by U+0308 would otherwise count
# as a whole word.
_COMBINING = r"\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_NOT_AFTER_WORD = rf"(?<![\w{_COMBINING}])"
_NOT_BEFORE_WORD = rf"(?![\w{_COMBINING}])"

_SPACE = r"[ \u00a0\u202f]"  # plain, no-break and narrow no-break space
_GROUP_SEP = r"[- \u00a0\u202f]"  # between digit groups: a space or a hyphen


# --- Henkilötunnus -----------------------------------------------------------

_HETU_CHECK_CHARS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
_CENTURY_BY_SIGN = {"+": 1800, **dict.fromkeys("-YXWVU", 1900), **dict.fromkeys("ABCDEF", 2000)}

_HETU_SHAPE = r"""
    (?P<dd>[0-9]{2}) (?P<mm>[0-9]{2}) (?P<yy>[0-9]{2})   # date of birth, DDMMYY
    (?P<sign>[-+YXWVUABCDEF])                           # century sign
    (?P<nnn>[0-9]{3})                                   # individual number
    (?P<check>[0-9A-Z])                                 # check character
"""
_HETU_EXACT = re.compile(_HETU_SHAPE, re.VERBOSE | re.IGNORECASE)
_HETU = re.compile(
    rf"""
    (?<!\w)          # not the tail of a longer code or word
    {_HETU_SHAPE}
    (?!\w)
    """,
    re.VERBOSE | re.IGNORECASE,
)


def valid_hetu(code: str) -> bool:
    """Whether ``code`` is a valid Finnish personal identity code.

    The date must exist in the century the sign gives and the check character
    must be right; letters may be in either case. Surrounding whitespace makes
    it invalid. The individual number is not range-checked (900-999 are
    temporary codes, but they identify a person all the same).
    """
    match = _HETU_EXACT.fullmatch(code)
    return match is not None and _hetu_match_is_valid(match)


def _hetu_match_is_valid(match: re.Match) -> bool:
    century = _CENTURY_BY_SIGN[match["sign"].upper()]
    try:
        datetime.date(century + int(match["yy"]), int(match["mm"]), int(match["dd"]))
    except ValueError:
        return False
    number = int(match["dd"] + match["mm"] + match["yy"] + match["nnn"])
    return _HETU_CHECK_CHARS[number % 31] == match["check"].upper()


def _find_hetus(text: str) -> Iterable[Finding]:
    for match in _HETU.finditer(text):
        # A hetu-shaped string with a wrong check character or an impossible
        # date is more likely a reference number than a typo'd code.
        if _hetu_match_is_valid(match):
            yield _finding("hetu", match.start(), match.end(), text)


# --- E-mail ------------------------------------------------------------------

_EMAIL = re.compile(
    r"""
    (?<![\w.%+-])          # start at the beginning of the local part, so a long
                           # run of word characters without "@" is scanned once
    [\w.%+-]++             # local part: helmi.makinen, h+notes
    @
    (?:[\w-]+\.)+          # domain labels: mail.example.
    [^\W\d_]{2,}           # top-level domain, letters only: fi, com
    (?![\w-])
    """,
    re.VERBOSE,
)


def _find_emails(text: str) -> Iterable[Finding]:
    for match in _EMAIL.finditer(text):
        yield _finding("email", match.start(), match.end(), text)


# --- Phone numbers -----------------------------------------------------------

# Only numbers that start with a country code ("+358") or a trunk zero
# ("040", "(09)") count: that keeps years, counts, session numbers and times
# out without a list of exceptions. Possessive quantifiers keep the scan
# linear on long runs of digits.
_PHONE = re.compile(
    rf"""
    (?<![\w+])                   # not the tail of a word or a longer number
    (?<![0-9][.,:/-])            # nor of a date, time, decimal or range: 1.05, 16:05
    (?:
        \+ [1-9][0-9]{{0,2}}        # country code: +358, +44
        (?: {_SPACE}? \(0\) )?      # trunk zero some write in brackets: +358 (0)40
        {_GROUP_SEP}?
        [0-9]++                     # first group: 40, 20, 401234567
      | \( 0[0-9]{{1,3}} \)         # area code in brackets: (09)
        {_GROUP_SEP}?
        [0-9]++                     # first group: 1234
      | 0[0-9]++                    # national number with its trunk zero: 040, 09
    )
    (?: {_GROUP_SEP} [0-9]{{2,}}+ )*+   # further groups of two or more digits
    (?!\w)
    """,
    re.VERBOSE,
)

# "05-03-2004" and "05 03 2004" have the phone shape; dates are not phones.
_DATE_SHAPED = re.compile(
    rf"(?P<d>[0-9]{{1,2}}) (?P<sep>{_GROUP_SEP}) (?P<m>[0-9]{{1,2}}) (?P=sep) [0-9]{{4}}",
    re.VERBOSE,
)

_PHONE_MIN_DIGITS = 7
_PHONE_MAX_DIGITS = 15  # the longest international number (ITU-T E.164)


def _find_phones(text: str) -> Iterable[Finding]:
    for match in _PHONE.finditer(text):
        found = match.group()
        digits = sum(ch.isdigit() for ch in found)
        if not _PHONE_MIN_DIGITS <= digits <= _PHONE_MAX_DIGITS:
            continue
        date = _DATE_SHAPED.fullmatch(found)
        if date and 1 <= int(date["d"]) <= 31 and 1 <= int(date["m"]) <= 12:
            continue
        yield _finding("phone", match.start(), match.end(), text)


# --- Dates of birth ----------------------------------------------------------

_MONTHS = {
    # English, full and abbreviated
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6,
    "july": 7, "august": 8, "september": 9, "october": 10, "november": 11,
    "december": 12, "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7,
    "aug": 8, "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
    # Finnish, in the partitive a date uses: "12. maaliskuuta 1985"
    "tammikuuta": 1, "helmikuuta": 2, "maaliskuuta": 3, "huhtikuuta": 4,
    "toukokuuta": 5, "kesäkuuta": 6, "heinäkuuta": 7, "elokuuta": 8,
    "syyskuuta": 9, "lokakuuta": 10, "marraskuuta": 11, "joulukuuta": 12,
}  # fmt: skip
# Month names are checked against _MONTHS after matching: a plain word here
# keeps the scan fast where an alternation of 36 names would not.
_WORD = r"[^\W\d_]++"

_DATE = re.compile(
    rf"""
    (?<![\w.,/-])                       # not inside a longer number
    (?:
        (?P<dot_d>[0-9]{{1,2}}) \. {_SPACE}? (?P<dot_m>[0-9]{{1,2}}) \. {_SPACE}?
        (?P<dot_y>[0-9]{{4}}|[0-9]{{2}})                   # 12.3.1985, 12.3.85
      | (?P<slash_d>[0-9]{{1,2}}) / (?P<slash_m>[0-9]{{1,2}}) /
        (?P<slash_y>[0-9]{{4}}|[0-9]{{2}})                 # 12/3/1985
      | (?P<iso_y>[0-9]{{4}}) - (?P<iso_m>[0-9]{{2}}) - (?P<iso_d>[0-9]{{2}})  # 1985-03-12
      | (?P<dmy_d>[0-9]{{1,2}}) (?:st|nd|rd|th|\.)? \s+
        (?P<dmy_m>{_WORD}) \.? \s+ (?P<dmy_y>[0-9]{{4}})   # 12 March 1985
      | (?P<mdy_m>{_WORD}) \.? \s+
        (?P<mdy_d>[0-9]{{1,2}}) (?:st|nd|rd|th)? ,? \s+ (?P<mdy_y>[0-9]{{4}})  # March 12, 1985
    )
    (?!\w)
    (?![.,/-][0-9])                     # nor the head of one
    """,
    re.VERBOSE | re.IGNORECASE,
)

# Words that say the date next to them is someone's birth date.
_BIRTH_CUE = re.compile(
    r"""
    (?<!\w)
    (?:
        born (?!\w)
      | birth\w*               # birth, birthday, birthdate
      | d\.?o\.?b\b\.?         # DOB, D.O.B.
      | b\.                    # "b. 12 March 1985"
      | syntyn\w*              # syntynyt, syntyneen
      | syntymä\w*             # syntymäaika, syntymäpäivä
      | synt\.
      | s\.                    # "(s. 12.3.1985)"
      | född (?!\w)            # Swedish, Finland's other official language
    )
    """,
    re.VERBOSE | re.IGNORECASE,
)
_CUE_REACH = 30  # at most this many characters between the cue and the date


def _date_is_real(match: re.Match) -> bool:
    for style in ("dot", "slash", "iso", "dmy", "mdy"):
        if match[f"{style}_y"] is not None:
            year, month, day = match[f"{style}_y"], match[f"{style}_m"], match[f"{style}_d"]
            break
    month_number = int(month) if month.isdigit() else _MONTHS.get(month.lower())
    if month_number is None:
        return False
    # A two-digit year leaves the century open; 2000 is a leap year, so
    # 29.2.xx passes.
    year_number = int(year) if len(year) == 4 else 2000 + int(year)
    try:
        datetime.date(year_number, month_number, int(day))
    except ValueError:
        return False
    return True


def _find_birth_dates(text: str) -> Iterable[Finding]:
    dates = [match for match in _DATE.finditer(text) if _date_is_real(match)]
    if not dates:
        return
    cue_ends = [match.end() for match in _BIRTH_CUE.finditer(text)]
    previous_date_end = 0
    for match in dates:
        # A cue counts for the first date after it only: in "born 12.3.1985,
        # came to the session on 5.9.2004" the second date is not a birth date.
        earliest = max(match.start() - _CUE_REACH, previous_date_end)
        i = bisect.bisect_left(cue_ends, earliest)
        if i < len(cue_ends) and cue_ends[i] <= match.start():
            yield _finding("birth_date", match.start(), match.end(), text)
        previous_date_end = match.end()


# --- Names -------------------------------------------------------------------


def _fold(value: str) -> str:
    """The form two strings are compared in: NFC, single spaces, case-folded."""
    return " ".join(unicodedata.normalize("NFC", value).split()).casefold()


def _letters(value: str) -> int:
    return sum(ch.isalpha() for ch in value)


def _name_forms(name: str) -> set[str]:
    """The strings a person may be referred to by: full name and its parts."""
    parts = unicodedata.normalize("NFC", name).split()
    forms = {" ".join(parts)}
    if len(parts) > 2:
        forms.add(f"{parts[0]} {parts[-1]}")  # without the middle names
    for part in parts:
        forms.add(part)
        if "-" in part:
            forms.update(part.split("-"))  # "Anna-Liisa" may be "Anna" in a note
    return {form for form in forms if _letters(form) >= 3}


def _form_pattern(form: str) -> str:
    """Regex for one name form, in composed or decomposed spelling."""
    spellings = {unicodedata.normalize(nf, form) for nf in ("NFC", "NFD")}
    alternatives = (r"\s+".join(re.escape(word) for word in s.split()) for s in spellings)
    return "|".join(sorted(alternatives, key=len, reverse=True))


# Names are looked up word by word, not with one regex of every name: the
# text is cut once into words (runs of word characters), and each word, with
# the word after it, is looked up in dicts of the name forms by their first
# word, or by their first two words. Only the few forms found there are then
# tried at that position, with a regex of just those forms in the order one
# regex of all names would try them, so the result is the same as that
# regex's. The cost follows the length of the text, not the number of
# participants.
#
# The dicts only have to find every form that could match (the regex
# decides), so the key may be coarser than re.IGNORECASE, never finer.
# _name_key folds case so that any two characters re.IGNORECASE takes for
# each other get the same key ("I", "i", "ı" and "İ"; "s" and "ſ"; "ß" and
# "ẞ"), and re.IGNORECASE never takes a word character for a character that
# is not one: so each word of a name matches a whole word of the text.
# test_identifiers checks both for every cased character.
_WORD_RUN = re.compile(rf"[\w{_COMBINING}]+")


def _name_key(word: str) -> str:
    """The dict key of a word: equal for words re.IGNORECASE takes as equal."""
    return word.replace("\u0130", "i").lower().upper()


def _first_words(spelling: str) -> set[tuple[str, str | None]] | None:
    """The keys of a form's first word and of its second (None for a one-word
    form), for its composed and its decomposed spelling (the two that
    _form_pattern matches). None for a form not to look up by its words: one
    that does not start with a word, or (a safeguard; no such character is
    known) has a cased character between its words."""
    keys = set()
    for s in {unicodedata.normalize(nf, spelling) for nf in ("NFC", "NFD")}:
        words = _WORD_RUN.findall(s)
        if not words or not s.startswith(words[0]):
            return None
        if any(not ch.isspace() and (ch.lower() != ch or ch.upper() != ch) for ch in _WORD_RUN.sub("", s)):
            return None
        keys.add((_name_key(words[0]), _name_key(words[1]) if len(words) > 1 else None))
    return keys


class _NameMatcher:
    """The name forms of a set of people, filed by their first words."""

    def __init__(self, patterns: list[str], pseudonyms: tuple, first_words: list, others: list[int]):
        self._patterns = patterns  # per form, in the order they are tried
        self._pseudonyms = pseudonyms  # per form, sorted
        self._labels: dict[int, tuple[str, str]] = {}
        # first word -> one-word forms; (first word, second word) -> longer forms
        self._one_word: dict[str, list[int]] = {}
        self._two_words: dict[tuple[str, str], list[int]] = {}
        for i, (first, second) in first_words:
            if second is None:
                self._one_word.setdefault(first, []).append(i)
            else:
                self._two_words.setdefault((first, second), []).append(i)
        self._starts = set(self._one_word) | {first for first, _ in self._two_words}
        self._compiled: dict[tuple[str, str | None], re.Pattern] = {}
        # Forms that need not start with a word are searched for at every
        # position, inside a lookahead so that every position is reported.
        self._others = re.compile(f"(?={self._alternation(others)})", re.IGNORECASE) if others else None

    def _alternation(self, forms: Iterable[int]) -> str:
        groups = "|".join(f"(?P<n{i}>{self._patterns[i]})" for i in forms)
        return f"{_NOT_AFTER_WORD}(?:{groups}){_NOT_BEFORE_WORD}"

    def _pattern_for(self, first: str, second: str | None) -> re.Pattern | None:
        """The forms that may start with these two words, as one regex."""
        two_words = self._two_words.get((first, second), ()) if second is not None else ()
        key = (first, second if two_words else None)
        pattern = self._compiled.get(key)
        if pattern is None:
            forms = sorted({*self._one_word.get(first, ()), *two_words})
            if not forms:
                return None
            pattern = self._compiled[key] = re.compile(self._alternation(forms), re.IGNORECASE)
        return pattern

    def label(self, form: int) -> tuple[str, str]:
        """The suggestion and the message for a finding of this form."""
        label = self._labels.get(form)
        if label is None:
            pseudonyms = self._pseudonyms[form]
            if len(pseudonyms) == 1:
                label = (pseudonyms[0], f"Matches the name of {pseudonyms[0]}")
            else:
                # Shared by several people: the author has to say who is meant.
                label = ("", f"Matches the names of {', '.join(pseudonyms[:-1])} and {pseudonyms[-1]}")
            self._labels[form] = label
        return label

    def matches(self, text: str) -> Iterable[tuple[int, int, int]]:
        """(start, end, form) of each name in ``text``, as one regex of all the
        forms finds them: at each position the first form in order that
        matches there, the search going on from the end of each match."""
        best: dict[int, tuple[int, int]] = {}  # start -> (form, end)
        words = list(_WORD_RUN.finditer(text))
        keys = [_name_key(word.group()) for word in words]
        for n, key in enumerate(keys):
            if key in self._starts:
                pattern = self._pattern_for(key, keys[n + 1] if n + 1 < len(keys) else None)
                match = pattern.match(text, words[n].start()) if pattern is not None else None
                if match is not None:
                    best[match.start()] = (int(match.lastgroup[1:]), match.end())
        if self._others is not None:
            for match in self._others.finditer(text):
                form, start = int(match.lastgroup[1:]), match.start()
                if start not in best or form < best[start][0]:
                    best[start] = (form, match.end(match.lastgroup))
        searched_to = 0
        for start in sorted(best):
            if start >= searched_to:
                form, end = best[start]
                yield start, end, form
                searched_to = end


@functools.lru_cache(maxsize=32)
def _name_matcher(people: tuple[tuple[str, str], ...]) -> _NameMatcher | None:
    """The name forms of ``people``, (name, pseudonym) pairs, and the
    pseudonyms behind each form. Cached by the pairs (plain strings hash and
    compare fast), so any change of a name or pseudonym builds a new one."""
    pseudonyms_by_form: dict[str, set[str]] = {}
    spelling_by_form: dict[str, str] = {}
    for name, pseudonym in people:
        for form in _name_forms(name):
            key = _fold(form)
            pseudonyms_by_form.setdefault(key, set()).add(pseudonym)
            spelling_by_form.setdefault(key, form)
    if not pseudonyms_by_form:
        return None
    # Longest first, so "Helmi Mäkinen" is preferred to "Helmi" at one position.
    keys = sorted(pseudonyms_by_form, key=lambda k: (-len(k), k))
    first_words: list[tuple[int, tuple[str, str | None]]] = []
    others: list[int] = []
    for i, key in enumerate(keys):
        words = _first_words(spelling_by_form[key])
        if words is None:
            others.append(i)
        else:
            first_words.extend((i, w) for w in words)
    return _NameMatcher(
        patterns=[_form_pattern(spelling_by_form[key]) for key in keys],
        pseudonyms=tuple(sorted(pseudonyms_by_form[key]) for key in keys),
        first_words=first_words,
        others=others,
    )


def _find_names(text: str, people: Iterable[KnownPerson]) -> Iterable[Finding]:
    matcher = _name_matcher(tuple((person.name, person.pseudonym) for person in people))
    if matcher is None:
        return
    for start, end, form in matcher.matches(text):
        suggestion, message = matcher.label(form)
        yield Finding("name", start, end, text[start:end], suggestion, message)


# --- Putting it together -----------------------------------------------------


def _finding(kind: str, start: int, end: int, text: str) -> Finding:
    return Finding(kind, start, end, text[start:end], "", _MESSAGES[kind])


def _resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep the longer (then the more specific) of overlapping findings."""
    # Overlaps are rare, so work through runs of mutually overlapping findings
    # rather than comparing every finding with every other.
    findings.sort(key=lambda f: (f.start, -f.end))
    kept: list[Finding] = []
    run: list[Finding] = []
    run_end = 0
    for finding in findings:
        if run and finding.start >= run_end:
            kept.extend(_best_of(run))
            run = []
        if not run:
            run_end = finding.end
        run.append(finding)
        run_end = max(run_end, finding.end)
    kept.extend(_best_of(run))
    kept.sort(key=lambda f: (f.start, f.end))
    return kept


def _best_of(run: list[Finding]) -> list[Finding]:
    if len(run) <= 1:
        return run
    chosen: list[Finding] = []
    for finding in sorted(run, key=lambda f: (f.start - f.end, _KIND_RANK[f.kind], f.start)):
        if all(finding.end <= c.start or c.end <= finding.start for c in chosen):
            chosen.append(finding)
    return chosen


def find_identifiers(
    text: str, people: Iterable[KnownPerson] = (), ignore: Iterable[str] = ()
) -> list[Finding]:
    """Everything in ``text`` that looks like it could identify someone.

    ``people`` are the participants whose real names must not appear;
    ``ignore`` holds strings the author has confirmed are not identifiers
    (compared case-insensitively after NFC normalisation). Findings come
    sorted by start and do not overlap.
    """
    if not text:
        return []
    ignored = {_fold(value) for value in ignore}
    candidates = [
        *_find_hetus(text),
        *_find_emails(text),
        *_find_phones(text),
        *_find_birth_dates(text),
        *_find_names(text, people),
    ]
    # Drop ignored findings before resolving overlaps, so a confirmed string
    # does not hide a real identifier inside it.
    if ignored:
        candidates = [f for f in candidates if _fold(f.text) not in ignored]
    return _resolve_overlaps(candidates)
