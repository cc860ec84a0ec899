"""The demo's field notes: what a new user finds after `seed_demo`."""

import re

import pytest
from django.core.management import call_command

from fieldnotes import demo, services
from fieldnotes.models import FieldNote, IdentifierConfirmation, NoteSection, NoteVersion, SectionRevision
from sessions.management.commands.seed_demo import CASE_TITLES, DEMO_COURSE, STUDENTS
from sessions.models import AuditEvent, Meeting

pytestmark = pytest.mark.django_db

SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def sentences(text: str) -> int:
    return len(SENTENCE_END.findall(text))


@pytest.fixture
def seeded(settings):
    settings.DEBUG = True
    call_command("seed_demo")


def held_meetings(group_name):
    return list(
        Meeting.objects.filter(group__course__name=DEMO_COURSE, group__name=group_name, status=Meeting.Status.HELD)
        .order_by("starts_at")
    )


def test_every_case_title_has_prose_in_both_voices():
    assert set(CASE_TITLES) <= set(demo.CASES)
    for title in CASE_TITLES:
        prose = demo.CASES[title]
        assert len(prose.case) == 2 and prose.case[0] != prose.case[1]


def test_every_held_session_has_both_notes_but_the_latest_tuesday_one(seeded):
    tuesday, thursday = held_meetings("Tuesday group"), held_meetings("Thursday group")
    assert len(tuesday) >= 6 and len(thursday) >= 6
    for meeting in tuesday[:-1] + thursday:
        notes = {n.author.username: n for n in meeting.field_notes.select_related("author")}
        assert set(notes) == {"coleader1", "coleader2"}, meeting
        assert all(n.is_submitted and not n.imported_from for n in notes.values()), meeting

    latest = tuesday[-1]
    draft = latest.field_notes.get()
    assert draft.author.username == "coleader1" and draft.status == FieldNote.Status.DRAFT
    sections = {(s.kind, s.case.order if s.case else None): s.text for s in draft.sections.select_related("case")}
    assert sections[("case", 1)] and sections[("discussion", None)]  # partly written...
    assert any(not text for key, text in sections.items() if key != ("discussion", None))  # ...not all
    assert not FieldNote.objects.filter(meeting__group__course__name=DEMO_COURSE, status="draft").exclude(pk=draft.pk)


def test_submitted_notes_are_full_and_written_in_two_voices(seeded):
    notes = FieldNote.objects.filter(status=FieldNote.Status.SUBMITTED).select_related("meeting")
    assert notes.count() >= 20
    for note in notes:
        sections = list(note.sections.select_related("case__presenter"))
        for section in sections:
            if section.kind == NoteSection.Kind.CASE:
                assert 2 <= sentences(section.text) <= 5, section.text
                assert section.case.presenter.pseudonym in section.text
            elif section.kind == NoteSection.Kind.DISCUSSION:
                assert 3 <= sentences(section.text) <= 6, section.text
        # the history of a note typed in the app: a draft save, the last save, the submission
        assert list(note.versions.order_by("version").values_list("action", flat=True)) == [
            NoteVersion.Action.SAVE, NoteVersion.Action.SAVE, NoteVersion.Action.SUBMIT
        ]
    for meeting in Meeting.objects.filter(field_notes__status="submitted").distinct():
        texts = [
            " ".join(s.text for s in services.ordered_sections(n))
            for n in meeting.field_notes.order_by("author__username")
        ]
        assert len(texts) == 2 and texts[0] != texts[1]


def test_the_texts_pass_the_identifier_check_and_name_no_one(seeded):
    real_names = {part for _, name, _, _ in STUDENTS for part in name.split()}
    for note in FieldNote.objects.all():
        assert services.unconfirmed_identifiers(note) == {}, note
        for section in note.sections.all():
            words = set(re.findall(r"\w+", section.text))
            assert not words & real_names, section.text
            assert "@" not in section.text
    assert not IdentifierConfirmation.objects.exists()
    # The submissions went through the real service, and were audited as such.
    assert AuditEvent.objects.filter(action="fieldnote.submit").count() == FieldNote.objects.filter(
        status="submitted"
    ).count()


def test_a_second_run_changes_nothing(seeded):
    def counts():
        return (
            FieldNote.objects.count(), NoteSection.objects.count(), NoteVersion.objects.count(),
            SectionRevision.objects.count(), AuditEvent.objects.count(),
        )

    before = counts()
    texts = list(NoteSection.objects.order_by("pk").values_list("text", flat=True))
    call_command("seed_demo")
    assert counts() == before
    assert list(NoteSection.objects.order_by("pk").values_list("text", flat=True)) == texts
