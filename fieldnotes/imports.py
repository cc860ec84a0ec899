"""Importing a field note that was written outside the app, as a document.

Older courses kept their notes as .txt, .docx or .odt files. An import turns
one file into one co-leader's submitted note for one session. The view (for a
leader or course admin) and `manage.py import_fieldnotes` (for a folder) both
go through `note_import`, so the same rules hold for both.
"""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from sessions import audit
from sessions.models import Meeting, Membership, Role

from . import identifiers
from .documents import DocumentError, read_document
from .models import MAX_SECTION_CHARS, FieldNote, NoteSection, NoteVersion, SectionRevision
from .services import note_sync_sections
from .text import normalise

__all__ = ["ImportRefused", "NoteExists", "import_refusal", "coleaders_of", "display_name", "note_import"]


class ImportRefused(Exception):
    """The file was not imported; str() is the message for the person importing."""


class NoteExists(ImportRefused):
    """The co-leader already has a note for the session. Carries that note."""

    def __init__(self, message: str, note: FieldNote):
        super().__init__(message)
        self.note = note


def display_name(filename: str) -> str:
    """The file's own name, without any client-side folders a browser sent."""
    return re.split(r"[\\/]", filename.strip())[-1][:255] or "unnamed file"


def coleaders_of(meeting: Meeting):
    """The co-leaders of the session's group, as users, by name."""
    return (
        get_user_model()
        .objects.filter(memberships__group=meeting.group, memberships__role=Role.COLEADER, is_active=True)
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


def import_refusal(meeting: Meeting, *, now=None) -> str | None:
    """Why no note can be imported for this session at all, or None."""
    now = now or timezone.now()
    if meeting.status == Meeting.Status.CANCELLED:
        return f"Session {meeting.number} was cancelled, so it has no field notes to import."
    if meeting.status != Meeting.Status.HELD and meeting.starts_at > now:
        return f"Session {meeting.number} has not taken place yet; notes can be imported once it has."
    return None


def _person(user) -> str:
    return user.get_full_name() or user.get_username()


def _refuse_for_author(meeting: Meeting, author) -> None:
    refusal = import_refusal(meeting)
    if refusal:
        raise ImportRefused(refusal)
    is_coleader = Membership.objects.filter(user=author, group=meeting.group, role=Role.COLEADER).exists()
    if not is_coleader:
        raise ImportRefused(
            f"{_person(author)} is not a co-leader of {meeting.group.name}, so a note can't be imported for them."
        )
    existing = FieldNote.objects.filter(meeting=meeting, author=author).first()
    if existing is not None:
        raise _note_exists(meeting, author, existing)


def _note_exists(meeting: Meeting, author, existing: FieldNote) -> NoteExists:
    if existing.imported_from:
        how = f"imported from “{existing.imported_from}”"
    elif existing.is_submitted:
        how = "submitted"
    else:
        how = "a draft"
    return NoteExists(
        f"{_person(author)} already has a field note for session {meeting.number} ({how}). "
        "Nothing was imported, so that note is unchanged.",
        existing,
    )


def _identifier_refusal(meeting: Meeting, name: str, text: str) -> ImportRefused | None:
    """An imported note is submitted at once, so it gets the check a co-leader's
    submission gets; with nobody to confirm findings, any finding refuses it."""
    people = [
        identifiers.KnownPerson(name=p.name, pseudonym=p.pseudonym)
        for p in meeting.group.course.participants.only("name", "pseudonym")
    ]
    found = identifiers.find_identifiers(text, people)
    if not found:
        return None
    shown = []
    for finding in found[:5]:
        message = finding.message[:1].lower() + finding.message[1:]
        shown.append(f"“{finding.text}” ({message})")
    more = f", and {len(found) - 5} more" if len(found) > 5 else ""
    return ImportRefused(
        f"“{name}” may contain identifiers, which research text must not: {'; '.join(shown)}{more}. "
        "Replace them (real names with pseudonyms) in the document and import it again."
    )


def note_import(*, meeting: Meeting, author, filename: str, data: bytes, actor) -> FieldNote:
    """Import one document as `author`'s submitted field note for `meeting`.

    Older notes were not split by case, so the whole text goes into the
    group-discussion section; the case sections exist (empty) like in any
    note, so the note looks and codes like one typed in the app. The note
    starts its history at version 1, an "import" saved by `actor`, or by the
    author when there is no actor (a management command); the audit record
    then names "system" as the actor, and never holds the text.

    Refused with ImportRefused (nothing written) when the session was
    cancelled or has not happened, the author is not a co-leader of the
    group, the author already has a note for the session (NoteExists), the
    file can't be read, its text is too long for a section, or it contains
    identifiers.
    """
    name = display_name(filename)
    _refuse_for_author(meeting, author)
    try:
        text = normalise(read_document(name, data))
    except DocumentError as error:
        raise ImportRefused(str(error)) from error
    if len(text) > MAX_SECTION_CHARS:
        raise ImportRefused(
            f"The text in “{name}” has {len(text):,} characters; a note section can hold at most "
            f"{MAX_SECTION_CHARS:,}. Please shorten it and import it again."
        )
    refusal = _identifier_refusal(meeting, name, text)
    if refusal:
        raise refusal

    with transaction.atomic():
        now = timezone.now()
        try:
            # A savepoint, so a concurrent import of the same note is refused
            # cleanly instead of breaking the outer transaction.
            with transaction.atomic():
                note = FieldNote.objects.create(
                    meeting=meeting, author=author, status=FieldNote.Status.SUBMITTED,
                    submitted_at=now, imported_from=name, version=1,
                )
        except IntegrityError:
            existing = FieldNote.objects.filter(meeting=meeting, author=author).first()
            if existing is None:
                raise
            raise _note_exists(meeting, author, existing) from None
        note_sync_sections(note=note)
        discussion = note.sections.get(kind=NoteSection.Kind.DISCUSSION)
        discussion.text = text
        discussion.revision = 1
        discussion.save(update_fields=["text", "revision"])
        version = NoteVersion.objects.create(
            note=note, version=1, action=NoteVersion.Action.IMPORT, saved_by=actor or author
        )
        SectionRevision.objects.create(section=discussion, note_version=version, revision=1, text=text)
        audit.record(
            actor=actor, action="fieldnote.import", obj=note, course=meeting.group.course,
            summary=f"Imported {author.get_username()}'s field note for {meeting} from “{name}”",
            changes={"author": [None, author.get_username()], "imported_from": [None, name],
                     "characters": [None, len(text)]},
        )
    return note
