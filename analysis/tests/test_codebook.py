"""The codebook: study template, edits, merge, split, retire, history; memos; the case page."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from analysis import services
from analysis.models import CaseCoding, Category, Code, CodebookChange, CodedSegment, Memo
from fieldnotes import services as notes
from sessions.models import Attendance, CasePresentation, Consent, Meeting

pytestmark = pytest.mark.django_db


@pytest.fixture
def codes(world):
    services.codebook_start_from_study(course=world.course, actor=world.researcher1)
    return {c.name: c for c in Code.objects.filter(course=world.course)}


@pytest.fixture
def case_section(world):
    """An eligible case section (S1 presents, S1 and S2 attend, both consented)."""
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - timedelta(days=7),
                                     status=Meeting.Status.HELD)
    for p in world.participants[:2]:
        Consent.objects.create(participant=p, form=world.form, form_version=1, decision="given", method="paper",
                               decided_at=meeting.starts_at - timedelta(days=1), recorded_by=world.leader)
        Attendance.objects.create(meeting=meeting, participant=p, present=True)
    CasePresentation.objects.create(meeting=meeting, presenter=world.participants[0], order=1,
                                           title="Alone on call")
    note = notes.note_open(meeting=meeting, author=world.coleader1)
    section = note.sections.get(kind="case")
    notes.note_submit(note=note, base_version=0, actor=world.coleader1, texts={
        section.pk: "S1 was left alone on call and did not know what she was allowed to do. The nurse laughed.",
    })
    section.refresh_from_db()
    return section


def segment(section, code, coder, start, end):
    return CodedSegment.objects.create(section=section, code=code, coder=coder, start=start, end=end,
                                       quote=section.text[start:end], section_revision=section.revision)


def test_study_template_gives_three_categories_and_twelve_codes(client, world):
    client.force_login(world.researcher1)
    url = reverse("analysis:codebook", args=[world.course.pk])
    assert "Start from the study's codebook" in client.get(url).text
    client.post(reverse("analysis:codebook_start", args=[world.course.pk]))
    assert list(Category.objects.filter(course=world.course).values_list("name", "unit")) == [
        ("Contexts", "case"), ("Triggers", "case"), ("Themes", "session"),
    ]
    assert Code.objects.filter(course=world.course).count() == 12
    page = client.get(url).text
    assert "Role confusion" in page and "Building professional identity" in page
    # offered, never forced: a second start is refused and changes nothing
    client.post(reverse("analysis:codebook_start", args=[world.course.pk]))
    assert Code.objects.filter(course=world.course).count() == 12


def test_codebook_is_read_only_for_admin_and_leaders_and_hidden_from_others(client, world, codes):
    url = reverse("analysis:codebook", args=[world.course.pk])
    for user in (world.admin, world.leader):
        client.force_login(user)
        page = client.get(url)
        assert page.status_code == 200 and "New code" not in page.text
        assert client.get(reverse("analysis:code_edit", args=[codes["Patients"].pk])).status_code == 404
    for user in (world.coleader1, world.outsider, world.admin2):
        client.force_login(user)
        assert client.get(url).status_code == 404


def test_rename_is_recorded_with_who_and_why(client, world, codes):
    code = codes["Role confusion"]
    client.force_login(world.researcher2)
    response = client.post(reverse("analysis:code_edit", args=[code.pk]), {
        "name": "Unclear role", "category": code.category_id, "colour": "#e377c2",
        "definition": code.definition, "why": "Students' own words",
    })
    assert response.status_code == 302
    change = CodebookChange.objects.get(action="code.rename")
    assert change.actor == world.researcher2 and change.why == "Students' own words"
    assert "“Role confusion” to “Unclear role”" in change.summary
    history = client.get(reverse("analysis:codebook_history", args=[world.course.pk])).text
    assert "Students&#x27; own words" in history


def test_duplicate_name_bad_colour_and_clashing_shortcut_get_clear_messages(client, world, codes):
    client.force_login(world.researcher1)
    response = client.post(reverse("analysis:code_new", args=[world.course.pk]), {
        "name": "patients", "category": codes["Patients"].category_id, "colour": "red", "shortcut": "1",
    })
    assert "An active code already has that name." in response.text
    assert "#rrggbb" in response.text
    assert "Another code already uses that key." in response.text
    assert Code.objects.filter(course=world.course).count() == 12


def test_merge_moves_every_segment_and_keeps_the_source_in_history(world, codes, case_section):
    a, b = codes["Value conflict"], codes["Witnessing injustice"]
    segment(case_section, a, world.researcher1, 0, 2)
    segment(case_section, a, world.researcher2, 3, 10)
    segment(case_section, b, world.researcher1, 11, 20)
    CaseCoding.objects.create(case=case_section.case, code=a, set_by=world.researcher1, why="obvious")
    total = CodedSegment.objects.count()
    moved = services.code_merge(source=a, target=b, actor=world.researcher1, why="Same phenomenon")
    assert moved == 2
    assert CodedSegment.objects.count() == total  # none lost
    assert CodedSegment.objects.filter(code=b).count() == 3
    assert CaseCoding.objects.get(case=case_section.case).code == b
    a.refresh_from_db()
    assert a.is_retired and a.merged_into == b


def test_split_moves_only_the_chosen_segments(client, world, codes, case_section):
    code = codes["Difficult human relationships"]
    kept = segment(case_section, code, world.researcher1, 0, 2)
    moving = segment(case_section, code, world.researcher1, 70, 90)
    client.force_login(world.researcher1)
    response = client.post(reverse("analysis:code_split", args=[code.pk]), {
        "name": "Conflict with nurses", "segments": [str(moving.pk)], "why": "A distinct pattern",
    })
    new = Code.objects.get(name="Conflict with nurses")
    assert response["Location"] == reverse("analysis:code_detail", args=[new.pk])
    kept.refresh_from_db()
    moving.refresh_from_db()
    assert kept.code == code and moving.code == new
    assert new.category == code.category
    assert CodebookChange.objects.filter(action="code.split", why="A distinct pattern").exists()


def test_retired_code_keeps_its_segments_but_is_not_offered(world, codes, case_section):
    code = codes["Incurable patient"]
    segment(case_section, code, world.researcher1, 0, 2)
    services.code_retire(code=code, actor=world.researcher1, why="Never applies here")
    assert CodedSegment.objects.filter(code=code).count() == 1
    assert code not in Code.objects.active()
    with pytest.raises(services.CodingError, match="retired"):
        services.segment_create(section=case_section, code=code, coder=world.researcher1, start=0, end=2)


def test_parent_loops_are_refused(world, codes):
    a, b = codes["Patients"], codes["Privacy and profession"]
    b.parent = a
    services.code_save(code=b, before=None, actor=world.researcher1)
    a.parent = b
    with pytest.raises(services.CodingError, match="loop"):
        services.code_save(code=a, before=None, actor=world.researcher1)


def test_codes_css_has_one_rule_per_code_for_readers_only(client, world, codes):
    client.force_login(world.researcher1)
    response = client.get(reverse("analysis:codes_css", args=[world.course.pk]))
    assert response["Content-Type"].startswith("text/css")
    assert f".code-{codes['Patients'].pk} {{ --code-colour: #1f77b4; }}" in response.text
    assert response.text.count("--code-colour") == 12
    client.force_login(world.coleader1)
    assert client.get(reverse("analysis:codes_css", args=[world.course.pk])).status_code == 404


def test_case_page_shows_segments_of_the_case_and_derived_contexts_and_triggers(client, world, codes, case_section):
    segment(case_section, codes["Role confusion"], world.researcher1, 0, 30)
    segment(case_section, codes["Feelings related to patients"], world.researcher1, 31, 40)  # a theme
    client.force_login(world.researcher1)
    url = reverse("analysis:case_analysis", args=[case_section.case_id])
    client.post(reverse("analysis:case_coding_set", args=[case_section.case_id]),
                {"code": codes["Patients"].pk, "why": "The whole story is about one patient encounter"})
    page = client.get(url).text
    derived = page[page.index('id="case-codes"'):]
    assert "Role confusion" in derived and "Patients" in derived and "set directly" in derived
    assert "Feelings related to patients" not in derived  # themes are counted per session, not per case
    assert "S1 was left alone on call" in page


def test_case_coding_needs_a_reason(client, world, codes, case_section):
    client.force_login(world.researcher1)
    client.post(reverse("analysis:case_coding_set", args=[case_section.case_id]),
                {"code": codes["Patients"].pk, "why": " "})
    assert not CaseCoding.objects.exists()


def test_case_page_hides_text_once_consent_is_withdrawn_with_past_data(client, world, codes, case_section):
    segment(case_section, codes["Role confusion"], world.researcher1, 0, 30)
    Consent.objects.create(participant=world.participants[0], decision="withdrawn", withdrawal_scope="past",
                           method="paper", recorded_by=world.leader, form=world.form)
    client.force_login(world.researcher1)
    page = client.get(reverse("analysis:case_analysis", args=[case_section.case_id])).text
    assert "S1 was left alone on call" not in page
    derived = page[page.index('id="case-codes"'):page.index("Set a context or trigger directly")]
    assert "Role confusion" not in derived and "None yet." in derived
    assert "No research-eligible note section" in page


def test_memos_attach_to_things_and_are_searchable(client, world, codes, case_section):
    client.force_login(world.researcher1)
    client.post(reverse("analysis:memo_new", args=[world.course.pk]),
                {"target": "code", "target_id": codes["Role confusion"].pk, "text": "Overlaps with hierarchy"})
    client.post(reverse("analysis:memo_new", args=[world.course.pk]),
                {"target": "case", "target_id": case_section.case_id, "text": "Night shifts again"})
    client.post(reverse("analysis:memo_new", args=[world.course.pk]), {"text": "Saturation seems near"})
    assert Memo.objects.get(code=codes["Role confusion"]).author == world.researcher1
    assert Memo.objects.get(case=case_section.case).text == "Night shifts again"
    page = client.get(reverse("analysis:memo_list", args=[world.course.pk]) + "?q=night").text
    assert "Night shifts again" in page and "Overlaps with hierarchy" not in page
    code_page = client.get(reverse("analysis:code_detail", args=[codes["Role confusion"].pk])).text
    assert "Overlaps with hierarchy" in code_page


def test_memo_on_something_of_another_course_is_404(client, world, codes):
    other = Code.objects.create(course=world.course2, category=Category.objects.create(course=world.course2,
                                name="X"), name="Y", created_by=world.admin2)
    client.force_login(world.researcher1)
    response = client.post(reverse("analysis:memo_new", args=[world.course.pk]),
                           {"target": "code", "target_id": other.pk, "text": "sneaky"})
    assert response.status_code == 404
    assert not Memo.objects.exists()


def test_only_the_author_edits_a_memo(client, world):
    memo = Memo.objects.create(course=world.course, author=world.researcher1, text="mine")
    client.force_login(world.researcher2)
    assert client.post(reverse("analysis:memo_edit", args=[memo.pk]), {"text": "theirs"}).status_code == 404
    memo.refresh_from_db()
    assert memo.text == "mine"


def test_the_same_code_on_exactly_the_same_text_twice_is_refused(world, codes, case_section):
    code = codes["Role confusion"]
    services.segment_create(section=case_section, code=code, coder=world.researcher1, start=0, end=10)
    with pytest.raises(services.CodingError, match="already coded exactly this text"):
        services.segment_create(section=case_section, code=code, coder=world.researcher1, start=0, end=10)
    # overlapping is fine, and so is another coder on the same text
    services.segment_create(section=case_section, code=code, coder=world.researcher1, start=5, end=15)
    services.segment_create(section=case_section, code=code, coder=world.researcher2, start=0, end=10)
    assert CodedSegment.objects.filter(code=code).count() == 3


# --- Length limits (balint/limits.py) -----------------------------------------


def test_overlong_memo_definition_and_reasons_get_a_clear_message_and_are_not_stored(client, world, codes,
                                                                                      case_section):
    from balint.limits import DESCRIPTION_CHARS, MEMO_CHARS, REASON_CHARS

    client.force_login(world.researcher1)
    response = client.post(reverse("analysis:memo_new", args=[world.course.pk]), {"text": "m" * (MEMO_CHARS + 1)})
    assert response.status_code == 200 and f"Ensure this value has at most {MEMO_CHARS} characters" in response.text
    assert not Memo.objects.exists()

    response = client.post(reverse("analysis:code_new", args=[world.course.pk]), {
        "name": "Long", "category": codes["Patients"].category_id, "colour": "#112233",
        "definition": "d" * (DESCRIPTION_CHARS + 1),
    })
    assert response.status_code == 200 and "Ensure this value has at most" in response.text
    assert not Code.objects.filter(name="Long").exists()
    assert "d" * (DESCRIPTION_CHARS + 1) in response.text  # the form comes back with every character
    # and no textarea carries maxlength, at which a browser would cut a paste silently
    assert re.search(r"<textarea[^>]*maxlength", response.text) is None

    response = client.post(reverse("analysis:case_coding_set", args=[case_section.case_id]),
                           {"code": codes["Patients"].pk, "why": "w" * (REASON_CHARS + 1)}, follow=True)
    assert f"Keep the reason to {REASON_CHARS:,} characters" in response.text
    assert not CaseCoding.objects.exists()
    # exactly at the limit is fine
    client.post(reverse("analysis:case_coding_set", args=[case_section.case_id]),
                {"code": codes["Patients"].pk, "why": "w" * REASON_CHARS})
    assert CaseCoding.objects.get().why == "w" * REASON_CHARS
