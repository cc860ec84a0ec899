"""Browser tests of the field-note editor (static/js/fieldnote.js): autosave,
reload, two tabs, the identifier check, submit and amend, independence of the
two co-leaders' notes, an expired login, and text beyond ASCII."""

import re
import unicodedata
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from conftest import PASSWORD
from fieldnotes import services
from fieldnotes.models import FieldNote, NoteSection, NoteVersion
from sessions.models import CasePresentation, Meeting

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SAVED = '#save-status[data-state="saved"]'


@pytest.fixture
def held(world):
    meeting = Meeting.objects.create(
        group=world.group, number=1, starts_at=timezone.now() - timedelta(hours=2), status=Meeting.Status.HELD
    )
    CasePresentation.objects.create(meeting=meeting, presenter=world.participants[0], order=1, title="On call alone")
    return meeting


def open_editor(page, meeting):
    """Open my note the way the session page does; it redirects to the editor."""
    page.goto(reverse("fieldnotes:note_write", args=[meeting.pk]))
    page.wait_for_url(re.compile(r"/notes/\d+/edit/$"))
    return FieldNote.objects.get(pk=int(page.url.rstrip("/").split("/")[-2]))


def box(page, note, kind):
    return page.locator(f"#section-{note.sections.get(kind=kind).pk}")


def text_of(note, kind):
    return NoteSection.objects.get(note=note, kind=kind).text


def test_typed_note_autosaves_and_is_there_after_reload(page, login, world, held):
    login(page, world.coleader1)
    note = open_editor(page, held)
    expect(page.locator("#save-status")).to_have_text("Nothing written yet")

    # Hold the save on its way, to see the editor say so.
    held_saves = []
    page.route("**/autosave/", lambda route: held_saves.append(route))
    box(page, note, "case").fill("S1 told of a night on call alone.")
    page.wait_for_selector('#save-status[data-state="dirty"]')
    page.wait_for_selector('#save-status[data-state="saving"]')
    expect(page.locator("#save-status")).to_have_text("Saving…")
    held_saves[0].continue_()
    page.unroute("**/autosave/")

    page.wait_for_selector(SAVED)
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved \(version 1\) at \d\d:\d\d$"))
    assert text_of(note, "case") == "S1 told of a night on call alone."
    assert page.evaluate(f"localStorage.getItem('fieldnote-draft-{note.pk}')") is None

    page.reload()
    expect(box(page, note, "case")).to_have_value("S1 told of a night on call alone.")
    expect(page.locator("#save-status")).to_have_text(re.compile(r"^Saved \(version 1\) at \d\d:\d\d$"))
    expect(page.locator("#draft-notice")).to_be_hidden()

    # "Save draft" saves in place, without waiting for the pause in typing.
    box(page, note, "discussion").fill("A quiet group today.")
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_selector('#save-status[data-state="saved"]:has-text("version 2")')
    assert page.url.endswith(reverse("fieldnotes:note_edit", args=[note.pk]))
    assert text_of(note, "discussion") == "A quiet group today."


def test_two_tabs_get_the_conflict_view_and_keep_mine_wins(page, login, world, held):
    login(page, world.coleader1)
    note = open_editor(page, held)
    other = page.context.new_page()
    other.goto(reverse("fieldnotes:note_edit", args=[note.pk]))

    box(page, note, "discussion").fill("Written in the first tab.")
    page.wait_for_selector(SAVED)
    box(other, note, "discussion").fill("Written in the second tab.")

    panel = other.locator("#conflict-panel")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("changed elsewhere")
    expect(other.locator('#save-status[data-state="error"]')).to_contain_text("Not saved")
    expect(box(other, note, "discussion")).to_have_value("Written in the second tab.")
    expect(other.locator("textarea.note-saved-text")).to_have_value("Written in the first tab.")
    expect(other.locator("#submit-note")).to_be_disabled()
    assert text_of(note, "discussion") == "Written in the first tab."  # nothing overwritten

    other.get_by_role("button", name="Keep mine").click()
    other.wait_for_selector(SAVED)
    expect(panel).to_be_hidden()
    expect(other.locator("textarea.note-saved-text")).to_have_count(0)
    expect(other.locator("#save-status")).to_contain_text("Saved (version 2)")
    assert text_of(note, "discussion") == "Written in the second tab."

    # Autosave goes on from the new version.
    box(other, note, "discussion").fill("Written in the second tab, and more.")
    other.wait_for_selector('#save-status[data-state="saved"]:has-text("version 3")')
    assert text_of(note, "discussion") == "Written in the second tab, and more."


def test_conflict_resolved_with_the_saved_text(page, login, world, held):
    login(page, world.coleader1)
    note = open_editor(page, held)
    other = page.context.new_page()
    other.goto(reverse("fieldnotes:note_edit", args=[note.pk]))
    box(page, note, "discussion").fill("The first tab's text.")
    page.wait_for_selector(SAVED)
    box(other, note, "discussion").fill("The second tab's text.")
    other.get_by_role("button", name="Use the saved text").click()
    other.wait_for_selector(SAVED)
    expect(box(other, note, "discussion")).to_have_value("The first tab's text.")
    expect(other.locator("#conflict-panel")).to_be_hidden()
    assert text_of(note, "discussion") == "The first tab's text."
    assert FieldNote.objects.get(pk=note.pk).version == 1


def test_real_name_is_found_replaced_with_the_pseudonym_and_the_note_submitted(page, login, world, held):
    login(page, world.coleader1)
    note = open_editor(page, held)
    box(page, note, "case").fill("Aino Virtanen told us about a night on call 😀.")
    page.wait_for_selector(SAVED)

    findings = page.locator("#findings")
    expect(findings).to_contain_text("“Aino Virtanen”")
    expect(findings).to_contain_text("Matches the name of S1")
    expect(page.locator("#submit-note")).to_be_disabled()
    expect(page.locator("#submit-hint")).to_contain_text("identifier")

    page.get_by_role("button", name="Replace with S1").click()
    expect(box(page, note, "case")).to_have_value("S1 told us about a night on call 😀.")
    page.wait_for_selector(SAVED)
    expect(findings).to_contain_text("Nothing found")
    expect(page.locator("#submit-note")).to_be_enabled()
    assert text_of(note, "case") == "S1 told us about a night on call 😀."

    page.locator("#submit-note").click()
    page.wait_for_url(re.compile(rf"/notes/{note.pk}/$"))
    expect(page.get_by_role("alert").first).to_contain_text("Note submitted")
    note.refresh_from_db()
    assert note.status == FieldNote.Status.SUBMITTED


def test_replace_after_more_typing_finds_the_name_where_it_is_now(page, login, world, held):
    login(page, world.coleader1)
    note = open_editor(page, held)
    case = box(page, note, "case")
    case.fill("Then Eero Korhonen spoke.")
    page.wait_for_selector(SAVED)
    expect(page.get_by_role("button", name="Replace with S2")).to_be_visible()
    # Typed in front of the name: the finding's offsets are stale until the next save.
    case.press("Home")
    case.type("👩‍⚕️ ")
    page.get_by_role("button", name="Replace with S2").click()
    expect(case).to_have_value("👩‍⚕️ Then S2 spoke.")
    page.wait_for_selector(SAVED)
    assert text_of(note, "case") == "👩‍⚕️ Then S2 spoke."


def test_not_an_identifier_clears_the_finding(page, login, world, held):
    login(page, world.coleader1)
    note = open_editor(page, held)
    box(page, note, "discussion").fill("We talked about Helmi, the ward's robot.")
    page.wait_for_selector(SAVED)
    expect(page.locator("#findings")).to_contain_text("“Helmi”")
    page.get_by_role("button", name="Not an identifier").click()
    expect(page.locator("#findings")).to_contain_text("Nothing found")
    expect(page.locator("#submit-note")).to_be_enabled()
    assert note.identifier_confirmations.filter(text="Helmi").exists()


def test_submit_then_amend_with_a_reason(page, login, world, held):
    login(page, world.coleader1)
    note = open_editor(page, held)
    box(page, note, "discussion").fill("The group talked about tiredness.")
    # Submit straight after typing: the pending save is flushed first.
    page.locator("#submit-note").click()
    page.wait_for_url(re.compile(rf"/notes/{note.pk}/$"))
    expect(page.locator(".note-read-section").filter(has_text="Group discussion")).to_contain_text(
        "The group talked about tiredness."
    )

    page.get_by_role("link", name="Amend").click()
    page.locator(f"#section-{note.sections.get(kind='discussion').pk}").fill(
        "The group talked about tiredness and about shame."
    )
    page.get_by_label("Reason for the amendment").fill("Left out the second theme.")
    page.get_by_role("button", name="Save amendment").click()
    page.wait_for_url(re.compile(rf"/notes/{note.pk}/$"))
    expect(page.locator(".note-read-section").filter(has_text="Group discussion")).to_contain_text("and about shame")
    expect(page.get_by_role("heading", name="Amendments")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Left out the second theme.")
    amend = NoteVersion.objects.get(note=note, action=NoteVersion.Action.AMEND)
    assert amend.reason == "Left out the second theme."
    assert text_of(note, "discussion") == "The group talked about tiredness and about shame."


def test_other_coleader_reads_the_note_only_after_submitting_their_own(page, login, world, held):
    first = services.note_open(meeting=held, author=world.coleader1)
    discussion = first.sections.get(kind="discussion")
    services.note_submit(note=first, base_version=0, texts={discussion.pk: "Coleader one's observations."},
                         actor=world.coleader1)

    login(page, world.coleader2)
    response = page.goto(reverse("fieldnotes:note_detail", args=[first.pk]))
    assert response.status == 404
    page.goto(reverse("sessions:meeting_detail", args=[held.pk]))
    notes = page.locator("#field-notes")
    expect(notes).to_contain_text("The other co-leader has started a note")
    expect(notes).not_to_contain_text("Coleader one's observations")
    expect(notes.get_by_role("link", name=re.compile("Field note by"))).to_have_count(0)

    notes.get_by_role("link", name="Write field note").click()
    page.wait_for_url(re.compile(r"/notes/\d+/edit/$"))
    mine = FieldNote.objects.get(meeting=held, author=world.coleader2)
    box(page, mine, "discussion").fill("Coleader two's observations.")
    page.wait_for_selector(SAVED)
    page.locator("#submit-note").click()
    page.wait_for_url(re.compile(rf"/notes/{mine.pk}/$"))

    page.goto(reverse("sessions:meeting_detail", args=[held.pk]))
    page.locator("#field-notes").get_by_role("link", name="Field note by coleader1").click()
    page.wait_for_url(re.compile(rf"/notes/{first.pk}/$"))
    expect(page.locator("main")).to_contain_text("Coleader one's observations.")


def test_text_typed_after_the_login_expired_comes_back_after_logging_in(page, login, world, held, live_server):
    login(page, world.coleader1)
    note = open_editor(page, held)
    case = box(page, note, "case")
    case.fill("Saved before the login expired.")
    page.wait_for_selector(SAVED)

    page.context.clear_cookies()
    case.press("End")
    case.type(" Typed after it expired.")
    banner = page.locator("#login-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Your text is kept in this browser")
    expect(page.locator('#save-status[data-state="error"]')).to_contain_text("Not saved")
    case.type(" And a little more.")  # kept, not sent
    assert text_of(note, "case") == "Saved before the login expired."

    banner.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill(world.coleader1.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}{reverse('fieldnotes:note_edit', args=[note.pk])}")

    expected = "Saved before the login expired. Typed after it expired. And a little more."
    expect(page.locator("#draft-notice")).to_contain_text("Restored text you typed that had not reached the server")
    expect(box(page, note, "case")).to_have_value(expected)
    page.wait_for_selector('#save-status[data-state="saved"]:has-text("version 2")')
    assert text_of(note, "case") == expected


def test_a_backup_typed_on_an_older_version_shows_the_conflict_view(page, login, world, held):
    login(page, world.coleader1)
    note = open_editor(page, held)
    case_id = note.sections.get(kind="case").pk
    # This browser kept text typed on version 0; meanwhile another device saved version 1.
    page.evaluate(
        "([key, id]) => localStorage.setItem(key, JSON.stringify("
        "{noteId: Number(key.split('-').pop()), baseVersion: 0, sections: {[id]: 'Typed on the phone.'},"
        " at: new Date().toISOString(), tab: 'gone'}))",
        [f"fieldnote-draft-{note.pk}", str(case_id)],
    )
    services.note_save(note=note, base_version=0, texts={case_id: "Saved on the laptop."}, actor=world.coleader1)
    page.reload()
    expect(page.locator("#conflict-panel")).to_be_visible()
    expect(box(page, note, "case")).to_have_value("Typed on the phone.")
    expect(page.locator("textarea.note-saved-text")).to_have_value("Saved on the laptop.")
    assert text_of(note, "case") == "Saved on the laptop."
    page.get_by_role("button", name="Keep mine").click()
    page.wait_for_selector(SAVED)
    assert text_of(note, "case") == "Typed on the phone."


def test_emoji_finnish_letters_and_combining_marks_round_trip(page, login, world, held):
    login(page, world.coleader1)
    note = open_editor(page, held)
    typed = "Äiti 👩‍⚕️ kertoi, e\u0301\nSisältö: ÅÄÖ åäö 🇫🇮"
    box(page, note, "discussion").fill(typed)
    page.wait_for_selector(SAVED)
    expected = unicodedata.normalize("NFC", typed)
    assert text_of(note, "discussion") == expected
    page.reload()
    page.wait_for_selector(SAVED)
    assert box(page, note, "discussion").input_value() == expected
    # Nothing left to save: the NFC text on the page is what was saved.
    assert FieldNote.objects.get(pk=note.pk).version == 1
    expect(page.locator("#draft-notice")).to_be_hidden()

