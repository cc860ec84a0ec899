"""Coding in the browser, server side: the list of sections to code, the
coding page, and the JSON endpoints that create, adjust and remove segments.

Offsets on the wire count Unicode code points, end excluded.
"""

import html
import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from analysis import services as analysis_services
from analysis.models import Code, CodedSegment, CodingRound
from fieldnotes import services as note_services
from fieldnotes.models import NoteSection
from sessions.models import Attendance, AuditEvent, CasePresentation, Consent, Meeting, Membership, Role

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
CASE_TEXT = "The student told about a night shift.\nÄiti kertoi, että lääkäri ei kuunnellut. 😀 👩‍⚕️ Then silence."
DISCUSSION_TEXT = "The group talked about feelings towards patients."


# --- Building data ------------------------------------------------------------


def give_consent(world, participant, when):
    return Consent.objects.create(
        participant=participant, form=world.form, form_version=1, form_text=world.form.text, decision="given",
        decided_at=when, method="paper", recorded_by=world.leader,
    )


def held_session(world, *, number=1, texts=None, consent=True, presenter=None, title="Night shift"):
    """A held session with everyone present and a case by S3, and a submitted
    note by coleader1. With consent=False nobody has consented, so nothing of
    it is research data. Returns the note's sections by kind ("case",
    "discussion", "other")."""
    starts = timezone.now() - (30 - number) * DAY
    meeting = Meeting.objects.create(group=world.group, number=number, starts_at=starts, status=Meeting.Status.HELD)
    for p in world.participants:
        Attendance.objects.create(meeting=meeting, participant=p, present=True)
        if consent and not Consent.objects.filter(participant=p).exists():
            give_consent(world, p, starts - 60 * DAY)
    CasePresentation.objects.create(meeting=meeting, presenter=presenter or world.participants[2], order=1,
                                    title=title)
    note = note_services.note_open(meeting=meeting, author=world.coleader1)
    sections = {s.kind: s for s in note_services.ordered_sections(note)}
    texts = texts or {"case": CASE_TEXT, "discussion": DISCUSSION_TEXT}
    note_services.note_submit(note=note, base_version=note.version,
                              texts={sections[k].pk: v for k, v in texts.items()}, actor=world.coleader1)
    return {kind: NoteSection.objects.get(pk=s.pk) for kind, s in sections.items()}


@pytest.fixture
def codes(world):
    return analysis_services.codebook_start_from_study(course=world.course, actor=world.researcher1)


@pytest.fixture
def sections(world, codes):
    return held_session(world)


@pytest.fixture
def section(sections):
    return sections["case"]


def add_segments(section, code, coder, n, round=None):
    CodedSegment.objects.bulk_create(
        CodedSegment(section=section, code=code, coder=coder, start=i % 10, end=i % 10 + 5,
                     quote=section.text[i % 10:i % 10 + 5], section_revision=section.revision, round=round)
        for i in range(n)
    )


def post_json(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def create_url(section):
    return reverse("analysis:segment_create", args=[section.pk])


def page_url(section, round=None):
    url = reverse("analysis:coding_page", args=[section.pk])
    return f"{url}?round={round.pk}" if round else url


def index_url(world):
    return reverse("analysis:coding_index", args=[world.course.pk])


@pytest.fixture
def coding_round(world, sections, codes):
    r = CodingRound.objects.create(course=world.course, name="Round 1", created_by=world.researcher1)
    r.coders.set([world.researcher1, world.researcher2])
    r.sections.set([sections["case"]])
    return r


# --- The list of sections -----------------------------------------------------


def test_index_lists_eligible_sections_by_session_with_segment_counts(client, world, sections, codes):
    add_segments(sections["case"], codes[0], world.researcher1, 3)
    client.force_login(world.researcher1)
    response = client.get(index_url(world))
    assert response.status_code == 200
    rows = {s.pk: s for s in response.context["sections"]}
    # The empty "other observations" section has nothing to code.
    assert set(rows) == {sections["case"].pk, sections["discussion"].pk}
    assert rows[sections["case"].pk].label == "Case 1: Night shift (S3)"
    assert rows[sections["discussion"].pk].label == "Group discussion"
    assert rows[sections["case"].pk].segment_count == 3
    assert rows[sections["discussion"].pk].segment_count == 0
    html = response.content.decode()
    assert page_url(sections["case"]) in html
    assert "Group A" in html and "coleader1" in html


def test_index_leaves_out_sections_that_are_not_research_data(client, world, sections):
    # Session 2: S3 presents but has declined (the others consented for session 1).
    Consent.objects.create(participant=world.participants[2], form=world.form, form_version=1, decision="declined",
                           decided_at=timezone.now() - 28.5 * DAY, method="paper", recorded_by=world.leader)
    later = held_session(world, number=2, title="Declined case")
    client.force_login(world.researcher1)
    listed = {s.pk for s in client.get(index_url(world)).context["sections"]}
    assert later["case"].pk not in listed and later["discussion"].pk not in listed
    assert sections["case"].pk in listed


def test_index_runs_a_fixed_number_of_queries(client, world, sections, codes, django_assert_num_queries):
    client.force_login(world.researcher1)
    client.get(index_url(world))  # warm the session
    with django_assert_num_queries(8):
        client.get(index_url(world))
    for n in range(2, 7):
        held_session(world, number=n, title=f"Case {n}")
    add_segments(sections["case"], codes[0], world.researcher1, 20)
    with django_assert_num_queries(8):
        response = client.get(index_url(world))
    assert len(response.context["sections"]) == 12


def test_index_of_a_round_lists_its_sections_for_its_coders_only(client, world, sections, coding_round):
    client.force_login(world.researcher2)
    response = client.get(index_url(world) + f"?round={coding_round.pk}")
    assert [s.pk for s in response.context["sections"]] == [sections["case"].pk]
    assert f"?round={coding_round.pk}" in response.content.decode()
    coding_round.coders.set([world.researcher1])
    assert client.get(index_url(world) + f"?round={coding_round.pk}").status_code == 404


def test_index_offers_the_users_open_rounds(client, world, coding_round):
    client.force_login(world.researcher1)
    assert list(client.get(index_url(world)).context["open_rounds"]) == [coding_round]


@pytest.mark.parametrize("who", ["outsider", "admin", "leader", "coleader1", "admin2", "leader2"])
def test_index_is_for_the_courses_researchers_only(client, world, sections, who):
    client.force_login(getattr(world, who))
    assert client.get(index_url(world)).status_code == 404


@pytest.fixture
def other_researcher(world):
    """admin2, made a researcher of the second course."""
    Membership.objects.create(user=world.admin2, course=world.course2, role=Role.RESEARCHER)
    return world.admin2


def test_index_of_another_course_is_404_for_its_researcher(client, world, sections, other_researcher):
    client.force_login(other_researcher)
    assert client.get(index_url(world)).status_code == 404
    assert client.get(reverse("analysis:coding_index", args=[world.course2.pk])).status_code == 200


def test_index_anonymous_is_sent_to_login(client, world):
    response = client.get(index_url(world))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_index_refuses_post(client, world):
    client.force_login(world.researcher1)
    assert client.post(index_url(world)).status_code == 405


# --- The coding page ----------------------------------------------------------


def test_coding_page_shows_the_text_codes_and_segments(client, world, section, codes):
    CodedSegment.objects.create(section=section, code=codes[4], coder=world.researcher1, start=0, end=11,
                                quote=section.text[:11], section_revision=section.revision)
    client.force_login(world.researcher1)
    response = client.get(page_url(section))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Case 1: Night shift (S3)" in html
    assert "note by coleader1" in html
    assert reverse("analysis:case_analysis", args=[section.case_id]) in html
    assert reverse("analysis:codes_css", args=[world.course.pk]) in html
    assert 'id="coding-text"' in html and 'tabindex="0"' in html
    assert 'class="seg code-%d"' % codes[4].pk in html
    assert "Role confusion" in html and "Value conflict" in html
    data = response.context["data"]
    assert data["text"] == section.text
    assert [s["quote"] for s in data["segments"]] == ["The student"]
    assert {c["name"] for c in data["codes"]} == {c.name for c in codes}
    assert data["csrf"]


def test_coding_page_keeps_to_the_content_security_policy(client, world, section, codes):
    client.force_login(world.researcher1)
    html = client.get(page_url(section)).content.decode()
    assert "style=" not in html
    # Scripts come from files; the data is JSON, which is never executed.
    for tag in html.split("<script")[1:]:
        assert ' src="' in tag.split(">")[0] or 'type="application/json"' in tag.split(">")[0]


def text_pieces_shown(response) -> list[tuple[str, str]]:
    """The note text as the page shows it: (piece, the names of the codes on it)."""
    text_box = re.search(r'<div class="coding-text[^>]*>(.*?)</div>', response.content.decode(), re.S).group(1)
    return [(html.unescape(text), html.unescape(title)) for title, text
            in re.findall(r'<span(?: class="seg[^"]*" title="([^"]*)")?>([^<]*)</span>', text_box)]


def test_pieces_of_overlapping_segments_list_every_code(client, world, section, codes):
    for code, (start, end) in [(codes[0], (0, 11)), (codes[1], (4, 22))]:
        CodedSegment.objects.create(section=section, code=code, coder=world.researcher1, start=start, end=end,
                                    quote=section.text[start:end], section_revision=section.revision)
    client.force_login(world.researcher1)
    pieces = text_pieces_shown(client.get(page_url(section)))
    assert "".join(text for text, _ in pieces) == section.text
    assert pieces[:4] == [
        ("The ", "Patients"),
        ("student", "Patients, Confusing experiences in medical education"),
        (" told about", "Confusing experiences in medical education"),
        (section.text[22:], ""),
    ]


def test_coding_page_runs_a_fixed_number_of_queries(client, world, section, codes, django_assert_num_queries):
    client.force_login(world.researcher1)
    client.get(page_url(section))
    with django_assert_num_queries(6):
        client.get(page_url(section))
    add_segments(section, codes[0], world.researcher1, 25)
    add_segments(section, codes[5], world.researcher2, 25)
    Code.objects.filter(pk=codes[5].pk).update(retired_at=timezone.now())  # still shown on its segments
    with django_assert_num_queries(6):
        response = client.get(page_url(section))
    assert len(response.context["segments"]) == 50


def test_coding_page_of_a_round_runs_a_fixed_number_of_queries(client, world, section, codes, coding_round,
                                                                django_assert_num_queries):
    client.force_login(world.researcher1)
    client.get(page_url(section, coding_round))
    with django_assert_num_queries(9):
        client.get(page_url(section, coding_round))
    add_segments(section, codes[0], world.researcher1, 50, round=coding_round)
    with django_assert_num_queries(9):
        response = client.get(page_url(section, coding_round))
    assert len(response.context["segments"]) == 50


@pytest.mark.parametrize("who", ["outsider", "admin", "leader", "coleader1", "coleader2", "admin2", "leader2"])
def test_coding_page_is_for_the_courses_researchers_only(client, world, section, who):
    client.force_login(getattr(world, who))
    assert client.get(page_url(section)).status_code == 404


def test_coding_page_of_another_course_is_404_for_its_researcher(client, world, section, other_researcher):
    client.force_login(other_researcher)
    assert client.get(page_url(section)).status_code == 404


def test_coding_page_of_a_section_without_consent_is_404(client, world, codes):
    # Nobody consented: the presenter's case is not research data.
    ineligible = held_session(world, consent=False)
    client.force_login(world.researcher1)
    assert client.get(page_url(ineligible["case"])).status_code == 404
    assert client.get(page_url(ineligible["discussion"])).status_code == 404


def test_coding_page_anonymous_is_sent_to_login(client, section):
    response = client.get(page_url(section))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_coding_page_refuses_post(client, world, section):
    client.force_login(world.researcher1)
    assert client.post(page_url(section)).status_code == 405


# --- Creating segments --------------------------------------------------------


def test_create_codes_the_span_and_answers_the_segment(client, world, section, codes):
    client.force_login(world.researcher1)
    response = post_json(client, create_url(section), {"code": codes[4].pk, "start": 4, "end": 11, "round": None})
    assert response.status_code == 201
    answer = response.json()["segment"]
    segment = CodedSegment.objects.get()
    assert answer["id"] == segment.pk
    assert (segment.start, segment.end, segment.quote) == (4, 11, "student")
    assert (segment.code, segment.coder, segment.round) == (codes[4], world.researcher1, None)
    assert segment.section_revision == section.revision
    assert answer["quote"] == "student" and answer["code_name"] == "Value conflict"
    assert answer["update_url"] == reverse("analysis:segment_update", args=[segment.pk])
    assert AuditEvent.objects.filter(action="segment.create", actor=world.researcher1).count() == 1


@pytest.mark.parametrize("text, wanted", [
    ("Plain ASCII text here.", "ASCII"),
    ("Äiti kertoi, että lääkäri ei kuunnellut.", "lääkäri"),
    ("Kahvia e\u0301n jälkeen, sitten kotiin.", "e\u0301n"),
    ("Hän sanoi 😀 👩‍⚕️ ja itki sitten.", "itki"),
    ("Hän sanoi 😀 👩‍⚕️ ja itki sitten.", "👩‍⚕️"),
])
def test_create_with_code_point_offsets_quotes_exactly(client, world, section, codes, text, wanted):
    # Written directly: notes are stored NFC, which would compose "e\u0301";
    # the endpoint must count code points whatever the text holds.
    NoteSection.objects.filter(pk=section.pk).update(text=text)
    start = text.index(wanted)  # Python indexes code points
    client.force_login(world.researcher1)
    response = post_json(client, create_url(section), {"code": codes[0].pk, "start": start,
                                                         "end": start + len(wanted), "round": None})
    assert response.status_code == 201, response.content
    assert CodedSegment.objects.get().quote == wanted
    assert response.json()["segment"]["quote"] == wanted


def assert_refused(response, status=400):
    assert response.status_code == status, response.content
    answer = response.json()
    assert answer["error"] and answer["message"]
    assert not CodedSegment.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="segment.").exists()
    return answer["message"]


@pytest.mark.parametrize("start, end, message", [
    (5, 5, "outside this section's text"),
    (9, 4, "outside this section's text"),
    (-1, 4, "outside this section's text"),
    (0, 10_000, "outside this section's text"),
])
def test_create_refuses_bad_spans_and_changes_nothing(client, world, section, codes, start, end, message):
    client.force_login(world.researcher1)
    refused = assert_refused(post_json(client, create_url(section), {"code": codes[0].pk, "start": start,
                                                                      "end": end, "round": None}))
    assert message in refused


def test_create_refuses_a_retired_code(client, world, section, codes):
    Code.objects.filter(pk=codes[0].pk).update(retired_at=timezone.now())
    client.force_login(world.researcher1)
    message = assert_refused(post_json(client, create_url(section), {"code": codes[0].pk, "start": 0, "end": 3}))
    assert "retired" in message


def test_create_refuses_a_code_of_another_course(client, world, section, codes):
    other = analysis_services.codebook_start_from_study(course=world.course2, actor=world.admin2)
    client.force_login(world.researcher1)
    message = assert_refused(post_json(client, create_url(section), {"code": other[0].pk, "start": 0, "end": 3}))
    assert "codebook" in message


@pytest.mark.parametrize("body", [
    "not json", "[1, 2]", json.dumps({"code": "1", "start": 0, "end": 3}),
    json.dumps({"code": 1, "start": True, "end": 3}), json.dumps({"code": 1, "start": 0}),
    json.dumps({"code": 1, "start": 0.5, "end": 3}),
])
def test_create_refuses_malformed_requests(client, world, section, codes, body):
    client.force_login(world.researcher1)
    assert_refused(client.post(create_url(section), data=body, content_type="application/json"))


def test_create_anonymous_gets_401_json(client, section, codes):
    response = post_json(client, create_url(section), {"code": codes[0].pk, "start": 0, "end": 3})
    assert response.status_code == 401
    assert response.json()["error"] == "login_required"
    assert not CodedSegment.objects.exists()


def test_create_refuses_get(client, world, section):
    client.force_login(world.researcher1)
    assert client.get(create_url(section)).status_code == 405


@pytest.mark.parametrize("who", ["outsider", "admin", "leader", "coleader1", "admin2"])
def test_create_outside_the_researchers_is_404(client, world, section, codes, who):
    client.force_login(getattr(world, who))
    response = post_json(client, create_url(section), {"code": codes[0].pk, "start": 0, "end": 3})
    assert response.status_code == 404
    assert not CodedSegment.objects.exists()


def test_create_by_another_courses_researcher_is_404(client, world, section, codes, other_researcher):
    client.force_login(other_researcher)
    assert post_json(client, create_url(section), {"code": codes[0].pk, "start": 0, "end": 3}).status_code == 404
    assert not CodedSegment.objects.exists()


def test_create_on_a_section_without_consent_is_404(client, world, codes):
    ineligible = held_session(world, consent=False)
    client.force_login(world.researcher1)
    response = post_json(client, create_url(ineligible["case"]), {"code": codes[0].pk, "start": 0, "end": 3})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert not CodedSegment.objects.exists()


# --- Adjusting and removing ---------------------------------------------------


@pytest.fixture
def segment(world, section, codes):
    return analysis_services.segment_create(section=section, code=codes[0], coder=world.researcher1, start=0, end=3)


def test_update_moves_the_segment_and_changes_its_code(client, world, segment, codes):
    client.force_login(world.researcher1)
    response = post_json(client, reverse("analysis:segment_update", args=[segment.pk]),
                         {"start": 4, "end": 11, "code": codes[3].pk})
    assert response.status_code == 200
    segment.refresh_from_db()
    assert (segment.start, segment.end, segment.quote, segment.code) == (4, 11, "student", codes[3])
    assert response.json()["segment"]["code_name"] == codes[3].name


def test_a_researcher_may_adjust_and_remove_a_colleagues_shared_segment(client, world, segment):
    client.force_login(world.researcher2)
    response = post_json(client, reverse("analysis:segment_update", args=[segment.pk]), {"start": 0, "end": 11})
    assert response.status_code == 200
    assert CodedSegment.objects.get().quote == "The student"
    assert client.post(reverse("analysis:segment_delete", args=[segment.pk])).status_code == 200
    assert not CodedSegment.objects.exists()
    assert AuditEvent.objects.filter(action="segment.delete", actor=world.researcher2).exists()


def test_update_refuses_bad_spans_and_retired_codes_and_changes_nothing(client, world, segment, codes):
    client.force_login(world.researcher1)
    url = reverse("analysis:segment_update", args=[segment.pk])
    assert post_json(client, url, {"start": 3, "end": 3}).status_code == 400
    Code.objects.filter(pk=codes[2].pk).update(retired_at=timezone.now())
    response = post_json(client, url, {"start": 0, "end": 3, "code": codes[2].pk})
    assert response.status_code == 400 and "retired" in response.json()["message"]
    segment.refresh_from_db()
    assert (segment.start, segment.end, segment.code) == (0, 3, codes[0])


def test_delete_removes_the_segment(client, world, segment):
    client.force_login(world.researcher1)
    response = client.post(reverse("analysis:segment_delete", args=[segment.pk]))
    assert response.status_code == 200 and response.json() == {"deleted": segment.pk}
    assert not CodedSegment.objects.exists()


def test_update_and_delete_anonymous_get_401_json(client, segment):
    for name in ("analysis:segment_update", "analysis:segment_delete"):
        response = post_json(client, reverse(name, args=[segment.pk]), {"start": 0, "end": 5})
        assert response.status_code == 401 and response.json()["error"] == "login_required"
    segment.refresh_from_db()
    assert segment.end == 3


def test_update_and_delete_refuse_get(client, world, segment):
    client.force_login(world.researcher1)
    for name in ("analysis:segment_update", "analysis:segment_delete"):
        assert client.get(reverse(name, args=[segment.pk])).status_code == 405


@pytest.mark.parametrize("who", ["outsider", "admin", "leader", "coleader1", "other_researcher"])
def test_update_and_delete_outside_the_researchers_are_404(client, world, segment, who, request):
    user = request.getfixturevalue(who) if who == "other_researcher" else getattr(world, who)
    client.force_login(user)
    assert post_json(client, reverse("analysis:segment_update", args=[segment.pk]),
                     {"start": 0, "end": 5}).status_code == 404
    assert client.post(reverse("analysis:segment_delete", args=[segment.pk])).status_code == 404
    segment.refresh_from_db()
    assert segment.end == 3


def test_segments_of_a_section_that_lost_consent_are_out_of_reach(client, world, segment):
    Consent.objects.create(participant=world.participants[2], decision="withdrawn", withdrawal_scope="past",
                           decided_at=timezone.now(), method="paper", recorded_by=world.leader)
    client.force_login(world.researcher1)
    assert client.post(reverse("analysis:segment_delete", args=[segment.pk])).status_code == 404
    assert client.get(page_url(segment.section)).status_code == 404
    assert CodedSegment.objects.filter(pk=segment.pk).exists()


# --- Double-coding rounds: blind --------------------------------------------


def test_round_segments_are_created_in_the_round(client, world, section, codes, coding_round):
    client.force_login(world.researcher1)
    response = post_json(client, create_url(section), {"code": codes[0].pk, "start": 0, "end": 3,
                                                         "round": coding_round.pk})
    assert response.status_code == 201
    assert CodedSegment.objects.get().round == coding_round
    assert response.json()["segment"]["round"] == coding_round.pk


def test_in_an_open_round_a_coder_cannot_see_or_change_anothers_segments(client, world, section, codes,
                                                                           coding_round):
    theirs = analysis_services.segment_create(section=section, code=codes[0], coder=world.researcher1, start=0,
                                              end=3, round=coding_round)
    mine = analysis_services.segment_create(section=section, code=codes[1], coder=world.researcher2, start=4,
                                            end=11, round=coding_round)
    client.force_login(world.researcher2)
    response = client.get(page_url(section, coding_round))
    assert [s["id"] for s in response.context["data"]["segments"]] == [mine.pk]
    assert "The" not in [text for text, codes in text_pieces_shown(response) if codes]
    # Nor in the shared coding, nor by id.
    assert client.get(page_url(section)).context["data"]["segments"] == []
    assert post_json(client, reverse("analysis:segment_update", args=[theirs.pk]),
                     {"start": 0, "end": 11}).status_code == 404
    assert client.post(reverse("analysis:segment_delete", args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert (theirs.start, theirs.end) == (0, 3)
    # The index counts only one's own segments of the round.
    rows = client.get(index_url(world) + f"?round={coding_round.pk}").context["sections"]
    assert [s.segment_count for s in rows] == [1]


def test_round_coding_needs_an_open_round_the_user_codes_and_its_section(client, world, sections, codes,
                                                                          coding_round):
    section = sections["case"]
    client.force_login(world.researcher2)
    body = {"code": codes[0].pk, "start": 0, "end": 3, "round": coding_round.pk}
    discussion = post_json(client, create_url(sections["discussion"]), body)
    assert discussion.status_code == 400 and "not part of" in discussion.json()["message"]
    coding_round.coders.set([world.researcher1])
    assert post_json(client, create_url(section), body).status_code == 404
    assert client.get(page_url(section, coding_round)).status_code == 404
    coding_round.coders.add(world.researcher2)
    CodingRound.objects.filter(pk=coding_round.pk).update(status=CodingRound.Status.CLOSED)
    closed = post_json(client, create_url(section), body)
    assert closed.status_code == 400 and "closed" in closed.json()["message"]
    assert not CodedSegment.objects.exists()


def test_a_closed_round_is_shown_read_only(client, world, section, codes, coding_round):
    analysis_services.segment_create(section=section, code=codes[0], coder=world.researcher1, start=0, end=3,
                                     round=coding_round)
    CodingRound.objects.filter(pk=coding_round.pk).update(status=CodingRound.Status.CLOSED)
    client.force_login(world.researcher2)
    response = client.get(page_url(section, coding_round))
    assert response.context["can_code"] is False
    assert len(response.context["segments"]) == 1
    assert 'id="code-list"' not in response.content.decode()
