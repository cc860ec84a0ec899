"""Double-coding rounds: set up, close, compare the coders, resolve disagreements.

During an open round each coder's segments belong to the round and are seen
by that coder only (see `access.visible_segments`). Closing the round makes
them readable to the course's researchers and freezes them: they stay in the
round as the record of what each coder did. Only a resolution moves coding
into the shared coding, as copies of the kept coder's segments.

Agreement is computed by `analysis.agreement` over the round's sections that
are still research data (a withdrawal of consent takes a section out of the
comparison too) and over the codes compared: by default every active code of
the course plus any retired code that was used in the round.

Pooled figures treat each section × code pair (section level) or each
character × code pair (character level) as one present/absent decision and
compute the statistics over all of them together. Codes nobody used add only
agreed absences: they raise the pooled percent agreement but not kappa or
alpha's evidence of agreement beyond chance.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Length
from django.utils import timezone

from fieldnotes.models import NoteSection
from sessions import audit
from sessions.models import Course, Role

from . import agreement
from .models import Code, CodedSegment, CodingRound, Memo, Resolution
from .services import CodingError

User = get_user_model()

POOLED = "all codes"


# --- Who and what a round may hold ---------------------------------------------------


def course_researchers(course: Course) -> QuerySet:
    """Users who may code in a round of the course: its active researchers."""
    return User.objects.filter(
        is_active=True,
        memberships__course=course, memberships__role=Role.RESEARCHER, memberships__group__isnull=True,
    ).distinct().order_by("username")


def course_eligible_sections(course: Course) -> QuerySet:
    """The course's research-eligible sections, in reading order (group, session, note, section)."""
    return (
        NoteSection.objects.research_eligible()
        .filter(note__meeting__group__course=course)
        .select_related("note__meeting__group", "note__author", "case__presenter")
        .order_by("note__meeting__group__name", "note__meeting__starts_at", "note__meeting__number",
                  "note__author__username", "kind", "case__order", "pk")
    )


def round_coders(round: CodingRound) -> list:
    """The round's coders in a fixed order (by username): with two, the first is "coder A"."""
    return list(round.coders.order_by("username"))


def default_codes(round: CodingRound) -> QuerySet:
    """The round's chosen codes; else active codes of the course, and retired ones used in the round."""
    used = CodedSegment.objects.filter(round=round).values("code_id")
    chosen = round.codes.all()
    if chosen.exists():
        return chosen.select_related("category").order_by("category__order", "category__name", "name")
    return (
        Code.objects.filter(course_id=round.course_id)
        .filter(Q(retired_at__isnull=True) | Q(pk__in=used))
        .select_related("category")
        .order_by("category__order", "category__name", "name")
    )


# --- Writes ---------------------------------------------------------------------------


@transaction.atomic
def round_create(*, course: Course, name: str, coders: Iterable, sections: Iterable[NoteSection],
                 codes: Iterable[Code] = (), actor) -> CodingRound:
    """Open a round in which `coders` (two or more researchers of the course) code `sections` blind."""
    name = (name or "").strip()
    if not name:
        raise CodingError("Give the round a name.")
    coders = list({c.pk: c for c in coders}.values())
    if len(coders) < 2:
        raise CodingError("A double-coding round needs two or more coders.")
    researcher_ids = set(course_researchers(course).values_list("pk", flat=True))
    strangers = [c.get_username() for c in coders if c.pk not in researcher_ids]
    if strangers:
        raise CodingError(f"Only researchers of this course can code in its rounds: not {', '.join(strangers)}.")
    section_ids = {s.pk for s in sections}
    if not section_ids:
        raise CodingError("Choose at least one note section to code.")
    eligible = set(course_eligible_sections(course).filter(pk__in=section_ids).values_list("pk", flat=True))
    if eligible != section_ids:
        raise CodingError(
            f"{len(section_ids - eligible)} of the chosen sections are not research data of this course "
            "(any more); choose again."
        )
    round = CodingRound.objects.create(course=course, name=name[:200], created_by=actor)
    round.coders.set(coders)
    round.sections.set(sorted(section_ids))
    codes = [c for c in codes if c.course_id == course.pk]
    round.codes.set(codes)
    audit.record(
        actor=actor, action="round.create", obj=round, course=course,
        summary=f"Opened double-coding round “{round.name}”: {len(coders)} coders, {len(section_ids)} sections",
        changes={"coders": [None, sorted(c.get_username() for c in coders)],
                 "sections": [None, sorted(section_ids)]},
    )
    return round


def can_close(round: CodingRound, user) -> bool:
    return round.is_open and (
        round.created_by_id == user.pk or round.coders.filter(pk=user.pk).exists()
    )


@transaction.atomic
def round_close(*, round: CodingRound, actor) -> CodingRound:
    """Close the round: coding in it stops and every coder's segments become comparable."""
    if not (round.created_by_id == actor.pk or round.coders.filter(pk=actor.pk).exists()):
        raise CodingError("Only the round's creator or one of its coders can close it.")
    now = timezone.now()
    # Conditional update: of two people pressing "Close" at once, one closes it.
    claimed = CodingRound.objects.filter(pk=round.pk, status=CodingRound.Status.OPEN).update(
        status=CodingRound.Status.CLOSED, closed_at=now
    )
    if not claimed:
        raise CodingError("This round is already closed.")
    round.status, round.closed_at = CodingRound.Status.CLOSED, now
    audit.record(actor=actor, action="round.close", obj=round, course=round.course,
                 summary=f"Closed double-coding round “{round.name}”",
                 changes={"status": [CodingRound.Status.OPEN, CodingRound.Status.CLOSED]})
    return round


@transaction.atomic
def resolution_record(*, round: CodingRound, section: NoteSection, code: Code, kept_coder, why: str,
                      actor) -> Resolution:
    """Record the agreed coding of `code` in `section`: one coder's segments, or none.

    The kept coder's round segments are copied into the shared coding (round
    None, same offsets, quote and revision, the original coder). An earlier
    resolution of the same section and code is replaced, and the copies it
    made are removed. The why is kept on the resolution and as a memo on the
    round.
    """
    why = (why or "").strip()
    if not why:
        raise CodingError("Say why this coding was agreed; it is kept as a memo on the round.")
    if round.is_open:
        raise CodingError("Disagreements are resolved after the round is closed.")
    if code.course_id != round.course_id:
        raise CodingError("That code belongs to another course.")
    if not round.sections.filter(pk=section.pk).exists():
        raise CodingError("That section is not part of this round.")
    if kept_coder is not None and not round.coders.filter(pk=kept_coder.pk).exists():
        raise CodingError("Keep the coding of one of the round's coders, or say the code does not apply.")

    course = round.course
    previous = Resolution.objects.filter(round=round, section=section, code=code).select_related("kept_coder").first()
    if previous is not None:
        _remove_copies(previous, actor=actor, course=course)
        audit.record(actor=actor, action="resolution.replace", obj=previous, course=course,
                     summary=f"Replaced the resolution of “{code.name}” in section {section.pk} of “{round.name}”")
        previous.delete()

    resolution = Resolution.objects.create(round=round, section=section, code=code, decided_by=actor,
                                           kept_coder=kept_coder, why=why)
    kept = _round_segments(round, section, code, kept_coder)
    copies = CodedSegment.objects.bulk_create(
        CodedSegment(section=section, code=code, coder=s.coder, start=s.start, end=s.end, quote=s.quote,
                     section_revision=s.section_revision, needs_review=s.needs_review, round=None,
                     resolution=resolution)
        for s in kept
    )
    for copy in copies:
        audit.record(actor=actor, action="segment.create", obj=copy, course=course,
                     summary=f"Resolution of “{round.name}”: {copy.end - copy.start} characters of section "
                             f"{section.pk} coded “{code.name}” (by {copy.coder.get_username()})")
    kept_name = kept_coder.get_username() if kept_coder is not None else None
    Memo.objects.create(
        course=course, author=actor, round=round,
        title=f"Resolution: “{code.name}” in {section}"[:200],
        text=(f"Kept {kept_name}'s coding." if kept_name else "The code does not apply.") + f"\n\n{why}",
    )
    audit.record(
        actor=actor, action="resolution.record", obj=resolution, course=course,
        summary=f"Resolved “{code.name}” in section {section.pk} of “{round.name}”: "
                + (f"kept {kept_name}'s coding ({len(copies)} segments)" if kept_name else "the code does not apply"),
        changes={"kept_coder": [previous.kept_coder.get_username() if previous and previous.kept_coder else None,
                                kept_name],
                 "why": [previous.why if previous else None, why]},
    )
    return resolution


def _round_segments(round: CodingRound, section: NoteSection, code: Code, coder) -> list[CodedSegment]:
    if coder is None:
        return []
    return list(CodedSegment.objects.filter(round=round, section=section, code=code, coder=coder)
                .select_related("coder").order_by("start", "end", "pk"))


def _remove_copies(previous: Resolution, *, actor, course: Course) -> None:
    """Delete the shared segments an earlier resolution copied in.

    A copy someone has since adjusted to other text is their work now, and stays.
    """
    copies = previous.copies.filter(quote__in=[s.quote for s in _round_segments(
        previous.round, previous.section, previous.code, previous.kept_coder)])
    for segment in copies:
        audit.record(actor=actor, action="segment.delete", obj=segment, course=course,
                     summary=f"Replaced resolution: removed a segment of “{previous.code.name}” from section "
                             f"{previous.section_id}")
    copies.delete()


# --- Comparison -----------------------------------------------------------------------


@dataclass
class Disagreement:
    """One section × code where the coders differ.

    kind "presence": some coders applied the code there and some did not;
    kind "extent": all applied it, but not to the same characters.
    """

    section: NoteSection
    code: Code
    kind: str
    applied_by: list
    resolution: Resolution | None = None

    @property
    def resolved(self) -> bool:
        return self.resolution is not None


@dataclass
class Comparison:
    round: CodingRound
    coders: list
    codes: list[Code]
    sections: list[NoteSection]
    section_level: list[agreement.CodeAgreement]
    character_level: list[agreement.CodeAgreement]
    pooled_section: agreement.CodeAgreement
    pooled_character: agreement.CodeAgreement
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def rows(self) -> list[tuple[Code, agreement.CodeAgreement, agreement.CodeAgreement]]:
        return list(zip(self.codes, self.section_level, self.character_level))


def round_comparison(*, round: CodingRound, sections: QuerySet | None = None, segments: QuerySet | None = None,
                     codes: Sequence[Code] | None = None) -> Comparison:
    """Agreement per code and pooled, and the disagreements, of a closed round.

    `sections` and `segments` narrow what is read (views pass the request's
    eligible sections and visible segments); by default the round's
    research-eligible sections and all its segments.
    """
    if round.is_open:
        raise CodingError("The round is still open; agreement is computed when it is closed.")
    coders = round_coders(round)
    codes = list(codes) if codes is not None else list(default_codes(round))
    code_ids = [c.pk for c in codes]
    section_qs = sections if sections is not None else NoteSection.objects.research_eligible()
    section_list = list(
        section_qs.filter(coding_rounds=round)
        .annotate(length=Length("text"))
        .select_related("note__meeting__group", "note__author", "case")
        .defer("text")
        .order_by("note__meeting__group__name", "note__meeting__starts_at", "note__meeting__number",
                  "note__author__username", "kind", "case__order", "pk")
    )
    section_ids = [s.pk for s in section_list]
    segment_qs = segments if segments is not None else CodedSegment.objects.all()
    rows = segment_qs.filter(round=round, section_id__in=section_ids, code_id__in=code_ids,
                             coder__in=coders).values_list("coder_id", "code_id", "section_id", "start", "end")

    presence = {c.pk: defaultdict(set) for c in coders}
    spans = {c.pk: defaultdict(lambda: defaultdict(list)) for c in coders}
    for coder_id, code_id, section_id, start, end in rows:
        presence[coder_id][code_id].add(section_id)
        spans[coder_id][code_id][section_id].append((start, end))
    lengths = {s.pk: s.length for s in section_list}

    by_section = agreement.section_level(presence, section_ids, code_ids)
    by_character = agreement.character_level(spans, lengths, code_ids)

    # Pooled: every (section, code) or (character, code) pair is one unit.
    pooled_presence = {c: {POOLED: {(s, k) for k, where in presence[c].items() for s in where}} for c in presence}
    pooled_sections = [(s, k) for k in code_ids for s in section_ids]
    pooled_spans = {c: {POOLED: {(s, k): list(v) for k, by_s in spans[c].items() for s, v in by_s.items()}}
                    for c in spans}
    pooled_lengths = {(s, k): lengths[s] for k in code_ids for s in section_ids}
    pooled_section = agreement.section_level(pooled_presence, pooled_sections, [POOLED])[0]
    pooled_character = agreement.character_level(pooled_spans, pooled_lengths, [POOLED])[0]

    comparison = Comparison(
        round=round, coders=coders, codes=codes, sections=section_list,
        section_level=by_section, character_level=by_character,
        pooled_section=pooled_section, pooled_character=pooled_character,
    )
    comparison.disagreements = _disagreements(round, coders, codes, section_list, presence, spans)
    return comparison


def _coverage(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The union of spans as sorted, non-overlapping, non-touching intervals."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def _disagreements(round, coders, codes, sections, presence, spans) -> list[Disagreement]:
    resolutions = {
        (r.section_id, r.code_id): r
        for r in Resolution.objects.filter(round=round).select_related("decided_by", "kept_coder")
    }
    found = []
    for section in sections:
        for code in codes:
            applied = [c for c in coders if section.pk in presence[c.pk].get(code.pk, ())]
            if not applied:
                continue
            if len(applied) < len(coders):
                kind = "presence"
            else:
                covered = {_clip(_coverage(spans[c.pk][code.pk][section.pk]), section.length) for c in coders}
                if len(covered) == 1:
                    continue
                kind = "extent"
            found.append(Disagreement(section=section, code=code, kind=kind, applied_by=applied,
                                      resolution=resolutions.get((section.pk, code.pk))))
    return found


def _clip(intervals: list[tuple[int, int]], length: int) -> tuple:
    return tuple((max(a, 0), min(b, length)) for a, b in intervals if min(b, length) > max(a, 0))


def coverage(spans: Iterable[tuple[int, int]], length: int) -> tuple:
    """The characters of a text of `length` that the spans cover, as merged intervals."""
    return _clip(_coverage(list(spans)), length)


def disagreements(round: CodingRound, *, sections: QuerySet | None = None, segments: QuerySet | None = None,
                  codes: Sequence[Code] | None = None) -> list[Disagreement]:
    """Each section × code of a closed round where the coders differ, with its resolution if any."""
    return round_comparison(round=round, sections=sections, segments=segments, codes=codes).disagreements


def highlight(text: str, spans: Iterable[tuple[int, int]], others: Iterable[tuple[int, int]] = ()) -> list[dict]:
    """Cut `text` into pieces for side-by-side display.

    Each piece says whether this coder's segments cover it (`marked`) and
    whether the other coders' coverage differs there (`differs`): marked here
    but not by every other coder, or marked by another coder but not here.
    `others` is a list of the other coders' span lists.
    """
    length = len(text)
    mine = _clip(_coverage(list(spans)), length)
    theirs = [_clip(_coverage(list(s)), length) for s in others]
    cuts = {0, length}
    for intervals in (mine, *theirs):
        for a, b in intervals:
            cuts.update((a, b))
    points = sorted(cuts)

    def covered(intervals, position):
        return any(a <= position < b for a, b in intervals)

    pieces: list[dict] = []
    for a, b in zip(points, points[1:]):
        if a >= b:
            continue
        marked = covered(mine, a)
        other_marks = [covered(t, a) for t in theirs]
        differs = any(m != marked for m in other_marks)
        if pieces and pieces[-1]["marked"] == marked and pieces[-1]["differs"] == differs:
            pieces[-1]["text"] += text[a:b]
        else:
            pieces.append({"text": text[a:b], "marked": marked, "differs": differs})
    return pieces
