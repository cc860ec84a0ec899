"""REFI-QDA exchange: the codebook as `.qdc`, the whole course as `.qdpx`,
out to NVivo, ATLAS.ti, MAXQDA or QualCoder and back in.

Positions are Unicode code points, end excluded, on both sides, like
CodedSegment offsets; nothing here ever shifts one silently.

Export (what a `.qdpx` holds):

- Users: the coders, the notes' authors and the memos' authors, by username
  (`id`) and name. Participants are never users; they appear only by
  pseudonym.
- CodeBook: each category is a top-level Code with isCodable="false" holding
  its codes; a code's children nest under it (a child whose category differs
  from its parent's still nests under the parent). Description = definition,
  then "When to use:", "When not to use:", "Example:" paragraphs, which an
  import reads back into those fields; a category's Description ends with
  "Counted per case." or "Counted per session.". Active codes, plus retired
  ones that exported segments or case codings still use.
- Sources: each non-empty, research-eligible section of a submitted note is a
  TextSource (`sources/<guid>.txt`, UTF-8, "\\n" line endings) named
  "Group A – session 3 – Case 2 (S3) – coleader1"; its shared coded segments
  (`CodedSegment.objects.research(course)`) are PlainTextSelections, each with
  one Coding naming the code and the coder. Ineligible text is never written;
  the project's Description counts the sections left out (never who).
- Cases: one REFI Case per case presentation that has an exported section,
  with SourceRefs to those sections and CodeRefs for the codes researchers set
  on the case directly. No case per pseudonym: a person-case would gather
  every case a student presented across sessions, which is not the study's
  unit; the pseudonym is the case's (and its sources') "Presenter" variable
  instead, which every tool can group by.
- Variables: Group, Session, Session date, Section (Case / Group discussion /
  Other observations), Presenter. An import reads "Session date" back as the
  new session's date.
- Notes: memos on exported codes, sections and segments (referenced from them
  by NoteRef), and on exported cases and free-standing ones (referenced from
  the project, as CaseType has no NoteRef; the Note's Description says what
  it is about). Memos of double-coding rounds stay out.

The bytes are deterministic for the same data: GUIDs are uuid5 of object ids,
zip entries are sorted with a fixed timestamp, and no "now" is written.

Import (`import_qdpx`): each TextSource becomes one submitted note, authored
by the given user, of a new held session in a group of the course (the text
in the group-discussion section); codes are matched by name or created;
selections become shared segments. Anything that cannot be mapped refuses
the whole file, in one transaction. See `import_qdpx` for the details.
"""

from __future__ import annotations

import bisect
import functools
import io
import re
import stat
import unicodedata
import uuid
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from lxml import etree

from balint.safezip import looks_like_a_bomb
from fieldnotes import identifiers
from fieldnotes.models import MAX_SECTION_CHARS, FieldNote, NoteSection, NoteVersion, SectionRevision
from fieldnotes.services import note_sync_sections
from sessions import audit
from sessions.models import Course, Group, Meeting, Role

from .models import CaseCoding, Category, Code, CodebookChange, CodedSegment, Memo

__all__ = [
    "ImportSummary", "QdaError", "export_qdc", "export_qdpx", "import_qdc", "import_qdpx", "object_guid",
]

PROJECT_NS = "urn:QDA-XML:project:1.0"
CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
PROJECT_SCHEMA = "Project-mrt2019.xsd"
CODEBOOK_SCHEMA = "Codebook-mrt2019.xsd"
PROJECT_LOCATION = "http://schema.qdasoftware.org/versions/Project/v1.0/Project.xsd"
CODEBOOK_LOCATION = "http://schema.qdasoftware.org/versions/Codebook/v1.0/Codebook.xsd"
ORIGIN = "Balint groups"

# Never change: exported GUIDs are uuid5(this, "<kind>:<pk>"), so the same
# object keeps its GUID from one export to the next.
GUID_NAMESPACE = uuid.UUID("656faa61-61d5-4172-9b85-18993d70058c")
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
# Export rows are fetched this many at a time: a whole result fetched at once
# sits in memory beside the objects made from it.
FETCH_CHUNK = 2000

# Refusals checked on the zip's directory before anything is unpacked.
# zipfile never returns more than a member's declared size, so the declared
# sizes bound what gets unpacked.
MAX_ZIP_ENTRIES = 20_000
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_RATIO = 100
RATIO_FLOOR_BYTES = 1024 * 1024

DEFAULT_GROUP = "Imported"
DEFAULT_CATEGORY = "Imported"
DEFAULT_COLOUR = "#1f77b4"

# The characters fieldnotes.text.normalise drops (C0 but tab and newline, DEL,
# C1): PostgreSQL cannot store NUL, and none belongs in a note.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Characters XML 1.0 cannot carry at all.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_ENCODING = re.compile(r"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']+)["']""")
_NS_PREFIX = re.compile(r"\{urn:QDA-XML:(project|codebook):1\.0\}")

_CODE_PARTS = (("when_to_use", "When to use"), ("when_not_to_use", "When not to use"), ("example", "Example"))
_CODE_PART_SPLIT = re.compile(
    r"(?:^|\n\n)(" + "|".join(re.escape(label) for _, label in _CODE_PARTS) + r"): "
)
_UNIT = re.compile(r"(?:^|\n\n)Counted per (case|session)\.\s*$")

VARIABLES = (("Group", "Text"), ("Session", "Integer"), ("Session date", "DateTime"), ("Section", "Text"),
             ("Presenter", "Text"))
# Read back on import as the new session's date (else the source's creationDateTime).
SESSION_DATE = "Session date"


class QdaError(Exception):
    """A REFI-QDA file that cannot be made or taken in; str(e) is a message for the user."""


def object_guid(kind: str, pk) -> str:
    """The stable GUID an exported object carries (e.g. kind "code", "section")."""
    return str(uuid.uuid5(GUID_NAMESPACE, f"{kind}:{pk}"))


# --- Schemas --------------------------------------------------------------------


def schema_dir() -> Path:
    """Where the two REFI-QDA XSDs are: settings.REFI_QDA_SCHEMA_DIR, else
    `analysis/refi_qda/` in the app, else the steering repo's `shared/refi-qda/`."""
    configured = getattr(settings, "REFI_QDA_SCHEMA_DIR", None)
    candidates = [Path(configured)] if configured else []
    candidates += [
        Path(__file__).resolve().parent / "refi_qda",
        Path(settings.BASE_DIR).parent / "shared" / "refi-qda",
    ]
    for candidate in candidates:
        if (candidate / PROJECT_SCHEMA).is_file() and (candidate / CODEBOOK_SCHEMA).is_file():
            return candidate
    raise ImproperlyConfigured(
        f"The REFI-QDA schemas ({PROJECT_SCHEMA}, {CODEBOOK_SCHEMA}) were not found in any of: "
        + ", ".join(str(c) for c in candidates)
    )


@functools.lru_cache(maxsize=2)
def _schema(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(schema_dir() / name), parser))


def schema_errors(root: etree._Element, name: str) -> list[str]:
    """Why `root` does not validate against the named XSD ([] when it does)."""
    schema = _schema(name)
    if schema.validate(root):
        return []
    return [f"line {e.line}: {_NS_PREFIX.sub('', e.message)}" for e in schema.error_log]


# --- Export ---------------------------------------------------------------------


def _xml_text(value) -> str:
    return _NOT_XML.sub("", str(value))


def _add(parent: etree._Element, ns: str, tag: str, text: str | None = None, **attrs) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{tag}")
    for key, value in attrs.items():
        if value is not None:
            element.set(key, _xml_text(value))
    if text is not None:
        element.text = _xml_text(text)
    return element


def _when(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt_timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def code_description(code: Code) -> str:
    parts = [code.definition.strip()] if code.definition.strip() else []
    for field_name, label in _CODE_PARTS:
        value = getattr(code, field_name).strip()
        if value:
            parts.append(f"{label}: {value}")
    return "\n\n".join(parts)


def category_description(category: Category) -> str:
    counted = f"Counted per {category.unit}."
    return f"{category.description.strip()}\n\n{counted}" if category.description.strip() else counted


def _person_name(user) -> str:
    return user.get_full_name() or user.get_username()


@dataclass
class _Codebook:
    categories: list[Category]
    roots: dict[int, list[Code]]  # category pk -> its codes whose parent is not exported
    children: dict[int, list[Code]]  # code pk -> exported child codes
    codes: dict[int, Code]


def _codebook(course: Course, *, keep: set[int] = frozenset()) -> _Codebook:
    """The codebook to export: active codes, the codes in `keep` (used by
    exported data though retired), and the ancestors of both."""
    every = {c.pk: c for c in Code.objects.filter(course=course).order_by("name", "pk")}
    wanted = {pk for pk, c in every.items() if not c.is_retired} | (set(keep) & set(every))
    for pk in list(wanted):
        parent, seen = every[pk].parent_id, {pk}
        while parent is not None and parent in every and parent not in seen:
            wanted.add(parent)
            seen.add(parent)
            parent = every[parent].parent_id
    roots: dict[int, list[Code]] = defaultdict(list)
    children: dict[int, list[Code]] = defaultdict(list)
    for pk, code in every.items():  # already sorted by name
        if pk not in wanted:
            continue
        if code.parent_id in wanted and code.parent_id != pk:
            children[code.parent_id].append(code)
        else:
            roots[code.category_id].append(code)
    categories = list(Category.objects.filter(course=course).order_by("order", "name", "pk"))
    return _Codebook(categories, roots, children, {pk: every[pk] for pk in wanted})


def _write_codes(parent: etree._Element, ns: str, book: _Codebook, memo_refs: dict | None = None) -> None:
    def write(into: etree._Element, code: Code, seen: frozenset) -> None:
        element = _add(into, ns, "Code", guid=object_guid("code", code.pk), name=code.name, isCodable="true",
                       color=code.colour if re.fullmatch(r"#[0-9a-fA-F]{6}", code.colour or "") else None)
        description = code_description(code)
        if description:
            _add(element, ns, "Description", description)
        for memo_guid in (memo_refs or {}).get(("code", code.pk), []):
            _add(element, ns, "NoteRef", targetGUID=memo_guid)
        for child in book.children.get(code.pk, []):
            if child.pk not in seen:
                write(element, child, seen | {child.pk})

    for category in book.categories:
        element = _add(parent, ns, "Code", guid=object_guid("category", category.pk), name=category.name,
                       isCodable="false")
        _add(element, ns, "Description", category_description(category))
        for code in book.roots.get(category.pk, []):
            write(element, code, frozenset({code.pk}))


def export_qdc(course: Course) -> bytes:
    """The course's codebook as a REFI-QDA codebook (.qdc), UTF-8, deterministic."""
    book = _codebook(course)
    if not book.categories:
        raise QdaError(f"The codebook of {course.name} is empty, so there is no codebook to export.")
    root = etree.Element(f"{{{CODEBOOK_NS}}}CodeBook", nsmap={None: CODEBOOK_NS, "xsi": XSI_NS})
    root.set("origin", ORIGIN)
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{CODEBOOK_NS} {CODEBOOK_LOCATION}")
    _write_codes(_add(root, CODEBOOK_NS, "Codes"), CODEBOOK_NS, book)
    return _serialise(root)


def section_label(section: NoteSection) -> str:
    if section.kind == NoteSection.Kind.CASE:
        return f"Case {section.case.order} ({section.case.presenter.pseudonym})"
    return section.get_kind_display()


def source_name(section: NoteSection) -> str:
    meeting = section.note.meeting
    return f"{meeting.group.name} – session {meeting.number} – {section_label(section)} – " \
           f"{section.note.author.get_username()}"


class _Segment(NamedTuple):
    """A coded segment as the .qdpx export writes it (a tuple: a course has tens of thousands)."""

    pk: int
    section_id: int
    start: int
    end: int
    code_id: int
    code_name: str
    coder_id: int
    created_at: datetime


def _memo_about(memo: Memo, *, sections: dict, segments: dict, cases: dict, codes: dict) -> str:
    if memo.code_id:
        return f"Memo on the code “{codes[memo.code_id].name}”."
    if memo.segment_id:
        segment = segments[memo.segment_id]
        return f"Memo on a coded segment ({segment.code_name}) of “{source_name(sections[segment.section_id])}”."
    if memo.section_id:
        return f"Memo on “{source_name(sections[memo.section_id])}”."
    if memo.case_id:
        return f"Memo on the case “{_case_name(cases[memo.case_id])}”."
    return "Memo on the project."


def _case_name(case) -> str:
    meeting = case.meeting
    return f"{meeting.group.name} – session {meeting.number} – Case {case.order} ({case.presenter.pseudonym}): " \
           f"{case.title}"


@dataclass
class _Project:
    """What a .qdpx holds, gathered before any of it is written."""

    sections: list[NoteSection]  # in the order they are written
    by_pk: dict[int, NoteSection]
    left_out: int
    segments_by_section: dict[int, list[_Segment]]
    segments: dict[int, _Segment]
    misfits: int
    cases: dict  # case pk -> CasePresentation
    case_codings: dict[int, list[CaseCoding]]
    book: _Codebook
    memos: list[Memo]
    memo_refs: dict[tuple, list[str]]  # ("code" | "segment" | "section", pk) -> memo GUIDs
    project_memo_refs: list[str]
    users: dict  # pk -> user


def export_qdpx(course: Course, *, include_memos: bool = True) -> bytes:
    """The whole course as a REFI-QDA project (.qdpx): project.qde plus one
    UTF-8 text per exported note section in sources/. Only research-eligible
    text and the shared coding are exported. Same data, same bytes."""
    project = _gather(course, include_memos=include_memos)
    texts = {f"sources/{object_guid('section', s.pk)}.txt": s.text for s in project.sections}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # Streamed into the zip: as one tree, a large course's project.qde
        # takes more memory than all the rest of the export. It sorts before
        # sources/, so the members stay in name order.
        with archive.open(_zip_info("project.qde"), "w") as stream:
            _write_project(_QdeWriter(stream, _project_root(course)), course, project)
        for name in sorted(texts):
            archive.writestr(_zip_info(name), texts[name])
    return buffer.getvalue()


def _gather(course: Course, *, include_memos: bool) -> _Project:
    sections = _research_sections(course)
    by_pk = {s.pk: s for s in sections}
    submitted = (
        NoteSection.objects.filter(note__meeting__group__course=course, note__status=FieldNote.Status.SUBMITTED)
        .exclude(text="").count()
    )
    segments_by_section, segments, misfits = _research_segments(course, by_pk)

    cases = {}
    for section in sections:
        if section.case_id:
            cases.setdefault(section.case_id, section.case)
    case_codings: dict[int, list[CaseCoding]] = defaultdict(list)
    for coding in CaseCoding.objects.filter(case_id__in=list(cases)).order_by("case_id", "code__name", "pk"):
        case_codings[coding.case_id].append(coding)

    book = _codebook(course, keep={s.code_id for s in segments.values()}
                     | {c.code_id for cs in case_codings.values() for c in cs})
    memos = _exported_memos(course, book=book, segments=segments, sections=by_pk, cases=cases) \
        if include_memos else []
    memo_refs, project_memo_refs = _memo_refs(memos)
    return _Project(
        sections=sections, by_pk=by_pk, left_out=submitted - len(sections), segments_by_section=segments_by_section,
        segments=segments, misfits=misfits, cases=cases, case_codings=case_codings, book=book, memos=memos,
        memo_refs=memo_refs, project_memo_refs=project_memo_refs, users=_users(sections, segments, memos),
    )


def _research_sections(course: Course) -> list[NoteSection]:
    sections = list(
        NoteSection.objects.research_eligible()
        .filter(note__meeting__group__course=course)
        .exclude(text="")
        .select_related("note__author", "note__meeting__group", "case__presenter", "case__meeting__group")
        .iterator(chunk_size=FETCH_CHUNK)
    )
    sections.sort(key=lambda s: (s.note.meeting.group.name, s.note.meeting.group_id, s.note.meeting.number,
                                 s.note.author.get_username(), s.sort_key, s.pk))
    return sections


def _research_segments(course: Course, sections: dict[int, NoteSection]) \
        -> tuple[dict[int, list[_Segment]], dict[int, _Segment], int]:
    """The shared coding of `sections`, by section and by pk, and how many of
    its segments were left out because their positions do not fit the text."""
    segments_by_section: dict[int, list[_Segment]] = defaultdict(list)
    segments: dict[int, _Segment] = {}
    misfits = 0
    rows = (
        CodedSegment.objects.research(course)
        .order_by("section_id", "start", "end", "pk")
        .values_list("pk", "section_id", "start", "end", "code_id", "code__name", "coder_id", "created_at")
        .iterator(chunk_size=FETCH_CHUNK)
    )
    for segment in map(_Segment._make, rows):
        section = sections.get(segment.section_id)
        if section is None:
            continue
        if not (0 <= segment.start < segment.end <= len(section.text)):
            misfits += 1  # flagged after an amendment, offsets from an older text
            continue
        segments_by_section[segment.section_id].append(segment)
        segments[segment.pk] = segment
    return segments_by_section, segments, misfits


def _exported_memos(course: Course, *, book: _Codebook, segments: dict, sections: dict, cases: dict) -> list[Memo]:
    """Memos on what is exported, and free-standing ones; not those of double-coding rounds."""
    memos = []
    for memo in Memo.objects.filter(course=course, round__isnull=True).select_related("author").order_by("pk"):
        if ((memo.code_id and memo.code_id in book.codes) or (memo.segment_id and memo.segment_id in segments)
                or (memo.section_id and memo.section_id in sections) or (memo.case_id and memo.case_id in cases)
                or not (memo.code_id or memo.segment_id or memo.section_id or memo.case_id)):
            memos.append(memo)
    return memos


def _memo_refs(memos: list[Memo]) -> tuple[dict[tuple, list[str]], list[str]]:
    """Memo GUIDs by what refers to them, and those only the project can refer
    to (CaseType has no NoteRef)."""
    memo_refs: dict[tuple, list[str]] = defaultdict(list)
    project_memo_refs: list[str] = []
    for memo in memos:
        target = (("code", memo.code_id) if memo.code_id else ("segment", memo.segment_id) if memo.segment_id
                  else ("section", memo.section_id) if memo.section_id else None)
        if target:
            memo_refs[target].append(object_guid("memo", memo.pk))
        else:
            project_memo_refs.append(object_guid("memo", memo.pk))
    return memo_refs, project_memo_refs


def _users(sections: list[NoteSection], segments: dict[int, _Segment], memos: list[Memo]) -> dict:
    users = {s.note.author.pk: s.note.author for s in sections}
    coders = {s.coder_id for s in segments.values()} - users.keys()
    if coders:
        users.update({u.pk: u for u in get_user_model().objects.filter(pk__in=coders).order_by("pk")})
    users.update({m.author.pk: m.author for m in memos})
    return users


class _QdeWriter:
    """Writes project.qde an element at a time, byte for byte what
    pretty-printing the whole tree at once gives.

    New elements go under the open ones (the root, say, and Sources), which
    hold nothing else while they are flushed: serialising that bare tree and
    keeping only the new elements' lines lets libxml2 indent and escape them
    as in the whole tree. (lxml's xmlfile does not indent, and declares the
    namespace again on every element it writes.)"""

    def __init__(self, stream, root: etree._Element):
        self._stream = stream
        self._open = [root]
        bare = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
        stream.write(bare.removesuffix(b"/>\n") + b">\n")  # the empty root's tag, opened instead of closed

    @property
    def parent(self) -> etree._Element:
        return self._open[-1]

    @contextmanager
    def element(self, tag: str) -> Iterator[etree._Element]:
        """An element without attributes, to be given at least one child (its
        tags are written around the children, so it cannot come out as `<tag/>`)."""
        self.flush()
        element = _add(self.parent, PROJECT_NS, tag)
        indent = "  " * len(self._open)
        self._stream.write(f"{indent}<{tag}>\n".encode())
        self._open.append(element)
        yield element
        self.flush()
        self._open.pop()
        self.parent.remove(element)
        self._stream.write(f"{indent}</{tag}>\n".encode())

    def flush(self) -> None:
        """Write the elements added under the innermost open one, and let them go."""
        parent, depth = self.parent, len(self._open)
        if not len(parent):
            return
        bare = etree.tostring(self._open[0], encoding="UTF-8", pretty_print=True)
        # One line per open element before the new elements, and one after
        # them: a start tag holds no raw line break (libxml2 writes &#10;).
        self._stream.write(bare.split(b"\n", depth)[depth].rsplit(b"\n", depth + 1)[0] + b"\n")
        del parent[:]

    def close(self) -> None:
        self.flush()
        self._stream.write(f"</{etree.QName(self._open[0]).localname}>\n".encode())


def _project_root(course: Course) -> etree._Element:
    root = etree.Element(f"{{{PROJECT_NS}}}Project", nsmap={None: PROJECT_NS, "xsi": XSI_NS})
    root.set("name", _xml_text(course.name))
    root.set("origin", ORIGIN)
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{PROJECT_NS} {PROJECT_LOCATION}")
    return root


def _write_project(writer: _QdeWriter, course: Course, project: _Project) -> None:
    ns = PROJECT_NS
    if project.users:
        users_el = _add(writer.parent, ns, "Users")
        for user in sorted(project.users.values(), key=lambda u: (u.get_username(), u.pk)):
            _add(users_el, ns, "User", guid=object_guid("user", user.pk), name=_person_name(user),
                 id=user.get_username())
    if project.book.categories:
        _write_codes(_add(_add(writer.parent, ns, "CodeBook"), ns, "Codes"), ns, project.book, project.memo_refs)
    variables_el = _add(writer.parent, ns, "Variables")
    for name, kind in VARIABLES:
        _add(variables_el, ns, "Variable", guid=object_guid("variable", name), name=name, typeOfVariable=kind)
    if project.cases:
        _write_cases(writer, project)
    if project.sections:
        with writer.element("Sources") as sources_el:
            for section in project.sections:
                _add_source(sources_el, section, project)
                writer.flush()
    if project.memos:
        with writer.element("Notes") as notes_el:
            for memo in project.memos:
                _add_note(notes_el, memo, project)
                writer.flush()
    _add(writer.parent, ns, "Description", _project_description(course, project))
    for memo_guid in project.project_memo_refs:
        _add(writer.parent, ns, "NoteRef", targetGUID=memo_guid)
    writer.close()


def _add_values(into: etree._Element, pairs: list[tuple[str, object]]) -> None:
    ns = PROJECT_NS
    for name, value in pairs:
        value_el = _add(into, ns, "VariableValue")
        _add(value_el, ns, "VariableRef", targetGUID=object_guid("variable", name))
        if isinstance(value, datetime):
            _add(value_el, ns, "DateTimeValue", _when(value))
        else:
            _add(value_el, ns, "IntegerValue" if isinstance(value, int) else "TextValue", str(value))


def _write_cases(writer: _QdeWriter, project: _Project) -> None:
    ns = PROJECT_NS
    sources_of: dict[int, list[NoteSection]] = defaultdict(list)
    for section in project.sections:
        if section.case_id:
            sources_of[section.case_id].append(section)
    ordered = sorted(project.cases.values(), key=lambda c: (c.meeting.group.name, c.meeting.group_id,
                                                            c.meeting.number, c.order, c.pk))
    with writer.element("Cases") as cases_el:
        for case in ordered:
            case_el = _add(cases_el, ns, "Case", guid=object_guid("case", case.pk), name=_case_name(case))
            for coding in project.case_codings.get(case.pk, []):
                _add(case_el, ns, "CodeRef", targetGUID=object_guid("code", coding.code_id))
            _add_values(case_el, [("Group", case.meeting.group.name), ("Session", case.meeting.number),
                                  (SESSION_DATE, case.meeting.starts_at), ("Presenter", case.presenter.pseudonym)])
            for section in sources_of[case.pk]:
                _add(case_el, ns, "SourceRef", targetGUID=object_guid("section", section.pk))
            writer.flush()


def _add_source(parent: etree._Element, section: NoteSection, project: _Project) -> None:
    ns = PROJECT_NS
    source_guid = object_guid("section", section.pk)
    source_el = _add(parent, ns, "TextSource", guid=source_guid, name=source_name(section),
                     plainTextPath=f"internal://{source_guid}.txt",
                     creatingUser=object_guid("user", section.note.author_id),
                     creationDateTime=_when(section.note.submitted_at))
    for segment in project.segments_by_section.get(section.pk, []):
        selection_el = _add(source_el, ns, "PlainTextSelection", guid=object_guid("segment", segment.pk),
                            name=segment.code_name, startPosition=str(segment.start),
                            endPosition=str(segment.end), creatingUser=object_guid("user", segment.coder_id),
                            creationDateTime=_when(segment.created_at))
        coding_el = _add(selection_el, ns, "Coding", guid=object_guid("coding", segment.pk),
                         creatingUser=object_guid("user", segment.coder_id),
                         creationDateTime=_when(segment.created_at))
        _add(coding_el, ns, "CodeRef", targetGUID=object_guid("code", segment.code_id))
        for memo_guid in project.memo_refs.get(("segment", segment.pk), []):
            _add(selection_el, ns, "NoteRef", targetGUID=memo_guid)
    for memo_guid in project.memo_refs.get(("section", section.pk), []):
        _add(source_el, ns, "NoteRef", targetGUID=memo_guid)
    meeting = section.note.meeting
    pairs = [("Group", meeting.group.name), ("Session", meeting.number), (SESSION_DATE, meeting.starts_at),
             ("Section", "Case" if section.case_id else section.get_kind_display())]
    if section.case_id:
        pairs.append(("Presenter", section.case.presenter.pseudonym))
    _add_values(source_el, pairs)


def _add_note(parent: etree._Element, memo: Memo, project: _Project) -> None:
    ns = PROJECT_NS
    note_el = _add(parent, ns, "Note", guid=object_guid("memo", memo.pk),
                   name=memo.title or memo.text.strip().split("\n")[0][:60] or "Memo",
                   creatingUser=object_guid("user", memo.author_id),
                   creationDateTime=_when(memo.created_at), modifiedDateTime=_when(memo.updated_at))
    _add(note_el, ns, "Description", _memo_about(memo, sections=project.by_pk, segments=project.segments,
                                                  cases=project.cases, codes=project.book.codes))
    _add(note_el, ns, "PlainTextContent", memo.text)


def _project_description(course: Course, project: _Project) -> str:
    left_out, misfits = project.left_out, project.misfits
    described = (
        f"Exported from {ORIGIN}: the course “{course.name}”. {_n(len(project.sections), 'note section')} of "
        f"submitted field notes are text sources, with {_n(len(project.segments), 'coded segment')} of the shared "
        f"coding. {_n(left_out, 'section')} of submitted notes {'was' if left_out == 1 else 'were'} left out because "
        "consent does not allow their research use."
    )
    if misfits:
        described += (f" {_n(misfits, 'coded segment')} awaiting review after an amendment "
                      f"{'was' if misfits == 1 else 'were'} left out because the positions no longer fit the text.")
    return described + " Positions count Unicode code points, end excluded; texts are UTF-8 with \"\\n\" line endings."


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _zip_info(name: str) -> zipfile.ZipInfo:
    """A member of fixed timestamp, deflated at zlib's default level (6): the
    one level `ZipFile.open(…, "w")` offers."""
    info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


# --- Reading files safely ---------------------------------------------------------


def parse_xml(data: bytes, what: str) -> etree._Element:
    """Parse a REFI-QDA XML document, refusing DTDs and entities outright."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise QdaError(f"{what} is not UTF-8 text, so it is not a REFI-QDA file this app can read.") from None
    if _DTD.search(text):
        raise QdaError(
            f"{what} declares a document type or entities (<!DOCTYPE …>/<!ENTITY …>). REFI-QDA files never "
            "need them and they can be used to attack a server, so the file was refused and nothing was imported."
        )
    declared = _ENCODING.match(text)
    if declared and declared.group(1).strip().lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise QdaError(f"{what} says it is encoded as {declared.group(1)}; only UTF-8 REFI-QDA files can be read.")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False,
                             dtd_validation=False, remove_blank_text=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        raise QdaError(f"{what} is not well-formed XML ({error}), so nothing was imported.") from None
    info = root.getroottree().docinfo
    if info.internalDTD is not None or info.externalDTD is not None or info.doctype:
        raise QdaError(f"{what} declares a document type, which REFI-QDA files never need; it was refused.")
    return root


def _validate(root: etree._Element, schema: str, what: str) -> None:
    errors = schema_errors(root, schema)
    if errors:
        more = f" (and {len(errors) - 3} more problems)" if len(errors) > 3 else ""
        raise QdaError(f"{what} does not follow the REFI-QDA schema: {'; '.join(errors[:3])}{more}. "
                       "Nothing was imported.")


def _unsafe_name(name: str) -> bool:
    parts = name.split("/")
    return (not name or name.startswith("/") or "\\" in name or "\x00" in name
            or re.match(r"^[A-Za-z]:", name) is not None or ".." in parts)


def _bomb() -> QdaError:
    return QdaError(
        "The .qdpx file would unpack to far more data than a project of field notes holds "
        f"(more than {MAX_UNPACKED_BYTES // (1024 * 1024)} MB, or a member compressed more than "
        f"{MAX_RATIO} to 1), so it looks like a zip bomb and was not opened. Nothing was imported."
    )


def open_qdpx(data: bytes) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    """Open a .qdpx after checking its directory: names, links, sizes, count.

    Returns the archive and its members by case-folded name."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise QdaError("The file is not a .qdpx project (a zip archive with project.qde inside), "
                       "or it is damaged. Nothing was imported.") from None
    if len(members) > MAX_ZIP_ENTRIES:
        raise QdaError(f"The .qdpx file holds {len(members):,} files; at most {MAX_ZIP_ENTRIES:,} are accepted. "
                       "Nothing was imported.")
    by_name: dict[str, zipfile.ZipInfo] = {}
    for member in members:
        for name in {member.filename, member.orig_filename}:
            if _unsafe_name(name):
                raise QdaError(
                    f"The .qdpx file holds a file named “{name[:100]}”, which points outside the project "
                    "(an absolute path, “..” or a backslash). Such names are used to attack servers, so the file "
                    "was refused. Nothing was imported."
                )
        if stat.S_ISLNK(member.external_attr >> 16):
            raise QdaError(f"The .qdpx file holds a symbolic link (“{member.filename[:100]}”), which a project "
                           "never needs; it was refused. Nothing was imported.")
        if member.flag_bits & 0x1:
            raise QdaError("The .qdpx file is password-protected; export it again without a password.")
        key = member.filename.casefold()
        if key in by_name:
            raise QdaError(f"The .qdpx file holds “{member.filename[:100]}” twice; it is damaged. "
                           "Nothing was imported.")
        by_name[key] = member
    if looks_like_a_bomb(members, max_unpacked=MAX_UNPACKED_BYTES, max_ratio=MAX_RATIO,
                         ratio_floor=RATIO_FLOOR_BYTES):
        raise _bomb()
    return archive, by_name


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    try:
        with archive.open(member) as stream:
            data = stream.read(member.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError, ValueError):
        raise QdaError(f"“{member.filename[:100]}” in the .qdpx file could not be unpacked; the file is damaged "
                       "or uses a compression this app does not read. Nothing was imported.") from None
    if len(data) > member.file_size:
        raise _bomb()
    return data


# --- Import: reading the codebook -------------------------------------------------


def _norm_guid(value: str | None) -> str:
    return (value or "").strip().strip("{}").lower()


@dataclass
class _CodeNode:
    guid: str
    name: str
    codable: bool
    colour: str
    description: str
    top: bool
    children: list[_CodeNode] = field(default_factory=list)
    note_refs: list[str] = field(default_factory=list)

    @property
    def is_category(self) -> bool:
        return self.top and not self.codable


def _colour(value: str | None) -> str:
    value = (value or "").strip()
    if re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        return value
    if re.fullmatch(r"#[0-9a-fA-F]{3}", value):
        return "#" + "".join(ch * 2 for ch in value[1:])
    return DEFAULT_COLOUR


def _read_codes(codes_el: etree._Element | None, ns: str) -> tuple[list[_CodeNode], dict[str, _CodeNode]]:
    tops: list[_CodeNode] = []
    by_guid: dict[str, _CodeNode] = {}
    if codes_el is None:
        return tops, by_guid

    def read(element: etree._Element, top: bool) -> _CodeNode:
        name = " ".join((element.get("name") or "").split())
        if not name:
            raise QdaError("The codebook has a code without a name; nothing was imported.")
        if len(name) > 100:
            raise QdaError(f"The code name “{name[:60]}…” is longer than 100 characters; shorten it in the other "
                           "program and export again. Nothing was imported.")
        node = _CodeNode(
            guid=_norm_guid(element.get("guid")), name=name,
            codable=element.get("isCodable", "true").strip() in ("true", "1"),
            colour=_colour(element.get("color")),
            description=element.findtext(f"{{{ns}}}Description") or "", top=top,
        )
        if node.guid in by_guid:
            raise QdaError(f"The codebook gives two codes the same GUID ({node.guid}); the file is damaged. "
                           "Nothing was imported.")
        by_guid[node.guid] = node
        node.note_refs = [_norm_guid(r.get("targetGUID")) for r in element.findall(f"{{{ns}}}NoteRef")]
        node.children = [read(child, False) for child in element.findall(f"{{{ns}}}Code")]
        return node

    tops = [read(element, True) for element in codes_el.findall(f"{{{ns}}}Code")]
    return tops, by_guid


def parse_code_description(text: str) -> dict[str, str]:
    """Split an exported Description back into definition, when to use, when
    not to use and example (all into the definition when unlabelled)."""
    pieces = _CODE_PART_SPLIT.split((text or "").strip())
    fields = {"definition": pieces[0].strip(), "when_to_use": "", "when_not_to_use": "", "example": ""}
    labels = {label: name for name, label in _CODE_PARTS}
    for label, value in zip(pieces[1::2], pieces[2::2]):
        name = labels[label]
        fields[name] = f"{fields[name]}\n\n{value.strip()}".strip()
    return fields


def _parse_category_description(text: str) -> tuple[str, str]:
    text = (text or "").strip()
    match = _UNIT.search(text)
    if match:
        return text[:match.start()].strip(), match.group(1)
    return text, "session"


@dataclass
class _CodebookResult:
    codes: dict[str, Code]  # guid -> the course's code
    created: int = 0
    matched: int = 0
    categories_created: int = 0
    created_names: list[str] = field(default_factory=list)


def _apply_codebook(*, course: Course, tops: list[_CodeNode], actor) -> _CodebookResult:
    """Match each code by name (case-insensitive) among the course's active
    codes, or create it: under its category when it sits in a non-codable
    top-level code, else in the "Imported" category. Existing codes are not
    changed. Nested non-codable codes become ordinary codes (the app's codes
    are all codable; only categories are not)."""
    result = _CodebookResult(codes={})
    existing = {c.name.casefold(): c for c in Code.objects.active().filter(course=course)}
    categories = {c.name.casefold(): c for c in Category.objects.filter(course=course)}
    order = (Category.objects.filter(course=course).aggregate(m=Max("order"))["m"] or 0)

    def category_for(name: str, description: str = "") -> Category:
        nonlocal order
        found = categories.get(name.casefold())
        if found is None:
            text, unit = _parse_category_description(description)
            order += 1
            found = Category.objects.create(course=course, name=name, description=text, unit=unit, order=order)
            categories[name.casefold()] = found
            result.categories_created += 1
        return found

    def take(node: _CodeNode, category, parent: Code | None) -> None:
        code = existing.get(node.name.casefold())
        if code is None:
            if callable(category):  # the "Imported" category, made only when a code needs it
                category = category()
            fields = parse_code_description(node.description)
            code = Code.objects.create(course=course, category=category, parent=parent, name=node.name,
                                       colour=node.colour, created_by=actor, **fields)
            existing[node.name.casefold()] = code
            result.created += 1
            result.created_names.append(node.name)
        else:
            result.matched += 1
        result.codes[node.guid] = code
        for child in node.children:
            take(child, category, code)

    for node in tops:
        if node.is_category:
            category = category_for(node.name, node.description)
            for child in node.children:
                take(child, category, None)
        else:
            take(node, lambda: category_for(DEFAULT_CATEGORY, "Codes brought in from a REFI-QDA file."), None)

    if result.created or result.categories_created:
        names = ", ".join(f"“{n}”" for n in result.created_names[:10])
        more = f" and {len(result.created_names) - 10} more" if len(result.created_names) > 10 else ""
        CodebookChange.objects.create(
            course=course, actor=actor, action="import",
            summary=(f"Imported {result.created} codes from a REFI-QDA file ({result.matched} matched existing "
                     "codes)")[:300],
            why=f"Added: {names}{more}." if names else "",
            details={"created": result.created_names, "matched": result.matched,
                     "categories_created": result.categories_created},
        )
    return result


def import_qdc(*, course: Course, data: bytes, actor) -> int:
    """Add a REFI-QDA codebook's codes to the course's codebook; returns how
    many codes were created (those matching an existing name are left as they are)."""
    if data[:4] == b"PK\x03\x04":
        raise QdaError("This is a zip archive, probably a whole project (.qdpx); import it as a project, "
                       "or export the codebook alone (.qdc) from the other program.")
    root = parse_xml(data, "The codebook file")
    if root.tag != f"{{{CODEBOOK_NS}}}CodeBook":
        raise QdaError("This is not a REFI-QDA codebook (.qdc): its root element is not a CodeBook of "
                       f"{CODEBOOK_NS}. Nothing was imported.")
    _validate(root, CODEBOOK_SCHEMA, "The codebook file")
    tops, _ = _read_codes(root.find(f"{{{CODEBOOK_NS}}}Codes"), CODEBOOK_NS)
    with transaction.atomic():
        return _apply_codebook(course=course, tops=tops, actor=actor).created


# --- Import: a whole project --------------------------------------------------------


@dataclass
class ImportSummary:
    sources: int = 0
    notes: int = 0
    codes_created: int = 0
    codes_matched: int = 0
    segments: int = 0
    memos: int = 0
    group: str = ""
    sessions: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        where = f" in “{self.group}”" if self.group else ""
        if self.sessions:
            first, last = self.sessions[0], self.sessions[-1]
            where += f" (session {first})" if first == last else f" (sessions {first}–{last})"
        parts = [
            f"Imported {self.notes} of {_n(self.sources, 'text source')} as submitted notes{where}, with "
            f"{_n(self.segments, 'coded segment')}; {_n(self.codes_created, 'code')} added to the codebook, "
            f"{self.codes_matched} matched existing ones"
            + (f"; {_n(self.memos, 'memo')}." if self.memos else ".")
        ]
        if self.notes:
            parts.append(
                "The imported notes are not research data yet: no attendance is recorded for their sessions, so "
                "their text stays out of analysis, reports and exports until a leader records who was present and "
                "everyone present has consent in force at the session's date."
            )
        parts += self.warnings
        return " ".join(parts)

    def __str__(self) -> str:
        return self.message


@dataclass
class _Coding:
    code_guid: str
    user_guid: str
    start: int  # in the stored text
    end: int
    file_span: tuple[int, int]  # as the file gave it
    note_refs: list[str]


@dataclass
class _Source:
    guid: str
    name: str
    text: str
    created: datetime | None
    codings: list[_Coding]
    note_refs: list[str]


def _clean_text(text: str) -> tuple[str, list[int]]:
    """The text as a note stores it ("\\r\\n" and "\\r" as "\\n", no control
    characters), and the sorted positions of the code points removed, so each
    selection can be moved by exactly the removals before it."""
    removed: list[int] = []
    out: list[str] = []
    length = len(text)
    for i, ch in enumerate(text):
        if ch == "\r":
            if i + 1 < length and text[i + 1] == "\n":
                removed.append(i)
            else:
                out.append("\n")
        elif _CONTROL.match(ch):
            removed.append(i)
        else:
            out.append(ch)
    return "".join(out), removed


def _shift(position: int, removed: list[int]) -> int:
    return position - bisect.bisect_left(removed, position)


def _parse_when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt_timezone.utc)
    return parsed


def _resolve_text(element: etree._Element, *, what: str, archive, members) -> str | None:
    """A TextSource's (or Note's) plain text: inline, or an internal:// file."""
    inline = element.find(f"{{{PROJECT_NS}}}PlainTextContent")
    if inline is not None:
        return inline.text or ""
    path = (element.get("plainTextPath") or "").strip()
    if not path:
        return None
    if not path.lower().startswith("internal://"):
        raise QdaError(f"{what} refers to a text outside the .qdpx file ({path[:100]}). Export the project again "
                       "with its sources included. Nothing was imported.")
    inner = path[len("internal://"):].lstrip("/")
    member = members.get(f"sources/{inner}".casefold()) or members.get(inner.casefold())
    if member is None:
        raise QdaError(f"The text of {what} ({inner[:100]}) is missing from the .qdpx file. Nothing was imported.")
    raw = _read_member(archive, member)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise QdaError(
            f"The text of {what} is not UTF-8 (an undecodable byte at position {error.start}). Save or export it "
            "as UTF-8 and try again. Nothing was imported."
        ) from None


def _read_source(element: etree._Element, *, archive, members, codes: dict[str, _CodeNode],
                 warnings: list[str], date_variable: str | None = None) -> _Source | None:
    p = f"{{{PROJECT_NS}}}"
    name = (element.get("name") or "").strip() or "unnamed source"
    what = f"the source “{name[:80]}”"
    original = _resolve_text(element, what=what, archive=archive, members=members)
    if original is None:
        raise QdaError(f"{what[0].upper()}{what[1:]} has no text (neither PlainTextContent nor plainTextPath). "
                       "Nothing was imported.")
    text, removed = _clean_text(original)
    if len(text) > MAX_SECTION_CHARS:
        raise QdaError(f"{what[0].upper()}{what[1:]} has {len(text):,} characters; a note section holds at most "
                       f"{MAX_SECTION_CHARS:,}. Nothing was imported.")

    def coding_of(coding_el: etree._Element, start: int, end: int, fallback_user: str | None,
                  refs: list[str]) -> _Coding:
        code_guid = _norm_guid(coding_el.find(f"{p}CodeRef").get("targetGUID"))
        node = codes.get(code_guid)
        if node is None:
            raise QdaError(f"A coding in {what} refers to a code that is not in the codebook ({code_guid}). "
                           "Nothing was imported.")
        if node.is_category:
            raise QdaError(f"A coding in {what} uses “{node.name}”, which is a category (not codable) in the "
                           "codebook. Nothing was imported.")
        new_start, new_end = _shift(start, removed), _shift(end, removed)
        return _Coding(code_guid, _norm_guid(coding_el.get("creatingUser") or fallback_user), new_start, new_end,
                       (start, end), refs)

    codings: list[_Coding] = []
    uncoded = vanished = 0
    for selection in element.findall(f"{p}PlainTextSelection"):
        start, end = int(selection.get("startPosition")), int(selection.get("endPosition"))
        if not (0 <= start < end <= len(original)):
            raise QdaError(
                f"A selection in {what} runs from {start} to {end}, which is empty or outside its text "
                f"(0–{len(original)} characters). Nothing was imported."
            )
        found = selection.findall(f"{p}Coding")
        if not found:
            uncoded += 1
        refs = [_norm_guid(r.get("targetGUID")) for r in selection.findall(f"{p}NoteRef")]
        for coding_el in found:
            coding = coding_of(coding_el, start, end, selection.get("creatingUser"), refs)
            refs = []  # a selection's memos go with its first coding
            if coding.start >= coding.end:
                vanished += 1  # it covered nothing but removed line-break or control characters
                continue
            codings.append(coding)
    for coding_el in element.findall(f"{p}Coding"):  # the whole source coded
        if original:
            coding = coding_of(coding_el, 0, len(original), element.get("creatingUser"), [])
            if coding.start < coding.end:
                codings.append(coding)

    if not text.strip():
        warnings.append(f"The source “{name[:80]}” has no text and was not imported.")
        return None
    if removed:
        control = sum(1 for i in removed if original[i] != "\r")
        if control:
            warnings.append(f"{control} control characters were removed from “{name[:80]}” (selections moved "
                            "with the text).")
    if uncoded:
        warnings.append(f"{uncoded} selections without a code in “{name[:80]}” were skipped.")
    if vanished:
        warnings.append(f"{vanished} codings in “{name[:80]}” covered only line-break or control characters "
                        "and were skipped.")
    if not unicodedata.is_normalized("NFC", text):
        warnings.append(
            f"The text of “{name[:80]}” is not in Unicode normal form C; it was kept exactly as it is (normalising "
            "it would shift coded positions), so the same letters may be stored in two ways."
        )
    return _Source(
        guid=_norm_guid(element.get("guid")), name=name, text=text,
        created=_session_date(element, date_variable) or _parse_when(element.get("creationDateTime")),
        codings=codings,
        note_refs=[_norm_guid(r.get("targetGUID")) for r in element.findall(f"{p}NoteRef")],
    )


def _session_date(element: etree._Element, variable: str | None) -> datetime | None:
    if variable is None:
        return None
    p = f"{{{PROJECT_NS}}}"
    for value in element.findall(f"{p}VariableValue"):
        if _norm_guid(value.find(f"{p}VariableRef").get("targetGUID")) == variable:
            return _parse_when(value.findtext(f"{p}DateTimeValue"))
    return None


def _check_duplicates(sources: list[_Source], codes: dict[str, _CodeNode], users: dict[str, tuple]) -> None:
    for source in sources:
        spans: dict[tuple, list[_Coding]] = defaultdict(list)
        for coding in source.codings:
            spans[(codes[coding.code_guid].name.casefold(), coding.user_guid)].append(coding)
        for (_, user_guid), group in spans.items():
            group.sort(key=lambda c: (c.start, c.end))
            for before, after in zip(group, group[1:]):
                # Overlapping codings are a coder's right (the app allows them);
                # the very same span twice is a duplicate the app refuses too.
                if (after.start, after.end) == (before.start, before.end):
                    who = users.get(user_guid, ("", ""))[0] or "the same coder"
                    raise QdaError(
                        f"In the source “{source.name[:80]}”, {who} applied “{codes[before.code_guid].name}” twice "
                        f"to the same text ({before.file_span[0]}–{before.file_span[1]}). Remove the duplicate "
                        "and export again. Nothing was imported."
                    )


def import_qdpx(*, course: Course, data: bytes, actor, group_name: str = DEFAULT_GROUP,
                author=None) -> ImportSummary:
    """Import a REFI-QDA project (.qdpx) into `course`, all or nothing.

    - Each TextSource becomes one submitted field note by `author` (default:
      `actor`) of a new held session in the group `group_name` (created if
      missing), numbered after the group's existing sessions, dated by the
      source's "Session date" variable, else its creationDateTime, else now
      (consent is judged at that date); the text goes into the
      group-discussion section. Line endings become "\\n" and control
      characters are dropped, and every selection is moved by exactly the
      code points removed before it; text that is not NFC is kept as it is
      (with a warning) rather than shift any position.
    - Codes: see `_apply_codebook` (matched by name, else created).
    - Selections become shared segments (no round): the coder is the course's
      researcher whose username or name the Coding's creatingUser carries,
      else `actor`; the quote is the text at the selection.
    - Notes become memos on the code, note section or segment that refers to
      them; the rest become free-standing memos.
    - Refused with QdaError, nothing written: unsafe or damaged archives and
      XML, schema errors, texts not in UTF-8 or missing, selections outside
      their text, references to unknown codes, codings of a category, and the
      same code applied twice by one coder to exactly the same text.

    Imported notes have no attendance, so they are not research-eligible
    until a leader records attendance (and consent is in force); the
    summary's message says so.
    """
    archive, members = open_qdpx(data)
    project_member = members.get("project.qde")
    if project_member is None:
        raise QdaError("The .qdpx file has no project.qde inside, so it is not a REFI-QDA project. "
                       "Nothing was imported.")
    root = parse_xml(_read_member(archive, project_member), "project.qde")
    if root.tag != f"{{{PROJECT_NS}}}Project":
        raise QdaError(f"project.qde is not a REFI-QDA project: its root element is not a Project of {PROJECT_NS}. "
                       "Nothing was imported.")
    _validate(root, PROJECT_SCHEMA, "project.qde")

    p = f"{{{PROJECT_NS}}}"
    summary = ImportSummary()
    group_name = " ".join((group_name or DEFAULT_GROUP).split()) or DEFAULT_GROUP
    if len(group_name) > 100:
        raise QdaError("A group name can be at most 100 characters.")

    users = {
        _norm_guid(u.get("guid")): ((u.get("name") or "").strip(), (u.get("id") or "").strip())
        for u in root.iterfind(f"{p}Users/{p}User")
    }
    tops, codes = _read_codes(root.find(f"{p}CodeBook/{p}Codes"), PROJECT_NS)

    date_variable = next((_norm_guid(v.get("guid")) for v in root.iterfind(f"{p}Variables/{p}Variable")
                          if v.get("name") == SESSION_DATE and v.get("typeOfVariable") == "DateTime"), None)
    sources: list[_Source] = []
    seen_sources: set[str] = set()
    skipped_kinds: dict[str, int] = defaultdict(int)
    for element in root.iterfind(f"{p}Sources/*"):
        kind = etree.QName(element).localname
        if kind != "TextSource":
            skipped_kinds[kind] += 1
            continue
        summary.sources += 1
        source = _read_source(element, archive=archive, members=members, codes=codes, warnings=summary.warnings,
                              date_variable=date_variable)
        if source is None:
            continue
        if source.guid in seen_sources:
            raise QdaError(f"Two sources share the GUID {source.guid}; the file is damaged. Nothing was imported.")
        seen_sources.add(source.guid)
        sources.append(source)
    if skipped_kinds:
        listed = ", ".join(f"{n} {kind}" for kind, n in sorted(skipped_kinds.items()))
        summary.warnings.append(f"Only text sources can be imported; skipped: {listed}.")
    _check_duplicates(sources, codes, users)
    if root.find(f"{p}Cases") is not None:
        summary.warnings.append("The project's cases were not imported: a case here is a presentation by a "
                                "participant, which a leader records for a session.")

    notes: dict[str, tuple[str, str, str, datetime | None]] = {}
    for element in root.iterfind(f"{p}Notes/{p}Note"):
        name = (element.get("name") or "").strip()
        text = _resolve_text(element, what=f"the note “{name[:80]}”", archive=archive, members=members)
        if text and text.strip():
            cleaned, _ = _clean_text(text)
            notes[_norm_guid(element.get("guid"))] = (name, cleaned, _norm_guid(element.get("creatingUser")),
                                                      _parse_when(element.get("creationDateTime")))

    researchers = list(
        get_user_model().objects.filter(
            memberships__course=course, memberships__role=Role.RESEARCHER, memberships__group__isnull=True,
            is_active=True,
        ).distinct().order_by("pk")
    )

    def match_user(user_guid: str):
        name, username = users.get(user_guid, ("", ""))
        for researcher in researchers:
            if username and researcher.get_username().casefold() == username.casefold():
                return researcher
        for researcher in researchers:
            if name and name.casefold() in (researcher.get_username().casefold(),
                                            researcher.get_full_name().casefold()):
                return researcher
        return None

    unmatched: set[str] = set()

    def coder_for(user_guid: str):
        found = match_user(user_guid)
        if found is None:
            name, username = users.get(user_guid, ("", ""))
            unmatched.add(username or name or "unnamed users")
        return found or actor

    people = [identifiers.KnownPerson(name=p.name, pseudonym=p.pseudonym)
              for p in course.participants.only("name", "pseudonym")]
    for source in sources:
        found = identifiers.find_identifiers(source.text, people)
        if found:
            summary.warnings.append(
                f"“{source.name[:80]}” may contain {len(found)} identifiers (names, e-mail addresses, phone numbers, "
                "identity codes or birth dates); review it before it becomes research data."
            )

    author = author or actor
    project_name = (root.get("name") or "REFI-QDA project").strip()
    with transaction.atomic():
        book = _apply_codebook(course=course, tops=tops, actor=actor)
        summary.codes_created, summary.codes_matched = book.created, book.matched
        group = Group.objects.filter(course=course, name__iexact=group_name).first()
        if group is None:
            group = Group.objects.create(course=course, name=group_name)
        group = Group.objects.select_for_update().get(pk=group.pk)
        summary.group = group.name
        number = Meeting.objects.filter(group=group).aggregate(m=Max("number"))["m"] or 0
        memo_targets: dict[str, dict] = {}
        now = timezone.now()
        for source in sources:
            number += 1
            meeting = Meeting.objects.create(group=group, number=number, starts_at=source.created or now,
                                             duration_minutes=group.default_duration_minutes,
                                             status=Meeting.Status.HELD)
            note = FieldNote.objects.create(
                meeting=meeting, author=author, status=FieldNote.Status.SUBMITTED, submitted_at=now, version=1,
                imported_from=f"{project_name} › {source.name}"[:255],
            )
            note_sync_sections(note=note)
            discussion = note.sections.get(kind=NoteSection.Kind.DISCUSSION)
            discussion.text, discussion.revision = source.text, 1
            discussion.save(update_fields=["text", "revision"])
            version = NoteVersion.objects.create(note=note, version=1, action=NoteVersion.Action.IMPORT,
                                                 saved_by=actor)
            SectionRevision.objects.create(section=discussion, note_version=version, revision=1, text=source.text)
            for coding in source.codings:
                segment = CodedSegment.objects.create(
                    section=discussion, code=book.codes[coding.code_guid], coder=coder_for(coding.user_guid),
                    start=coding.start, end=coding.end, quote=source.text[coding.start:coding.end],
                    section_revision=1,
                )
                summary.segments += 1
                for ref in coding.note_refs:
                    memo_targets.setdefault(ref, {"segment": segment})
            for ref in source.note_refs:
                memo_targets.setdefault(ref, {"section": discussion})
            summary.notes += 1
            summary.sessions.append(number)
        for node in codes.values():
            if not node.is_category and node.guid in book.codes:
                for ref in node.note_refs:
                    memo_targets.setdefault(ref, {"code": book.codes[node.guid]})
        for note_guid, (name, text, user_guid, _) in notes.items():
            Memo.objects.create(course=course, author=match_user(user_guid) or actor, title=name[:200], text=text,
                                **memo_targets.get(note_guid, {}))
            summary.memos += 1
        if unmatched:
            summary.warnings.append(
                f"Codings by {', '.join(sorted(unmatched)[:5])}{' and others' if len(unmatched) > 5 else ''}, "
                f"who are not researchers of this course, were recorded as {actor.get_username()}'s."
            )
        audit.record(
            actor=actor, action="qdpx.import", obj=group, course=course,
            summary=(f"Imported REFI-QDA project “{project_name}” into {group.name}: {summary.notes} notes, "
                     f"{summary.segments} coded segments"),
            changes={key: [None, getattr(summary, key)]
                     for key in ("sources", "notes", "codes_created", "codes_matched", "segments", "memos")},
        )
    return summary
