"""Writes to the codebook and the coding, each in one transaction and recorded.

Codebook changes go to CodebookChange (with a "why", the method's audit
trail); codings go to the course's audit log.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from balint.limits import REASON_CHARS
from fieldnotes.models import NoteSection
from sessions import audit
from sessions.models import CasePresentation, Course

from . import anchoring
from .models import CaseCoding, Category, Code, CodebookChange, CodedSegment, CodingRound, Memo

# The study's codebook (Torppa et al. 2008), offered as a starting template.
STUDY_CODEBOOK = [
    ("Contexts", "case", "What the cases the students presented were about.", [
        ("Patients", "#1f77b4",
         "The case arises from an encounter with a patient the student met or cared for."),
        ("Confusing experiences in medical education", "#aec7e8",
         "The case arises from teaching, supervision, assessment or the hidden curriculum rather than from one patient."),
        ("Privacy and profession", "#17becf",
         "The case arises from a clash between private life and the professional role."),
    ]),
    ("Triggers", "case", "What made the student bring the case to the group.", [
        ("Witnessing injustice", "#d62728", "The student saw a patient, relative or colleague treated unfairly."),
        ("Value conflict", "#ff9896", "What the student was asked or expected to do clashed with their own values."),
        ("Difficult human relationships", "#ff7f0e", "Tension with a patient, relative, colleague or supervisor."),
        ("Incurable patient", "#8c564b", "Meeting a patient who cannot be cured or who is dying."),
        ("Role confusion", "#e377c2", "It was unclear what the student's role, duties or limits were."),
    ]),
    ("Themes", "session", "The main themes the group discussed.", [
        ("Feelings related to patients", "#2ca02c", "Emotions the student had towards or about patients."),
        ("Negative role models", "#98df8a", "Senior staff behaving in ways the student did not want to copy."),
        ("Co-operation with other medical professionals", "#9467bd",
         "Working with nurses, other doctors and allied professions."),
        ("Building professional identity", "#c5b0d5",
         "Reflection on becoming a doctor and on what kind of doctor to be."),
    ]),
]

CODE_FIELDS = ["name", "category", "parent", "definition", "when_to_use", "when_not_to_use", "example", "colour",
               "shortcut"]


class CodingError(Exception):
    """A coding action that cannot be done; str() is the message for the user."""


def _change(*, course: Course, actor, action: str, summary: str, why: str = "", details: dict | None = None):
    CodebookChange.objects.create(course=course, actor=actor, action=action, summary=summary[:300], why=why,
                                  details=details or {})


# --- Codebook -------------------------------------------------------------------


@transaction.atomic
def codebook_start_from_study(*, course: Course, actor) -> list[Code]:
    """Create the study's three categories and twelve codes (only into an empty codebook)."""
    if Code.objects.filter(course=course).exists() or Category.objects.filter(course=course).exists():
        raise CodingError("The codebook is not empty; the study's codes can only start an empty one.")
    codes = []
    for order, (category_name, unit, description, entries) in enumerate(STUDY_CODEBOOK):
        category = Category.objects.create(course=course, name=category_name, description=description, order=order,
                                           unit=unit)
        for i, (name, colour, definition) in enumerate(entries):
            codes.append(Code.objects.create(
                course=course, category=category, name=name, colour=colour, definition=definition,
                shortcut=str(len(codes) + 1) if len(codes) < 9 else "", created_by=actor,
            ))
    _change(course=course, actor=actor, action="template", summary="Started from the study's codebook (12 codes)")
    return codes


@transaction.atomic
def category_save(*, category: Category, actor, why: str = "") -> Category:
    created = category.pk is None
    category.save()
    _change(course=category.course, actor=actor, action="category.create" if created else "category.edit",
            summary=f"{'Added' if created else 'Edited'} category “{category.name}”", why=why)
    return category


@transaction.atomic
def code_save(*, code: Code, before: dict | None, actor, why: str = "") -> Code:
    """Create (before=None) or edit a code; a rename is recorded as such."""
    if code.parent_id and code.parent_id == code.pk:
        raise CodingError("A code cannot be its own parent.")
    if code.parent_id and code.parent.course_id != code.course_id:
        raise CodingError("The parent code belongs to another course.")
    _check_no_parent_cycle(code)
    code.save()
    after = audit.snapshot(code, CODE_FIELDS)
    if before is None:
        _change(course=code.course, actor=actor, action="code.create", summary=f"Added code “{code.name}”", why=why)
    else:
        changes = audit.diff(before, after)
        action = "code.rename" if "name" in changes else "code.edit"
        summary = (f"Renamed code “{before['name']}” to “{code.name}”" if "name" in changes
                   else f"Edited code “{code.name}”")
        _change(course=code.course, actor=actor, action=action, summary=summary, why=why, details=changes)
    return code


def _check_no_parent_cycle(code: Code) -> None:
    seen, parent = {code.pk}, code.parent
    while parent is not None:
        if parent.pk in seen:
            raise CodingError("That parent would make a loop of codes.")
        seen.add(parent.pk)
        parent = parent.parent


@transaction.atomic
def code_merge(*, source: Code, target: Code, actor, why: str) -> int:
    """Move every segment (and case coding) of `source` to `target`, then retire `source`."""
    if source.pk == target.pk:
        raise CodingError("Choose two different codes to merge.")
    if source.course_id != target.course_id:
        raise CodingError("Codes of different courses cannot be merged.")
    if source.is_retired or target.is_retired:
        raise CodingError("Retired codes cannot be merged.")
    moved = CodedSegment.objects.filter(code=source).update(code=target)
    for coding in CaseCoding.objects.filter(code=source).select_related("case"):
        if CaseCoding.objects.filter(case=coding.case, code=target).exists():
            coding.delete()
        else:
            coding.code = target
            coding.save(update_fields=["code"])
    Code.objects.filter(parent=source).update(parent=target)
    source.retired_at = timezone.now()
    source.merged_into = target
    source.save(update_fields=["retired_at", "merged_into"])
    _change(course=source.course, actor=actor, action="code.merge",
            summary=f"Merged “{source.name}” into “{target.name}” ({moved} segments moved)", why=why,
            details={"source": source.pk, "target": target.pk, "segments": moved})
    return moved


@transaction.atomic
def code_split(*, source: Code, new_code: Code, segment_ids: Iterable[int], actor, why: str) -> int:
    """Create `new_code` and move the chosen segments of `source` to it; the rest stay."""
    ids = set(segment_ids)
    chosen = CodedSegment.objects.filter(code=source, pk__in=ids)
    if chosen.count() != len(ids):
        raise CodingError("Some chosen segments are not segments of this code.")
    new_code.course = source.course
    new_code.created_by = actor
    new_code.save()
    moved = chosen.update(code=new_code)
    _change(course=source.course, actor=actor, action="code.split",
            summary=f"Split “{new_code.name}” out of “{source.name}” ({moved} segments moved)", why=why,
            details={"source": source.pk, "new": new_code.pk, "segments": sorted(ids)})
    return moved


@transaction.atomic
def code_retire(*, code: Code, actor, why: str) -> None:
    """No longer offered for coding; its segments and history stay."""
    if code.is_retired:
        raise CodingError("This code is already retired.")
    code.retired_at = timezone.now()
    code.save(update_fields=["retired_at"])
    _change(course=code.course, actor=actor, action="code.retire", summary=f"Retired code “{code.name}”", why=why)


# --- Coding --------------------------------------------------------------------




def _check_span(section: NoteSection, start: int, end: int) -> None:
    length = len(section.text)
    if not (isinstance(start, int) and isinstance(end, int)):
        raise CodingError("Offsets must be whole numbers.")
    if start < 0 or end > length or start >= end:
        raise CodingError(f"The selection {start}–{end} is outside this section's text (0–{length}).")


@transaction.atomic
def segment_create(*, section: NoteSection, code: Code, coder, start: int, end: int,
                   round: CodingRound | None = None) -> CodedSegment:
    """Code the span [start, end) of an eligible section (code points, end excluded)."""
    _check_span(section, start, end)
    if code.is_retired:
        raise CodingError(f"“{code.name}” is retired and no longer used for coding.")
    if code.course_id != section.note.meeting.group.course_id:
        raise CodingError("That code belongs to another course.")
    if round is not None and not round.is_open:
        raise CodingError("This double-coding round is closed.")
    duplicate = CodedSegment.objects.filter(section=section, code=code, coder=coder, start=start, end=end,
                                            round=round)
    if duplicate.exists():
        raise CodingError(f"You have already coded exactly this text as “{code.name}”.")
    segment = CodedSegment.objects.create(
        section=section, code=code, coder=coder, start=start, end=end, quote=section.text[start:end],
        section_revision=section.revision, round=round,
    )
    audit.record(actor=coder, action="segment.create", obj=segment, course=code.course,
                 summary=f"Coded {end - start} characters of section {section.pk} as “{code.name}”")
    return segment


@transaction.atomic
def segment_update(*, segment: CodedSegment, start: int, end: int, code: Code | None = None, actor) -> CodedSegment:
    section = segment.section
    _check_span(section, start, end)
    if code is not None and code.course_id != segment.code.course_id:
        raise CodingError("That code belongs to another course.")
    if code is not None and code.pk != segment.code_id and code.is_retired:
        raise CodingError(f"“{code.name}” is retired and no longer used for coding.")
    before = {"start": segment.start, "end": segment.end, "code": segment.code_id}
    segment.start, segment.end = start, end
    segment.quote = section.text[start:end]
    segment.section_revision = section.revision
    segment.needs_review = False
    if code is not None:
        segment.code = code
    segment.save()
    audit.record(actor=actor, action="segment.update", obj=segment, course=segment.code.course,
                 summary=f"Adjusted a segment of “{segment.code.name}”",
                 changes=audit.diff(before, {"start": start, "end": end, "code": segment.code_id}))
    return segment


@transaction.atomic
def segment_delete(*, segment: CodedSegment, actor) -> None:
    course = segment.code.course
    audit.record(actor=actor, action="segment.delete", obj=segment, course=course,
                 summary=f"Removed a segment of “{segment.code.name}” from section {segment.section_id}")
    segment.delete()


def segments_reanchor(*, old_texts: dict[int, str], actor) -> dict[str, int]:
    """After an amendment: move each segment of the changed sections to its text
    in the new version, or keep it where it was and flag it for the coder.

    Called inside the amendment's transaction. Returns counts by outcome.
    """
    outcome = {"kept": 0, "moved": 0, "flagged": 0}
    sections = NoteSection.objects.filter(pk__in=old_texts).select_related("note__meeting__group__course")
    for section in sections:
        old = old_texts[section.pk]
        if old == section.text:
            continue
        segments = list(CodedSegment.objects.filter(section=section).order_by("pk"))
        if not segments:
            continue
        anchors = anchoring.reanchor_many(old, section.text, [(s.start, s.end, s.quote) for s in segments])
        for segment, anchor in zip(segments, anchors, strict=True):
            if anchor.ok:
                moved = (anchor.start, anchor.end) != (segment.start, segment.end)
                segment.start, segment.end = anchor.start, anchor.end
                segment.quote = section.text[anchor.start:anchor.end]
                segment.section_revision = section.revision
                segment.needs_review = False
                outcome["moved" if moved else "kept"] += 1
            else:
                # Kept with its old offsets and quote: nothing silently dropped.
                segment.needs_review = True
                outcome["flagged"] += 1
        CodedSegment.objects.bulk_update(segments, ["start", "end", "quote", "section_revision", "needs_review"])
        audit.record(actor=actor, action="segments.reanchor", obj=section, course=section.note.meeting.group.course,
                     summary=f"Re-anchored {len(segments)} segments of section {section.pk} after an amendment",
                     changes={k: [None, v] for k, v in outcome.items()})
    return outcome


@transaction.atomic
def case_coding_set(*, case: CasePresentation, code: Code, actor, why: str) -> CaseCoding:
    if code.course_id != case.meeting.group.course_id:
        raise CodingError("That code belongs to another course.")
    if not why.strip():
        raise CodingError("Say why this code is set for the case.")
    if len(why) > REASON_CHARS:
        raise CodingError(f"Keep the reason to {REASON_CHARS:,} characters (this one has {len(why):,}); "
                          "longer thoughts belong in a memo on the case.")
    coding, _ = CaseCoding.objects.update_or_create(case=case, code=code, defaults={"set_by": actor, "why": why})
    audit.record(actor=actor, action="case_coding.set", obj=coding, course=code.course,
                 summary=f"Set “{code.name}” for case {case.pk}", changes={"why": [None, why]})
    return coding


@transaction.atomic
def memo_save(*, memo: Memo, actor) -> Memo:
    memo.save()
    return memo


def next_category_order(course: Course) -> int:
    return (Category.objects.filter(course=course).aggregate(m=Max("order"))["m"] or 0) + 1
