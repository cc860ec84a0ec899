"""When a submitted note is amended, coded segments follow their text or are flagged."""

from datetime import timedelta

import pytest
from django.utils import timezone

from analysis.models import Code, CodedSegment
from analysis.services import codebook_start_from_study
from fieldnotes import services as notes
from sessions.models import AuditEvent, Meeting

pytestmark = pytest.mark.django_db

TEXT = "S1 felt invisible on the ward round. 😀 The consultant never looked at her. She wondered whether to speak."


def test_amendment_moves_found_text_and_flags_deleted_text(world):
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - timedelta(days=1),
                                     status=Meeting.Status.HELD)
    note = notes.note_open(meeting=meeting, author=world.coleader1)
    section = note.sections.get(kind="discussion")
    notes.note_submit(note=note, base_version=0, texts={section.pk: TEXT}, actor=world.coleader1)
    section.refresh_from_db()
    codebook_start_from_study(course=world.course, actor=world.researcher1)
    code = Code.objects.get(course=world.course, name="Negative role models")

    def coded(quote):
        start = section.text.index(quote)
        return CodedSegment.objects.create(section=section, code=code, coder=world.researcher1, start=start,
                                           end=start + len(quote), quote=quote, section_revision=section.revision)

    moved = coded("The consultant never looked at her.")
    deleted = coded("She wondered whether to speak.")
    untouched = coded("S1 felt invisible")
    before = CodedSegment.objects.count()

    note.refresh_from_db()
    amended = ("S1 felt invisible on the ward round, she said. 😀 It was a Tuesday. "
               "The consultant never looked at her.")
    notes.note_amend(note=note, base_version=note.version, texts={section.pk: amended},
                     reason="Corrected from memory", actor=world.coleader1)

    section.refresh_from_db()
    for segment in (moved, deleted, untouched):
        segment.refresh_from_db()
    assert CodedSegment.objects.count() == before  # nothing silently dropped
    assert section.text[moved.start:moved.end] == "The consultant never looked at her."
    assert moved.section_revision == section.revision and not moved.needs_review
    assert (untouched.start, untouched.end, untouched.needs_review) == (0, 17, False)
    assert deleted.needs_review and deleted.quote == "She wondered whether to speak."
    assert AuditEvent.objects.filter(action="segments.reanchor").count() == 1
