"""Double-coding rounds: set-up, blindness, closing, agreement, resolution, scoping."""

import html
from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from analysis import agreement
from analysis import rounds as services
from analysis.access import visible_segments
from analysis.models import Category, Code, CodedSegment, CodingRound, Memo, Resolution
from analysis.services import CodingError
from conftest import make_user
from fieldnotes.models import NoteSection
from fieldnotes.services import note_open, note_submit
from sessions.models import Attendance, AuditEvent, CasePresentation, Consent, Meeting, Membership, Role

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
TEXTS = {
    "case1": "The student met a dying patient on the ward and felt helpless.",
    "case2": "A consultant shouted at a nurse in front of the students.",
    "discussion": "The group talked about what kind of doctor each wants to be.",
    "other": "Quiet session; two students arrived late. 🙂 Kiitos.",
}


def consent(world, participant, decision, when, scope=""):
    return Consent.objects.create(
        participant=participant, form=world.form, form_version=1, form_text=world.form.text, decision=decision,
        decided_at=when, method="paper", withdrawal_scope=scope, recorded_by=world.leader,
    )


@pytest.fixture
def sections(world):
    """Four research-eligible sections of one submitted note: case 1, case 2, discussion, other."""
    s1, s2, _ = world.participants
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - 14 * DAY,
                                     status=Meeting.Status.HELD)
    for p in (s1, s2):
        Attendance.objects.create(meeting=meeting, participant=p, present=True)
        consent(world, p, "given", meeting.starts_at - DAY)
    CasePresentation.objects.create(meeting=meeting, presenter=s1, order=1, title="A dying patient")
    CasePresentation.objects.create(meeting=meeting, presenter=s2, order=2, title="Shouting")
    note = note_open(meeting=meeting, author=world.coleader1)
    by_key = {}
    for section in note.sections.select_related("case"):
        by_key[f"case{section.case.order}" if section.case_id else section.kind] = section
    note_submit(note=note, base_version=0, texts={by_key[k].pk: t for k, t in TEXTS.items()}, actor=world.coleader1)
    ordered = [NoteSection.objects.get(pk=by_key[k].pk) for k in ("case1", "case2", "discussion", "other")]
    assert NoteSection.objects.research_eligible().filter(pk__in=[s.pk for s in ordered]).count() == 4
    return ordered


@pytest.fixture
def codes(world):
    category = Category.objects.create(course=world.course, name="Triggers", unit="case")
    return [
        Code.objects.create(course=world.course, category=category, name=name, colour=colour,
                            created_by=world.researcher1)
        for name, colour in [("Incurable patient", "#8c564b"), ("Witnessing injustice", "#d62728"),
                             ("Role confusion", "#e377c2")]
    ]


@pytest.fixture
def open_round(world, sections):
    return services.round_create(course=world.course, name="Pilot", coders=[world.researcher1, world.researcher2],
                                 sections=sections, actor=world.researcher1)


def seg(section, code, coder, start, end, round=None):
    return CodedSegment.objects.create(section=section, code=code, coder=coder, start=start, end=end,
                                       quote=section.text[start:end], section_revision=section.revision, round=round)


def closed(round, user):
    return services.round_close(round=round, actor=user)


def text(response):
    return html.unescape(response.content.decode())


def request_for(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


# --- Setting up a round -------------------------------------------------------------------


def test_researcher_sets_up_a_round_with_two_coders_and_chosen_sections(client, world, sections):
    client.force_login(world.researcher1)
    page = client.get(reverse("analysis:round_new", args=[world.course.pk]))
    assert page.status_code == 200
    assert "Case 1: A dying patient" in text(page)

    response = client.post(reverse("analysis:round_new", args=[world.course.pk]), {
        "name": "Pilot", "coders": [world.researcher1.pk, world.researcher2.pk],
        "sections": [sections[0].pk, sections[2].pk],
    })

    round = CodingRound.objects.get()
    assert response.status_code == 302 and response.url == reverse("analysis:round_detail", args=[round.pk])
    assert round.is_open and round.created_by == world.researcher1
    assert set(round.coders.all()) == {world.researcher1, world.researcher2}
    assert set(round.sections.all()) == {sections[0], sections[2]}
    assert AuditEvent.objects.filter(action="round.create", object_id=str(round.pk)).exists()


@pytest.mark.parametrize("change, message", [
    ({"coders": "one"}, "two or more coders"),
    ({"coders": "coleader"}, "Select a valid choice"),
    ({"sections": "none"}, "Choose at least one note section"),
    ({"sections": "other course"}, "Select a valid choice"),
    ({"name": ""}, "This field is required"),
])
def test_round_form_refuses_bad_input_and_creates_nothing(client, world, sections, change, message):
    data = {"name": "Pilot", "coders": [world.researcher1.pk, world.researcher2.pk], "sections": [sections[0].pk]}
    if change.get("coders") == "one":
        data["coders"] = [world.researcher1.pk]
    if change.get("coders") == "coleader":
        data["coders"] = [world.researcher1.pk, world.coleader1.pk]
    if change.get("sections") == "none":
        data["sections"] = []
    if change.get("sections") == "other course":
        data["sections"] = [_draft_section(world).pk]
    if "name" in change:
        data["name"] = change["name"]
    client.force_login(world.researcher1)

    response = client.post(reverse("analysis:round_new", args=[world.course.pk]), data)

    assert response.status_code == 200
    assert message in text(response)
    assert not CodingRound.objects.exists()


def _draft_section(world):
    meeting = Meeting.objects.create(group=world.group, number=9, starts_at=timezone.now() - DAY)
    return note_open(meeting=meeting, author=world.coleader2).sections.first()


def test_round_create_service_checks_coders_and_sections(world, sections):
    make = dict(course=world.course, name="X", sections=sections, actor=world.researcher1)
    with pytest.raises(CodingError, match="two or more"):
        services.round_create(**make | {"coders": [world.researcher1, world.researcher1]})
    with pytest.raises(CodingError, match="Only researchers"):
        services.round_create(**make | {"coders": [world.researcher1, world.coleader1]})
    with pytest.raises(CodingError, match="not research data"):
        services.round_create(**make | {"coders": [world.researcher1, world.researcher2],
                                        "sections": [sections[0], _draft_section(world)]})
    with pytest.raises(CodingError, match="name"):
        services.round_create(**make | {"name": "  ", "coders": [world.researcher1, world.researcher2]})
    assert not CodingRound.objects.exists()


# --- Blindness ----------------------------------------------------------------------------


def test_open_round_is_blind_on_every_page_and_by_url(client, world, sections, codes, open_round):
    secret = seg(sections[0], codes[0], world.researcher1, 4, 11, open_round)  # "student"
    mine = seg(sections[1], codes[1], world.researcher2, 2, 12, open_round)
    client.force_login(world.researcher2)

    detail = text(client.get(reverse("analysis:round_detail", args=[open_round.pk])))
    assert "1 of 4 sections coded" in detail  # own progress only
    assert "researcher1</span>:" not in detail and detail.count("sections coded") == 1

    agreement_page = client.get(reverse("analysis:round_agreement", args=[open_round.pk]))
    assert agreement_page.status_code == 200
    assert "still open" in text(agreement_page)
    assert "comparison" not in agreement_page.context

    for section, code in [(sections[0], codes[0]), (sections[1], codes[1])]:
        url = reverse("analysis:disagreement", args=[open_round.pk, section.pk, code.pk])
        assert client.get(url).status_code == 404
        assert client.post(url, {"kept": "none", "why": "peek"}).status_code == 404
    assert not Resolution.objects.exists()

    assert list(visible_segments(request_for(world.researcher2), open_round)) == [mine]
    assert list(visible_segments(request_for(world.researcher1), open_round)) == [secret]
    # Round segments are not part of the shared coding either.
    assert not visible_segments(request_for(world.researcher2)).exists()


def test_a_researcher_who_is_not_a_coder_sees_no_segments_of_an_open_round(world, sections, codes):
    third = make_user("researcher3")
    Membership.objects.create(user=third, course=world.course, role=Role.RESEARCHER)
    round = services.round_create(course=world.course, name="R", coders=[world.researcher1, world.researcher2],
                                  sections=sections, actor=third)
    seg(sections[0], codes[0], world.researcher1, 0, 3, round)
    assert not visible_segments(request_for(third), round).exists()


# --- Closing ------------------------------------------------------------------------------


def test_coder_closes_the_round_after_confirming(client, world, open_round):
    client.force_login(world.researcher2)
    url = reverse("analysis:round_close", args=[open_round.pk])

    unconfirmed = client.post(url)
    open_round.refresh_from_db()
    assert unconfirmed.status_code == 302 and open_round.is_open

    response = client.post(url, {"confirm": "1"})
    open_round.refresh_from_db()
    assert response.url == reverse("analysis:round_agreement", args=[open_round.pk])
    assert not open_round.is_open and open_round.closed_at is not None
    assert AuditEvent.objects.filter(action="round.close", object_id=str(open_round.pk)).count() == 1

    again = client.post(url, {"confirm": "1"}, follow=True)
    assert "already closed" in text(again)
    assert AuditEvent.objects.filter(action="round.close").count() == 1


def test_only_creator_or_coder_may_close(client, world, sections):
    third = make_user("researcher3")
    Membership.objects.create(user=third, course=world.course, role=Role.RESEARCHER)
    round = services.round_create(course=world.course, name="R", coders=[world.researcher1, world.researcher2],
                                  sections=sections, actor=world.researcher1)
    client.force_login(third)
    detail = text(client.get(reverse("analysis:round_detail", args=[round.pk])))
    assert "Close round" not in detail
    response = client.post(reverse("analysis:round_close", args=[round.pk]), {"confirm": "1"}, follow=True)
    round.refresh_from_db()
    assert round.is_open
    assert "Only the round's creator or one of its coders" in text(response)


def test_closing_freezes_round_segments_and_leaves_shared_coding_alone(world, sections, codes, open_round):
    seg(sections[0], codes[0], world.researcher1, 0, 3, open_round)
    closed(open_round, world.researcher1)
    assert CodedSegment.objects.filter(round=open_round).count() == 1
    assert not CodedSegment.objects.filter(round__isnull=True).exists()
    assert visible_segments(request_for(world.researcher2), open_round).count() == 1  # now everyone's
    from analysis.services import segment_create
    with pytest.raises(CodingError, match="closed"):
        segment_create(section=sections[0], code=codes[0], coder=world.researcher1, start=0, end=2, round=open_round)


# --- Agreement ----------------------------------------------------------------------------


def hand_worked(world, sections, codes, round):
    """Code 0 present for A (researcher1) in sections 1, 2 and for B (researcher2) in 2, 3."""
    a, b = world.researcher1, world.researcher2
    seg(sections[0], codes[0], a, 0, 11, round)
    seg(sections[1], codes[0], a, 0, 9, round)
    seg(sections[1], codes[0], b, 2, 9, round)
    seg(sections[2], codes[0], b, 4, 9, round)


def test_agreement_page_shows_the_hand_worked_example(client, world, sections, codes, open_round):
    hand_worked(world, sections, codes, open_round)
    closed(open_round, world.researcher1)
    client.force_login(world.researcher2)

    response = client.get(reverse("analysis:round_agreement", args=[open_round.pk]))

    comparison = response.context["comparison"]
    first = comparison.section_level[0]
    assert first.code_id == codes[0].pk and first.units == 4
    assert first.percent == 0.5
    assert first.kappa == 0.0
    assert first.alpha == pytest.approx(0.125, abs=1e-12)  # 1 - (4/8) / (32/56)
    page = text(response)
    assert "50.0 %" in page and "0.000" in page and "0.125" in page
    row = response.context["rows"][0]
    assert row["section"]["percent"]["text"] == "50.0 %"
    assert row["section"]["kappa"]["text"] == "0.000"


def test_agreement_numbers_equal_the_agreement_module(client, world, sections, codes, open_round):
    hand_worked(world, sections, codes, open_round)
    a, b = world.researcher1, world.researcher2
    seg(sections[3], codes[1], a, 0, 5, open_round)
    seg(sections[3], codes[1], b, 3, 20, open_round)
    seg(sections[0], codes[1], b, 10, 30, open_round)
    closed(open_round, a)
    client.force_login(a)

    comparison = client.get(reverse("analysis:round_agreement", args=[open_round.pk])).context["comparison"]

    ids = [s.pk for s in sections]
    code_ids = [c.pk for c in comparison.codes]  # the page's order: category, then name
    assert sorted(code_ids) == sorted(c.pk for c in codes)
    presence = {a.pk: {codes[0].pk: {ids[0], ids[1]}, codes[1].pk: {ids[3]}},
                b.pk: {codes[0].pk: {ids[1], ids[2]}, codes[1].pk: {ids[3], ids[0]}}}
    spans = {a.pk: {codes[0].pk: {ids[0]: [(0, 11)], ids[1]: [(0, 9)]}, codes[1].pk: {ids[3]: [(0, 5)]}},
             b.pk: {codes[0].pk: {ids[1]: [(2, 9)], ids[2]: [(4, 9)]},
                    codes[1].pk: {ids[3]: [(3, 20)], ids[0]: [(10, 30)]}}}
    lengths = {s.pk: len(s.text) for s in sections}
    assert comparison.section_level == agreement.section_level(presence, ids, code_ids)
    assert comparison.character_level == agreement.character_level(spans, lengths, code_ids)
    # Pooled: each (section, code) pair is a unit.
    pooled_a = [s in presence[a.pk].get(c, ()) for c in code_ids for s in ids]
    pooled_b = [s in presence[b.pk].get(c, ()) for c in code_ids for s in ids]
    assert comparison.pooled_section.units == 12
    assert comparison.pooled_section.kappa == pytest.approx(agreement.cohens_kappa(pooled_a, pooled_b), abs=1e-12)
    assert comparison.pooled_section.alpha == pytest.approx(
        agreement.krippendorff_alpha_nominal([pooled_a, pooled_b]), abs=1e-12)
    assert comparison.pooled_character.units == 3 * sum(lengths.values())


def test_one_coder_coded_nothing_and_unused_codes_are_not_defined(client, world, sections, codes, open_round):
    seg(sections[0], codes[0], world.researcher1, 0, 11, open_round)  # researcher2 coded nothing
    closed(open_round, world.researcher1)
    client.force_login(world.researcher1)

    response = client.get(reverse("analysis:round_agreement", args=[open_round.pk]))

    rows = {row["code"].pk: row for row in response.context["rows"]}
    used = rows[codes[0].pk]["section"]
    assert used["percent"]["text"] == "75.0 %"
    assert used["result"].kappa == 0.0  # B is constant "absent": agreement no better than chance
    unused = rows[codes[2].pk]
    for level in ("section", "character"):
        assert unused[level]["result"].kappa is None and unused[level]["result"].alpha is None
        assert unused[level]["kappa"]["text"] is None and unused[level]["kappa"]["reason"]
        assert unused[level]["percent"]["text"] == "100.0 %"
    assert "not defined" in text(response)
    assert [(d.section, d.code, d.kind) for d in response.context["comparison"].disagreements] == [
        (sections[0], codes[0], "presence")]


def test_three_coders_get_alpha_but_no_kappa(client, world, sections, codes):
    third = make_user("researcher3")
    Membership.objects.create(user=third, course=world.course, role=Role.RESEARCHER)
    round = services.round_create(course=world.course, name="Three",
                                  coders=[world.researcher1, world.researcher2, third], sections=sections,
                                  actor=world.researcher1)
    for coder, where in [(world.researcher1, [0, 1]), (world.researcher2, [1]), (third, [1, 2])]:
        for i in where:
            seg(sections[i], codes[0], coder, 0, 5, round)
    closed(round, third)
    client.force_login(world.researcher2)

    response = client.get(reverse("analysis:round_agreement", args=[round.pk]))

    result = response.context["comparison"].section_level[0]
    assert result.kappa is None
    ratings = [[True, True, False, False], [False, True, False, False], [False, True, True, False]]
    assert result.alpha == pytest.approx(agreement.krippendorff_alpha_nominal(ratings), abs=1e-12)
    assert result.percent == 0.5
    assert "Cohen's κ</th>" not in text(response)


def test_character_level_disagreement_on_extent_is_listed(world, sections, codes, open_round):
    seg(sections[0], codes[0], world.researcher1, 0, 11, open_round)
    seg(sections[0], codes[0], world.researcher2, 0, 20, open_round)
    seg(sections[1], codes[0], world.researcher1, 0, 5, open_round)
    seg(sections[1], codes[0], world.researcher1, 3, 9, open_round)
    seg(sections[1], codes[0], world.researcher2, 0, 9, open_round)  # same text as A's two overlapping ones
    closed(open_round, world.researcher1)
    found = services.disagreements(open_round)
    assert [(d.section, d.kind) for d in found] == [(sections[0], "extent")]


def test_withdrawn_consent_takes_a_section_out_of_the_agreement(client, world, sections, codes, open_round):
    hand_worked(world, sections, codes, open_round)
    closed(open_round, world.researcher1)
    consent(world, world.participants[1], "withdrawn", timezone.now(), scope="past")  # S2: case 2 and discussions
    client.force_login(world.researcher1)
    response = client.get(reverse("analysis:round_agreement", args=[open_round.pk]))
    comparison = response.context["comparison"]
    assert [s.pk for s in comparison.sections] == [sections[0].pk]
    assert comparison.section_level[0].units == 1
    assert response.context["left_out"] == 3
    assert client.get(reverse("analysis:disagreement",
                              args=[open_round.pk, sections[1].pk, codes[0].pk])).status_code == 404


# --- Disagreements and resolution -----------------------------------------------------------


def test_disagreement_view_shows_each_coder_side_by_side(client, world, sections, codes, open_round):
    hand_worked(world, sections, codes, open_round)
    closed(open_round, world.researcher1)
    client.force_login(world.researcher2)

    response = client.get(reverse("analysis:disagreement", args=[open_round.pk, sections[1].pk, codes[0].pk]))

    assert response.status_code == 200
    columns = response.context["columns"]
    assert [c["coder"] for c in columns] == [world.researcher1, world.researcher2]
    assert "".join(p["text"] for p in columns[0]["pieces"]) == sections[1].text
    page = text(response)
    assert f'<mark class="code-{codes[0].pk} round-differs">A </mark>' in page  # A coded 0-9, B 2-9
    assert f'<mark class="code-{codes[0].pk}">consult</mark>' in page
    assert "style=" not in page


def test_resolution_copies_kept_segments_into_shared_coding(client, world, sections, codes, open_round):
    hand_worked(world, sections, codes, open_round)
    closed(open_round, world.researcher1)
    client.force_login(world.researcher2)
    url = reverse("analysis:disagreement", args=[open_round.pk, sections[0].pk, codes[0].pk])

    response = client.post(url, {"kept": str(world.researcher1.pk), "why": "It is a dying patient."})

    assert response.status_code == 302
    resolution = Resolution.objects.get()
    assert (resolution.section, resolution.code, resolution.kept_coder, resolution.decided_by) == (
        sections[0], codes[0], world.researcher1, world.researcher2)
    assert resolution.why == "It is a dying patient."
    shared = CodedSegment.objects.get(round__isnull=True)
    original = CodedSegment.objects.get(round=open_round, section=sections[0], coder=world.researcher1)
    assert (shared.section, shared.code, shared.coder, shared.start, shared.end, shared.quote,
            shared.section_revision) == (original.section, original.code, original.coder, original.start,
                                         original.end, original.quote, original.section_revision)
    assert CodedSegment.objects.filter(round=open_round).count() == 4  # the round's record stays
    memo = Memo.objects.get(round=open_round)
    assert memo.author == world.researcher2 and "It is a dying patient." in memo.text
    assert AuditEvent.objects.filter(action="resolution.record").count() == 1
    assert AuditEvent.objects.filter(action="segment.create", object_id=str(shared.pk)).exists()
    listing = client.get(reverse("analysis:round_agreement", args=[open_round.pk]))
    states = {(d.section.pk, d.code.pk): d.resolved for d in listing.context["comparison"].disagreements}
    assert states == {(sections[0].pk, codes[0].pk): True,  # A only
                      (sections[1].pk, codes[0].pk): False,  # both, A 0-9 and B 2-9
                      (sections[2].pk, codes[0].pk): False}  # B only


def test_a_second_resolution_replaces_the_first(client, world, sections, codes, open_round):
    hand_worked(world, sections, codes, open_round)
    closed(open_round, world.researcher1)
    client.force_login(world.researcher1)
    url = reverse("analysis:disagreement", args=[open_round.pk, sections[1].pk, codes[0].pk])
    client.post(url, {"kept": str(world.researcher1.pk), "why": "First thoughts."})
    assert CodedSegment.objects.get(round__isnull=True).coder == world.researcher1

    client.force_login(world.researcher2)
    client.post(url, {"kept": str(world.researcher2.pk), "why": "On reflection, B's span is tighter."})

    resolution = Resolution.objects.get()
    assert (resolution.kept_coder, resolution.decided_by) == (world.researcher2, world.researcher2)
    shared = CodedSegment.objects.get(round__isnull=True)
    assert (shared.coder, shared.start, shared.end) == (world.researcher2, 2, 9)
    assert Memo.objects.filter(round=open_round).count() == 2  # both reasons stay on record

    client.post(url, {"kept": "none", "why": "Neither: not about this trigger."})
    assert Resolution.objects.get().kept_coder is None
    assert not CodedSegment.objects.filter(round__isnull=True).exists()


def test_resolution_needs_a_why_and_changes_nothing_without_it(client, world, sections, codes, open_round):
    hand_worked(world, sections, codes, open_round)
    closed(open_round, world.researcher1)
    client.force_login(world.researcher1)
    url = reverse("analysis:disagreement", args=[open_round.pk, sections[0].pk, codes[0].pk])
    response = client.post(url, {"kept": str(world.researcher1.pk), "why": "   "})
    assert response.status_code == 200 and "Say why" in text(response)
    response = client.post(url, {"kept": str(world.coleader1.pk), "why": "x"})
    assert response.status_code == 200
    assert not Resolution.objects.exists() and not Memo.objects.exists()
    assert not CodedSegment.objects.filter(round__isnull=True).exists()


def test_resolution_service_refuses_open_rounds_and_strangers(world, sections, codes, open_round):
    record = dict(round=open_round, section=sections[0], code=codes[0], why="w", actor=world.researcher1)
    with pytest.raises(CodingError, match="closed"):
        services.resolution_record(**record, kept_coder=None)
    closed(open_round, world.researcher1)
    with pytest.raises(CodingError, match="one of the round's coders"):
        services.resolution_record(**record, kept_coder=world.coleader1)
    assert not Resolution.objects.exists()


# --- Lists and scoping --------------------------------------------------------------------


def test_round_list_shows_rounds_in_a_fixed_number_of_queries(client, world, sections, django_assert_num_queries):
    for i in range(3):
        services.round_create(course=world.course, name=f"Round {i}", coders=[world.researcher1, world.researcher2],
                              sections=sections[: i + 1], actor=world.researcher2)
    client.force_login(world.researcher1)
    url = reverse("analysis:round_list", args=[world.course.pk])
    # session, user, memberships, course, rounds, coders
    with django_assert_num_queries(6):
        response = client.get(url)
    page = text(response)
    assert "Round 0" in page and "Round 2" in page and "researcher2" in page


def _urls(world, round, section, code):
    return {
        "round_list": (reverse("analysis:round_list", args=[world.course.pk]), ["GET"]),
        "round_new": (reverse("analysis:round_new", args=[world.course.pk]), ["GET", "POST"]),
        "round_detail": (reverse("analysis:round_detail", args=[round.pk]), ["GET"]),
        "round_close": (reverse("analysis:round_close", args=[round.pk]), ["POST"]),
        "round_agreement": (reverse("analysis:round_agreement", args=[round.pk]), ["GET"]),
        "disagreement": (reverse("analysis:disagreement", args=[round.pk, section.pk, code.pk]), ["GET", "POST"]),
    }


def test_anonymous_is_sent_to_login(client, world, sections, codes, open_round):
    for url, methods in _urls(world, open_round, sections[0], codes[0]).values():
        for method in methods:
            response = getattr(client, method.lower())(url)
            assert response.status_code == 302 and "/accounts/login/" in response.url, url


@pytest.mark.parametrize("who", ["coleader1", "leader", "admin", "outsider", "admin2", "leader2", "researcher_elsewhere"])
def test_everyone_but_the_course_researchers_gets_404(client, world, sections, codes, open_round, who):
    closed(open_round, world.researcher1)  # closed, so the disagreement view exists for researchers
    if who == "researcher_elsewhere":
        user = make_user("researcher9")
        Membership.objects.create(user=user, course=world.course2, role=Role.RESEARCHER)
    else:
        user = getattr(world, who)
    client.force_login(user)
    for url, methods in _urls(world, open_round, sections[0], codes[0]).values():
        for method in methods:
            assert getattr(client, method.lower())(url).status_code == 404, (who, method, url)
    assert not Resolution.objects.exists()


def test_wrong_methods_get_405(client, world, sections, codes, open_round):
    client.force_login(world.researcher1)
    urls = _urls(world, open_round, sections[0], codes[0])
    assert client.post(urls["round_list"][0]).status_code == 405
    assert client.post(urls["round_detail"][0]).status_code == 405
    assert client.post(urls["round_agreement"][0]).status_code == 405
    assert client.get(urls["round_close"][0]).status_code == 405
    assert client.put(urls["disagreement"][0]).status_code == 405
    open_round.refresh_from_db()
    assert open_round.is_open
