"""Importing existing notes from documents: the service, the upload page and the command."""

import html
import io
from datetime import timedelta

import docx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from odf.opendocument import OpenDocumentText
from odf.text import P

from fieldnotes import services
from fieldnotes.imports import ImportRefused, NoteExists, note_import
from fieldnotes.models import FieldNote, NoteSection, NoteVersion, SectionRevision
from sessions.models import AuditEvent, CasePresentation, Meeting

pytestmark = pytest.mark.django_db

TEXT = "S1 told of a night on call.\nThe group talked about feeling useless beside an incurable patient."


@pytest.fixture
def held(world):
    meeting = Meeting.objects.create(
        group=world.group, number=1, starts_at=timezone.now() - timedelta(days=3), status=Meeting.Status.HELD
    )
    CasePresentation.objects.create(meeting=meeting, presenter=world.participants[0], order=1, title="On call alone")
    CasePresentation.objects.create(meeting=meeting, presenter=world.participants[1], order=2, title="A mocking round")
    return meeting


def docx_bytes(*paragraphs) -> bytes:
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def odt_bytes(*paragraphs) -> bytes:
    document = OpenDocumentText()
    for paragraph in paragraphs:
        document.text.addElement(P(text=paragraph))
    buffer = io.BytesIO()
    document.write(buffer)
    return buffer.getvalue()


def counts():
    return (
        FieldNote.objects.count(), NoteSection.objects.count(), NoteVersion.objects.count(),
        SectionRevision.objects.count(), AuditEvent.objects.count(),
    )


def import_as(meeting, author, filename, data, actor):
    return note_import(meeting=meeting, author=author, filename=filename, data=data, actor=actor)


# --- The service --------------------------------------------------------------


@pytest.mark.parametrize(
    "filename, data",
    [
        ("notes.txt", TEXT.replace("\n", "\r\n").encode("utf-8")),
        ("notes.docx", docx_bytes(*TEXT.split("\n"))),
        ("notes.odt", odt_bytes(*TEXT.split("\n"))),
    ],
)
def test_each_file_type_becomes_a_submitted_note_with_the_text_in_the_discussion(world, held, filename, data):
    note = import_as(held, world.coleader1, filename, data, world.leader)

    note.refresh_from_db()
    assert note.status == FieldNote.Status.SUBMITTED and note.submitted_at is not None
    assert note.author == world.coleader1 and note.imported_from == filename and note.version == 1
    sections = {(s.kind, s.case_id): s for s in note.sections.all()}
    assert set(sections) == {
        ("case", held.cases.get(order=1).pk), ("case", held.cases.get(order=2).pk),
        ("discussion", None), ("other", None),
    }
    discussion = sections[("discussion", None)]
    assert discussion.text == TEXT and discussion.revision == 1
    assert all(s.text == "" and s.revision == 0 for s in sections.values() if s is not discussion)
    version = note.versions.get()
    assert (version.version, version.action, version.saved_by) == (1, NoteVersion.Action.IMPORT, world.leader)
    revision = SectionRevision.objects.get(note_version=version)
    assert (revision.section, revision.revision, revision.text) == (discussion, 1, TEXT)
    event = AuditEvent.objects.get(action="fieldnote.import")
    assert event.actor == world.leader and event.course == world.course and event.object_id == str(note.pk)
    assert "night on call" not in event.summary and "night on call" not in str(event.changes)


def test_an_imported_note_reads_like_any_submitted_note(client, world, held):
    note = import_as(held, world.coleader1, "old.txt", TEXT.encode(), world.admin)
    client.force_login(world.leader)
    page = client.get(reverse("fieldnotes:note_detail", args=[note.pk])).text
    assert "imported from old.txt" in page and "feeling useless" in page


def test_a_broken_file_is_refused_with_a_clear_message_and_nothing_is_written(world, held):
    before = counts()
    with pytest.raises(ImportRefused, match="couldn't be opened as a Word document"):
        import_as(held, world.coleader1, "notes.docx", b"PK\x03\x04 this is not really a zip", world.leader)
    with pytest.raises(ImportRefused, match="only .txt, .docx and .odt files can be imported"):
        import_as(held, world.coleader1, "notes.pdf", b"%PDF-1.4", world.leader)
    with pytest.raises(ImportRefused, match="is empty"):
        import_as(held, world.coleader1, "notes.txt", b"", world.leader)
    assert counts() == before


def test_a_second_note_for_the_same_co_leader_and_session_is_refused(world, held):
    import_as(held, world.coleader1, "first.txt", b"The first text.", world.leader)
    before = counts()
    with pytest.raises(NoteExists, match="already has a field note for session 1") as refused:
        import_as(held, world.coleader1, "second.txt", b"The second text.", world.leader)
    assert refused.value.note.imported_from == "first.txt"
    assert counts() == before
    assert FieldNote.objects.get().sections.get(kind="discussion").text == "The first text."


def test_a_co_leaders_own_draft_is_never_overwritten_by_an_import(world, held):
    draft = services.note_open(meeting=held, author=world.coleader1)
    before = counts()
    with pytest.raises(NoteExists, match=r"\(a draft\)"):
        import_as(held, world.coleader1, "old.txt", b"Old text.", world.leader)
    assert counts() == before
    draft.refresh_from_db()
    assert draft.status == FieldNote.Status.DRAFT and not draft.imported_from


@pytest.mark.parametrize("who", ["leader", "researcher1", "other_leader", "outsider"])
def test_an_author_who_is_not_a_co_leader_of_the_group_is_refused(world, held, who):
    before = counts()
    with pytest.raises(ImportRefused, match="is not a co-leader of Group A"):
        import_as(held, getattr(world, who), "notes.txt", TEXT.encode(), world.leader)
    assert counts() == before


def test_a_cancelled_or_future_session_is_refused(world):
    cancelled = Meeting.objects.create(
        group=world.group, number=1, starts_at=timezone.now() - timedelta(days=3),
        status=Meeting.Status.CANCELLED, cancel_reason="Strike",
    )
    future = Meeting.objects.create(group=world.group, number=2, starts_at=timezone.now() + timedelta(days=3))
    with pytest.raises(ImportRefused, match="was cancelled"):
        import_as(cancelled, world.coleader1, "notes.txt", TEXT.encode(), world.leader)
    with pytest.raises(ImportRefused, match="has not taken place yet"):
        import_as(future, world.coleader1, "notes.txt", TEXT.encode(), world.leader)
    assert not FieldNote.objects.exists()


def test_a_text_with_a_real_name_is_refused_and_the_pseudonym_offered(world, held):
    before = counts()
    with pytest.raises(ImportRefused, match=r"“Aino Virtanen” \(matches the name of S1\)"):
        import_as(held, world.coleader1, "notes.txt", "Aino Virtanen told of a night on call.".encode(), world.leader)
    assert counts() == before


def test_text_too_long_for_a_section_is_refused(world, held):
    with pytest.raises(ImportRefused, match="can hold at most 100,000"):
        import_as(held, world.coleader1, "notes.txt", ("word " * 30_000).encode(), world.leader)
    assert not FieldNote.objects.exists()


def test_without_an_actor_the_author_saves_it_and_the_audit_says_system(world, held):
    note = import_as(held, world.coleader2, "notes.txt", TEXT.encode(), None)
    assert note.versions.get().saved_by == world.coleader2
    event = AuditEvent.objects.get(action="fieldnote.import")
    assert event.actor is None and event.actor_name == "system"


# --- The upload page ------------------------------------------------------------


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def upload(client, meeting, coleader, filename, data):
    return client.post(
        reverse("fieldnotes:note_import", args=[meeting.pk]),
        {"coleader": coleader.pk, "file": SimpleUploadedFile(filename, data)},
    )


@pytest.mark.parametrize("who", ["leader", "admin"])
def test_leader_or_admin_imports_a_note_and_returns_to_the_session(client, world, held, who):
    client.force_login(getattr(world, who))
    form = client.get(reverse("fieldnotes:note_import", args=[held.pk]))
    assert form.status_code == 200
    page = form.text
    assert 'enctype="multipart/form-data"' in page and "coleader1" in page and "coleader2" in page
    assert "<script>" not in page and "style=" not in page

    response = upload(client, held, world.coleader2, "session1.docx", docx_bytes("Line one.", "Line two."))

    assert response.status_code == 302 and response["Location"] == reverse("sessions:meeting_detail", args=[held.pk])
    note = FieldNote.objects.get(meeting=held, author=world.coleader2)
    assert note.is_submitted and note.sections.get(kind="discussion").text == "Line one.\nLine two."
    assert note.versions.get().saved_by == getattr(world, who)
    followed = text_of(client.get(response["Location"]))
    assert "Imported “session1.docx” as coleader2's field note for session 1." in followed


def test_co_leaders_are_offered_by_full_name(client, world, held):
    world.coleader1.first_name, world.coleader1.last_name = "Pekka", "Saarinen"
    world.coleader1.save()
    client.force_login(world.leader)
    page = client.get(reverse("fieldnotes:note_import", args=[held.pk])).text
    assert ">Pekka Saarinen</option>" in page


def test_a_broken_upload_re_renders_with_the_message_and_saves_nothing(client, world, held):
    client.force_login(world.leader)
    before = counts()
    response = upload(client, held, world.coleader1, "notes.odt", b"PK\x03\x04 not an odt")
    assert response.status_code == 400
    assert "“notes.odt” couldn't be opened as an OpenDocument text file" in text_of(response)
    assert "Nothing was imported" in text_of(response)
    assert counts() == before


def test_a_duplicate_upload_re_renders_with_the_message(client, world, held):
    import_as(held, world.coleader1, "first.txt", b"The first text.", world.leader)
    client.force_login(world.leader)
    before = counts()
    response = upload(client, held, world.coleader1, "again.txt", b"The second text.")
    assert response.status_code == 400 and "already has a field note for session 1" in response.text
    assert counts() == before


def test_only_a_co_leader_of_the_group_can_be_chosen(client, world, held):
    client.force_login(world.leader)
    response = upload(client, held, world.researcher1, "notes.txt", TEXT.encode())
    assert response.status_code == 400 and "Select a valid choice" in response.text
    assert not FieldNote.objects.exists()


def test_an_upload_without_a_file_is_refused(client, world, held):
    client.force_login(world.leader)
    response = client.post(reverse("fieldnotes:note_import", args=[held.pk]), {"coleader": world.coleader1.pk})
    assert response.status_code == 400 and "This field is required" in response.text
    assert not FieldNote.objects.exists()


def test_a_cancelled_session_offers_no_form(client, world):
    cancelled = Meeting.objects.create(
        group=world.group, number=1, starts_at=timezone.now() - timedelta(days=3),
        status=Meeting.Status.CANCELLED, cancel_reason="Strike",
    )
    client.force_login(world.leader)
    page = client.get(reverse("fieldnotes:note_import", args=[cancelled.pk])).text
    assert "was cancelled" in page and "Import note" not in page
    response = upload(client, cancelled, world.coleader1, "notes.txt", TEXT.encode())
    assert response.status_code == 400 and not FieldNote.objects.exists()


def test_anonymous_is_sent_to_login(client, world, held):
    url = reverse("fieldnotes:note_import", args=[held.pk])
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("who", ["coleader1", "researcher1", "outsider", "other_leader", "leader2", "admin2"])
def test_others_get_404(client, world, held, who):
    client.force_login(getattr(world, who))
    assert client.get(reverse("fieldnotes:note_import", args=[held.pk])).status_code == 404
    assert upload(client, held, world.coleader1, "notes.txt", TEXT.encode()).status_code == 404
    assert not FieldNote.objects.exists()


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_wrong_method_is_405(client, world, held, method):
    client.force_login(world.leader)
    assert getattr(client, method)(reverse("fieldnotes:note_import", args=[held.pk])).status_code == 405


# --- The command ------------------------------------------------------------------


def test_the_command_imports_a_folder_and_reports_every_file(world, held, tmp_path):
    second = Meeting.objects.create(
        group=world.group, number=2, starts_at=timezone.now() - timedelta(days=1), status=Meeting.Status.HELD
    )
    (tmp_path / "1_coleader1.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "1_coleader2.docx").write_bytes(docx_bytes("Notes from the second co-leader."))
    (tmp_path / "2_coleader1.odt").write_bytes(odt_bytes("Session two."))
    (tmp_path / "2_coleader2.docx").write_bytes(b"PK\x03\x04 broken")  # unreadable
    (tmp_path / "9_coleader1.txt").write_text("No such session.")
    (tmp_path / "1_nobody.txt").write_text("No such user.")
    (tmp_path / "1_researcher1.txt").write_text("Not a co-leader.")
    (tmp_path / "minutes.txt").write_text("Badly named.")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")  # hidden: not a note
    out = io.StringIO()

    with pytest.raises(CommandError, match="3 imported, 0 skipped, 5 failed"):
        call_command("import_fieldnotes", str(tmp_path), course=world.course.pk, group="Group A", stdout=out)

    report = out.getvalue()
    assert "1_coleader1.txt: imported as coleader1's note for session 1" in report
    assert "2_coleader1.odt: imported" in report and "1_coleader2.docx: imported" in report
    assert "2_coleader2.docx: “2_coleader2.docx” couldn't be opened as a Word document" in report
    assert "9_coleader1.txt: Group A has no session 9" in report
    assert "1_nobody.txt: there is no user “nobody”" in report
    assert "1_researcher1.txt: researcher1 is not a co-leader of Group A" in report
    assert "minutes.txt: name is not <session number>_<co-leader username>" in report
    assert ".DS_Store" not in report
    assert set(FieldNote.objects.values_list("meeting__number", "author__username", "imported_from")) == {
        (1, "coleader1", "1_coleader1.txt"), (1, "coleader2", "1_coleader2.docx"), (2, "coleader1", "2_coleader1.odt"),
    }
    assert not FieldNote.objects.filter(meeting=second, author=world.coleader2).exists()
    assert set(AuditEvent.objects.filter(action="fieldnote.import").values_list("actor_name", flat=True)) == {"system"}
    assert {v.saved_by for v in NoteVersion.objects.all()} == {world.coleader1, world.coleader2}


def test_running_the_command_again_skips_what_it_imported(world, held, tmp_path):
    (tmp_path / "1_coleader1.txt").write_text(TEXT, encoding="utf-8")
    call_command("import_fieldnotes", str(tmp_path), course=world.course.pk, group="Group A", stdout=io.StringIO())
    before = counts()
    out = io.StringIO()
    call_command("import_fieldnotes", str(tmp_path), course=world.course.pk, group="Group A", stdout=out)
    assert "1_coleader1.txt: already imported" in out.getvalue() and "0 imported, 1 skipped, 0 failed" in out.getvalue()
    assert counts() == before


def test_a_dry_run_checks_every_file_and_saves_nothing(world, held, tmp_path):
    (tmp_path / "1_coleader1.txt").write_text(TEXT, encoding="utf-8")
    (tmp_path / "1_coleader2.odt").write_bytes(b"not an odt")
    before = counts()
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 would be imported, 0 skipped, 1 failed. Dry run: nothing was saved."):
        call_command(
            "import_fieldnotes", str(tmp_path), course=world.course.pk, group="Group A", dry_run=True, stdout=out
        )
    assert "1_coleader1.txt: would be imported as coleader1's note for session 1" in out.getvalue()
    assert counts() == before


def test_the_command_refuses_an_unknown_course_group_or_folder(world, tmp_path):
    with pytest.raises(CommandError, match="no course with id 999999"):
        call_command("import_fieldnotes", str(tmp_path), course=999999, group="Group A")
    with pytest.raises(CommandError, match="has no group “Group Q” \\(its groups: “Group A”, “Group B”\\)"):
        call_command("import_fieldnotes", str(tmp_path), course=world.course.pk, group="Group Q")
    with pytest.raises(CommandError, match="is not a folder"):
        call_command("import_fieldnotes", str(tmp_path / "missing"), course=world.course.pk, group="Group A")


def test_the_command_help_documents_the_file_names():
    from fieldnotes.management.commands.import_fieldnotes import Command

    assert "<session number>_<co-leader username>.<txt|docx|odt>" in Command.help
