"""Writing, submitting and amending field notes.

Every save names the version it was based on. The version is claimed with a
conditional UPDATE (`version = base`), so of two saves based on the same
version exactly one lands and the other is refused with both texts shown;
nothing is overwritten silently, on SQLite or PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from analysis.services import segments_reanchor
from balint.limits import REASON_CHARS
from sessions import audit
from sessions.models import Meeting, Participant

from . import eligibility, identifiers
from .models import (
    MAX_SECTION_CHARS,
    FieldNote,
    IdentifierConfirmation,
    NoteSection,
    NoteVersion,
    SectionRevision,
)
from .text import normalise


class NoteError(Exception):
    """A save that cannot be made; str() is the message for the author."""


class NoteConflict(NoteError):
    """Another save got there first. Carries the note as it is now."""

    def __init__(self, note: FieldNote):
        super().__init__(
            "This note was saved elsewhere (another tab or device) after you opened it. "
            "Both versions are shown: merge them and save again."
        )
        self.note = note


class NoteLocked(NoteError):
    """The note is not in a state that allows this save (submitted, or not the author's)."""


class NoteTooLong(NoteError):
    pass


@dataclass
class IdentifiersFound(NoteError):
    findings: dict[int, list[identifiers.Finding]]

    def __str__(self) -> str:
        count = sum(len(found) for found in self.findings.values())
        return (
            f"The note may contain {count} identifier{'s' if count != 1 else ''} "
            "(names, e-mail addresses, phone numbers, identity codes or birth dates). "
            "Replace each, or confirm it is not an identifier, before submitting."
        )


def ordered_sections(note: FieldNote) -> list[NoteSection]:
    return sorted(note.sections.select_related("case__presenter"), key=lambda s: s.sort_key)


@transaction.atomic
def note_open(*, meeting: Meeting, author) -> FieldNote:
    """The author's note for the session, created on first open, with a
    section for every case presented so far (a case added later gains its
    section the next time the note is opened)."""
    note, _ = FieldNote.objects.get_or_create(meeting=meeting, author=author)
    note_sync_sections(note=note)
    return note


def note_sync_sections(*, note: FieldNote) -> None:
    have_cases = set(note.sections.filter(kind=NoteSection.Kind.CASE).values_list("case_id", flat=True))
    have_kinds = set(note.sections.exclude(kind=NoteSection.Kind.CASE).values_list("kind", flat=True))
    missing = [
        NoteSection(note=note, kind=NoteSection.Kind.CASE, case=case)
        for case in note.meeting.cases.all()
        if case.pk not in have_cases
    ]
    missing += [
        NoteSection(note=note, kind=kind)
        for kind in (NoteSection.Kind.DISCUSSION, NoteSection.Kind.OTHER)
        if kind not in have_kinds
    ]
    if missing:
        NoteSection.objects.bulk_create(missing)
        eligibility.refresh_note(note.pk)  # bulk_create sends no signals


def clean_texts(note: FieldNote, texts: dict) -> dict[int, str]:
    """Map section id -> normalised text, refusing unknown sections and oversize text."""
    section_ids = set(note.sections.values_list("pk", flat=True))
    cleaned: dict[int, str] = {}
    for key, value in texts.items():
        try:
            section_id = int(key)
        except (TypeError, ValueError):
            raise NoteError(f"Unknown section “{key}”.") from None
        if section_id not in section_ids:
            raise NoteError("A section of this note no longer exists; reload the page (your text is kept).")
        if not isinstance(value, str):
            raise NoteError("Section text must be text.")
        text = normalise(value)
        if len(text) > MAX_SECTION_CHARS:
            raise NoteTooLong(
                f"A section can hold at most {MAX_SECTION_CHARS:,} characters; this one has {len(text):,}. "
                "Shorten it or move part of it to another section."
            )
        cleaned[section_id] = text
    return cleaned


def _save(*, note: FieldNote, base_version: int, texts: dict, actor, action: str, reason: str = "",
          allowed_status: str) -> NoteVersion:
    cleaned = clean_texts(note, texts)
    with transaction.atomic():
        claimed = FieldNote.objects.filter(pk=note.pk, version=base_version, status=allowed_status).update(
            version=F("version") + 1, updated_at=timezone.now()
        )
        if not claimed:
            current = FieldNote.objects.get(pk=note.pk)
            if current.status != allowed_status:
                raise NoteLocked(
                    "This note has been submitted; a correction is made as an amendment with a reason."
                    if current.is_submitted
                    else "This note is not submitted yet; amend it only after submitting."
                )
            raise NoteConflict(current)
        note.refresh_from_db()
        saved = NoteVersion.objects.create(
            note=note, version=note.version, action=action, reason=reason, saved_by=actor
        )
        changed = []
        # The conditional UPDATE above holds the note's row lock until commit, so no
        # other save of this note can interleave with these section writes.
        for section in note.sections.filter(pk__in=cleaned).order_by("pk"):
            text = cleaned[section.pk]
            if text != section.text:
                section.text = text
                section.revision += 1
                changed.append(section)
        NoteSection.objects.bulk_update(changed, ["text", "revision"])
        SectionRevision.objects.bulk_create(
            SectionRevision(section=s, note_version=saved, revision=s.revision, text=s.text) for s in changed
        )
    return saved


def note_save(*, note: FieldNote, base_version: int, texts: dict, actor) -> NoteVersion:
    """Save a draft (autosave or the Save button)."""
    if note.author_id != actor.pk:
        raise NoteLocked("Only the author writes a note.")
    return _save(note=note, base_version=base_version, texts=texts, actor=actor,
                 action=NoteVersion.Action.SAVE, allowed_status=FieldNote.Status.DRAFT)


def unconfirmed_identifiers(note: FieldNote) -> dict[int, list[identifiers.Finding]]:
    """The identifier check over every section, less what the author confirmed.

    Three queries (with the note's meeting and group loaded) however many
    participants the course has: their names come as plain (name, pseudonym)
    rows in the model's order, and the one tuple of them serves every section.
    `identifiers` caches the name index it builds by the tuple's contents, so
    an added or renamed participant gets a new one.
    """
    people = tuple(
        identifiers.KnownPerson(name=name, pseudonym=pseudonym)
        for name, pseudonym in Participant.objects.filter(course_id=note.meeting.group.course_id)
        .values_list("name", "pseudonym")
    )
    ignore = list(note.identifier_confirmations.values_list("text", flat=True))
    found = {}
    for section in note.sections.all():
        hits = identifiers.find_identifiers(section.text, people, ignore)
        if hits:
            found[section.pk] = hits
    return found


def note_submit(*, note: FieldNote, base_version: int, texts: dict, actor) -> FieldNote:
    """Save the texts, then lock the note, once no unconfirmed identifier is left.

    The texts are saved as a draft first, so a submission refused for an
    identifier keeps every word.
    """
    if note.author_id != actor.pk:
        raise NoteLocked("Only the author submits a note.")
    saved = note_save(note=note, base_version=base_version, texts=texts, actor=actor)
    found = unconfirmed_identifiers(note)
    if found:
        raise IdentifiersFound(found)
    with transaction.atomic():
        claimed = FieldNote.objects.filter(pk=note.pk, version=saved.version, status=FieldNote.Status.DRAFT).update(
            status=FieldNote.Status.SUBMITTED, submitted_at=timezone.now(), version=F("version") + 1
        )
        if not claimed:
            raise NoteConflict(FieldNote.objects.get(pk=note.pk))
        eligibility.refresh_note(note.pk)  # the conditional UPDATE sends no signals
        note.refresh_from_db()
        NoteVersion.objects.create(note=note, version=note.version, action=NoteVersion.Action.SUBMIT, saved_by=actor)
        audit.record(actor=actor, action="fieldnote.submit", obj=note, course=note.meeting.group.course,
                     summary=f"Submitted field note for {note.meeting} (v{note.version})")
    return note


def note_amend(*, note: FieldNote, base_version: int, texts: dict, reason: str, actor) -> NoteVersion:
    """Correct a submitted note. The reason is kept in the history."""
    if note.author_id != actor.pk:
        raise NoteLocked("Only the author amends a note.")
    reason = normalise(reason).strip()
    if not reason:
        raise NoteError("Say why the note is amended; the reason is kept with the history.")
    if len(reason) > REASON_CHARS:
        raise NoteError(f"Keep the reason to {REASON_CHARS:,} characters (this one has {len(reason):,}); "
                        "the correction itself goes in the note.")
    with transaction.atomic():
        old_texts = dict(note.sections.values_list("pk", "text"))
        saved = _save(note=note, base_version=base_version, texts=texts, actor=actor,
                      action=NoteVersion.Action.AMEND, reason=reason, allowed_status=FieldNote.Status.SUBMITTED)
        # Coded segments follow their text into the amended version, or are flagged for review.
        segments_reanchor(old_texts=old_texts, actor=actor)
        audit.record(actor=actor, action="fieldnote.amend", obj=note, course=note.meeting.group.course,
                     summary=f"Amended field note for {note.meeting} (v{saved.version})",
                     changes={"reason": [None, reason]})
    return saved


def identifier_confirm(*, note: FieldNote, text: str, actor) -> None:
    if note.author_id != actor.pk:
        raise NoteLocked("Only the author confirms findings in a note.")
    text = normalise(text).strip()[:200]
    if text:
        IdentifierConfirmation.objects.get_or_create(note=note, text=text, defaults={"confirmed_by": actor})
