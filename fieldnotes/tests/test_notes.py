"""Writing, saving, submitting, amending and reading field notes."""

import json
import unicodedata
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from fieldnotes import services
from fieldnotes.models import MAX_SECTION_CHARS, FieldNote, NoteSection, NoteVersion, SectionRevision
from sessions.models import AuditEvent, CasePresentation, Meeting

pytestmark = pytest.mark.django_db


def open_note(meeting, author):
    return services.note_open(meeting=meeting, author=author)


def section(note, kind):
    return note.sections.get(kind=kind)


def autosave(client, note, version, sections):
    return client.post(
        reverse("fieldnotes:note_autosave", args=[note.pk]),
        data=json.dumps({"version": version, "sections": {str(k): v for k, v in sections.items()}}),
        content_type="application/json",
    )


# --- Opening ------------------------------------------------------------------


def test_write_link_opens_my_note_with_a_section_per_case_and_the_discussion(client, world, held):
    client.force_login(world.coleader1)
    response = client.get(reverse("fieldnotes:note_write", args=[held.pk]))
    note = FieldNote.objects.get(meeting=held, author=world.coleader1)
    assert response["Location"] == reverse("fieldnotes:note_edit", args=[note.pk])
    page = client.get(response["Location"]).text
    assert "Case 1: On call alone" in page and "presented by S1" in page
    assert "Group discussion" in page and "what made the student bring it" in page
    assert sorted(note.sections.values_list("kind", flat=True)) == ["case", "discussion", "other"]


def test_a_case_added_later_gains_its_section(client, world, held):
    note = open_note(held, world.coleader1)
    CasePresentation.objects.create(meeting=held, presenter=world.participants[1], order=2, title="The mocking consultant")
    client.force_login(world.coleader1)
    assert "The mocking consultant" in client.get(reverse("fieldnotes:note_edit", args=[note.pk])).text
    assert note.sections.filter(kind="case").count() == 2


def test_no_note_before_the_session_starts_or_for_a_cancelled_one(client, world):
    future = Meeting.objects.create(group=world.group, number=5, starts_at=timezone.now() + timedelta(days=1))
    cancelled = Meeting.objects.create(group=world.group, number=6, starts_at=timezone.now() - timedelta(days=1),
                                       status=Meeting.Status.CANCELLED, cancel_reason="Strike")
    client.force_login(world.coleader1)
    for meeting in (future, cancelled):
        response = client.get(reverse("fieldnotes:note_write", args=[meeting.pk]))
        assert response["Location"] == reverse("sessions:meeting_detail", args=[meeting.pk])
    assert not FieldNote.objects.exists()


def test_leader_and_researcher_cannot_open_a_note_to_write(client, world, held):
    for user in (world.leader, world.researcher1, world.admin, world.outsider):
        client.force_login(user)
        assert client.get(reverse("fieldnotes:note_write", args=[held.pk])).status_code == 404
    assert not FieldNote.objects.exists()


# --- Saving -------------------------------------------------------------------


def test_autosave_stores_normalised_text_and_keeps_every_version(client, world, held):
    note = open_note(held, world.coleader1)
    discussion = section(note, "discussion")
    client.force_login(world.coleader1)
    decomposed = "Ae\u0301 line one\r\nline two\rline three 👩‍⚕️ äiti"
    response = autosave(client, note, 0, {discussion.pk: decomposed})
    assert response.status_code == 200 and response.json()["version"] == 1
    discussion.refresh_from_db()
    assert discussion.text == unicodedata.normalize("NFC", "Ae\u0301 line one\nline two\nline three 👩‍⚕️ äiti")
    assert discussion.revision == 1
    assert autosave(client, note, 1, {discussion.pk: "second"}).json()["version"] == 2
    assert list(SectionRevision.objects.filter(section=discussion).values_list("text", flat=True)) == [
        discussion.text, "second",
    ]
    assert list(note.versions.order_by("version").values_list("version", "saved_by")) == [
        (1, world.coleader1.pk), (2, world.coleader1.pk),
    ]


def test_a_save_based_on_an_old_version_is_refused_with_both_texts(client, world, held):
    note = open_note(held, world.coleader1)
    discussion = section(note, "discussion")
    client.force_login(world.coleader1)
    assert autosave(client, note, 0, {discussion.pk: "from the laptop"}).status_code == 200
    response = autosave(client, note, 0, {discussion.pk: "from the phone"})  # the phone had version 0 open
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "conflict" and body["version"] == 1
    assert body["sections"][str(discussion.pk)] == "from the laptop"
    discussion.refresh_from_db()
    assert discussion.text == "from the laptop"


def test_plain_form_save_conflict_shows_both_texts_side_by_side(client, world, held):
    note = open_note(held, world.coleader1)
    discussion = section(note, "discussion")
    client.force_login(world.coleader1)
    autosave(client, note, 0, {discussion.pk: "saved in another tab"})
    response = client.post(reverse("fieldnotes:note_edit", args=[note.pk]),
                           {"version": 0, f"section-{discussion.pk}": "typed here"})
    assert response.status_code == 409
    assert "typed here" in response.text and "saved in another tab" in response.text
    assert "Saved elsewhere (version 1)" in response.text
    assert 'name="version" value="1"' in response.text  # the next save lands on top of what it has seen


def test_oversize_and_malformed_saves_are_refused_and_change_nothing(client, world, held):
    note = open_note(held, world.coleader1)
    discussion = section(note, "discussion")
    client.force_login(world.coleader1)
    too_long = autosave(client, note, 0, {discussion.pk: "x" * (MAX_SECTION_CHARS + 1)})
    assert too_long.status_code == 413 and "at most 100,000 characters" in too_long.json()["message"]
    bad_json = client.post(reverse("fieldnotes:note_autosave", args=[note.pk]), data="{not json",
                           content_type="application/json")
    assert bad_json.status_code == 400
    wrong_shape = client.post(reverse("fieldnotes:note_autosave", args=[note.pk]),
                              data=json.dumps({"version": "x", "sections": {}}), content_type="application/json")
    assert wrong_shape.status_code == 400
    other = open_note(held, world.coleader2)
    foreign = autosave(client, note, 0, {section(other, "discussion").pk: "into someone else's note"})
    assert foreign.status_code == 400
    note.refresh_from_db()
    assert note.version == 0 and not NoteVersion.objects.exists()
    assert not NoteSection.objects.exclude(text="").exists()


def test_nul_and_control_characters_are_dropped(world, held):
    note = open_note(held, world.coleader1)
    discussion = section(note, "discussion")
    services.note_save(note=note, base_version=0, texts={discussion.pk: "a\x00b\x07c\td"}, actor=world.coleader1)
    discussion.refresh_from_db()
    assert discussion.text == "abc\td"


def test_expired_login_gets_401_json_not_a_redirect(client, world, held):
    note = open_note(held, world.coleader1)
    response = autosave(client, note, 0, {section(note, "discussion").pk: "typed while logged out"})
    assert response.status_code == 401
    assert response.json()["error"] == "login_required"
    assert not NoteVersion.objects.exists()


def test_only_the_author_saves(client, world, held):
    note = open_note(held, world.coleader1)
    client.force_login(world.coleader2)
    assert autosave(client, note, 0, {section(note, "discussion").pk: "not mine"}).status_code == 404
    assert not NoteVersion.objects.exists()


def test_a_coleader_removed_from_the_group_can_no_longer_write(client, world, held):
    note = open_note(held, world.coleader1)
    world.coleader1.memberships.filter(group=world.group).delete()
    client.force_login(world.coleader1)
    assert autosave(client, note, 0, {section(note, "discussion").pk: "still here?"}).status_code == 404


# --- Identifier check and submitting -------------------------------------------


def test_submit_is_refused_while_a_real_name_is_in_the_text_and_the_text_is_kept(client, world, held):
    note = open_note(held, world.coleader1)
    case = section(note, "case")
    client.force_login(world.coleader1)
    response = client.post(reverse("fieldnotes:note_submit", args=[note.pk]),
                           {"version": 0, f"section-{case.pk}": "Aino Virtanen told us about a night on call."})
    assert response.status_code == 400
    assert "“Aino Virtanen”" in response.text and "S1" in response.text
    note.refresh_from_db()
    case.refresh_from_db()
    assert note.status == "draft" and case.text.startswith("Aino Virtanen")


def test_autosave_reports_identifiers_with_code_point_offsets(client, world, held):
    note = open_note(held, world.coleader1)
    case = section(note, "case")
    client.force_login(world.coleader1)
    text = "😀 Helmi Mäkinen, helmi@example.org, 040 123 4567, 131052-308T"
    findings = autosave(client, note, 0, {case.pk: text}).json()["findings"]
    kinds = {f["kind"] for f in findings}
    assert kinds == {"name", "email", "phone", "hetu"}
    name = next(f for f in findings if f["kind"] == "name")
    assert (name["start"], name["end"], name["suggestion"]) == (2, 15, "S3")
    assert text[name["start"]:name["end"]] == "Helmi Mäkinen"


def test_confirmed_finding_no_longer_blocks_submission(client, world, held):
    note = open_note(held, world.coleader1)
    case = section(note, "case")
    services.note_save(note=note, base_version=0, texts={case.pk: "S1 met Dr Eero on the ward."},
                       actor=world.coleader1)
    client.force_login(world.coleader1)
    assert services.unconfirmed_identifiers(note)  # "Eero" is S2's first name
    client.post(reverse("fieldnotes:identifier_confirm", args=[note.pk]), {"text": "Eero"})
    response = client.post(reverse("fieldnotes:note_submit", args=[note.pk]), {"version": 1})
    assert response["Location"] == reverse("fieldnotes:note_detail", args=[note.pk])
    note.refresh_from_db()
    assert note.status == "submitted" and note.submitted_at is not None
    assert AuditEvent.objects.filter(action="fieldnote.submit").count() == 1


def test_submitted_note_is_locked_against_saves(client, world, held):
    note = open_note(held, world.coleader1)
    services.note_submit(note=note, base_version=0, texts={}, actor=world.coleader1)
    client.force_login(world.coleader1)
    response = autosave(client, note, note.version, {section(note, "discussion").pk: "late edit"})
    assert response.status_code == 409 and response.json()["error"] == "locked"
    assert client.get(reverse("fieldnotes:note_edit", args=[note.pk]))["Location"] == reverse(
        "fieldnotes:note_detail", args=[note.pk]
    )


# --- Amending -----------------------------------------------------------------


def submitted_discussion(meeting, author, text):
    """The author's note of `meeting`, submitted with `text` in its discussion section."""
    note = open_note(meeting, author)
    discussion = section(note, "discussion")
    services.note_submit(note=note, base_version=0, texts={discussion.pk: text}, actor=author)
    note.refresh_from_db()
    return note, discussion


def test_amendment_needs_a_reason_and_is_kept_in_the_history(client, world, held):
    note, discussion = submitted_discussion(held, world.coleader1, "The group talked about fear.")
    client.force_login(world.coleader1)
    url = reverse("fieldnotes:note_amend", args=[note.pk])
    refused = client.post(url, {"version": note.version, f"section-{discussion.pk}": "Changed", "reason": " "})
    assert refused.status_code == 400 and "Say why" in refused.text
    discussion.refresh_from_db()
    assert discussion.text == "The group talked about fear."

    done = client.post(url, {"version": note.version, f"section-{discussion.pk}": "The group talked about shame.",
                             "reason": "Misremembered the word"})
    assert done.status_code == 302
    discussion.refresh_from_db()
    assert discussion.text == "The group talked about shame." and discussion.revision == 2
    amendment = note.versions.get(action="amend")
    assert amendment.reason == "Misremembered the word"
    page = client.get(reverse("fieldnotes:note_detail", args=[note.pk])).text
    assert "Misremembered the word" in page
    diff = client.get(reverse("fieldnotes:note_version", args=[note.pk, amendment.version])).text
    assert "<del>fear</del>" in diff and "<ins>shame</ins>" in diff


def test_an_overlong_amendment_reason_is_refused_and_the_corrected_text_kept_on_the_page(client, world, held):
    from balint.limits import REASON_CHARS

    note, discussion = submitted_discussion(held, world.coleader1, "The group talked about fear.")
    client.force_login(world.coleader1)
    refused = client.post(reverse("fieldnotes:note_amend", args=[note.pk]), {
        "version": note.version, f"section-{discussion.pk}": "The group talked about shame.",
        "reason": "r" * (REASON_CHARS + 1),
    })
    assert refused.status_code == 400 and f"Keep the reason to {REASON_CHARS:,} characters" in refused.text
    assert "The group talked about shame." in refused.text  # nothing typed is lost
    discussion.refresh_from_db()
    assert discussion.text == "The group talked about fear."


def test_history_lists_every_save_for_the_author_only(client, world, held):
    note = open_note(held, world.coleader1)
    discussion = section(note, "discussion")
    for version, text in enumerate(["one", "one two", "one two three"]):
        services.note_save(note=note, base_version=version, texts={discussion.pk: text}, actor=world.coleader1)
    client.force_login(world.coleader1)
    page = client.get(reverse("fieldnotes:note_history", args=[note.pk])).text
    assert page.count("Saved</td>") == 3
    for user in (world.coleader2, world.leader):
        client.force_login(user)
        assert client.get(reverse("fieldnotes:note_history", args=[note.pk])).status_code == 404


# --- Who reads what -----------------------------------------------------------


def test_coleaders_write_blind_until_both_have_submitted(client, world, held):
    mine = open_note(held, world.coleader1)
    services.note_save(note=mine, base_version=0, texts={section(mine, "discussion").pk: "My view of the session"},
                       actor=world.coleader1)
    url = reverse("fieldnotes:note_detail", args=[mine.pk])
    client.force_login(world.coleader2)
    assert client.get(url).status_code == 404  # a draft: nobody else reads it
    services.note_submit(note=mine, base_version=1, texts={}, actor=world.coleader1)
    assert client.get(url).status_code == 404  # submitted, but coleader2 has not submitted theirs
    session_page = client.get(reverse("sessions:meeting_detail", args=[held.pk])).text
    assert "The other co-leader has started a note" in session_page and "My view" not in session_page
    theirs = open_note(held, world.coleader2)
    services.note_submit(note=theirs, base_version=0, texts={}, actor=world.coleader2)
    assert "My view of the session" in client.get(url).text


def test_leader_reads_submitted_notes_of_own_group_only(client, world, held):
    note = open_note(held, world.coleader1)
    url = reverse("fieldnotes:note_detail", args=[note.pk])
    client.force_login(world.leader)
    assert client.get(url).status_code == 404  # draft
    services.note_submit(note=note, base_version=0, texts={}, actor=world.coleader1)
    assert client.get(url).status_code == 200
    for user in (world.other_leader, world.leader2, world.admin, world.admin2, world.outsider):
        client.force_login(user)
        assert client.get(url).status_code == 404, user


def test_researcher_sees_only_research_eligible_sections_and_never_a_real_name(client, world, held):
    from sessions.models import Attendance, Consent

    s1, s2, _ = world.participants
    Consent.objects.create(participant=s1, form=world.form, form_version=1, decision="given", method="paper",
                           decided_at=held.starts_at - timedelta(days=1), recorded_by=world.leader)
    Attendance.objects.create(meeting=held, participant=s1, present=True)
    Attendance.objects.create(meeting=held, participant=s2, present=True)  # S2 never consented
    note = open_note(held, world.coleader1)
    services.note_submit(note=note, base_version=0, actor=world.coleader1, texts={
        section(note, "case").pk: "S1 described a night alone on call.",
        section(note, "discussion").pk: "S2 spoke about a consultant's cruelty.",
    })
    client.force_login(world.researcher1)
    page = client.get(reverse("fieldnotes:note_detail", args=[note.pk])).text
    assert "S1 described a night alone on call." in page
    assert "consultant's cruelty" not in page
    assert "Not everyone present had consent in force" in page
    for p in world.participants:
        assert p.name not in page


def test_note_detail_query_count_is_fixed(client, world, held, django_assert_num_queries):
    note = open_note(held, world.coleader1)
    services.note_submit(note=note, base_version=0, texts={}, actor=world.coleader1)
    client.force_login(world.researcher1)
    url = reverse("fieldnotes:note_detail", args=[note.pk])
    client.get(url)
    with django_assert_num_queries(6):
        client.get(url)
    for order in range(2, 8):
        CasePresentation.objects.create(meeting=held, presenter=world.participants[order % 3], order=order,
                                        title=f"Case {order}")
    services.note_sync_sections(note=note)
    with django_assert_num_queries(6):
        client.get(url)
