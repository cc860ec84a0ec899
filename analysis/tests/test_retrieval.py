"""Retrieval and matrices: segment search, code × session and code × case,
co-occurrence and saturation, on a small hand-made study whose counts are
worked out below by hand.

The study (all consent given before the sessions; times relative to T):

    Group A, session 1 (T)      S1 presents case "Night shift", S2 "Ward round"; S1, S2 attend
    Group B, session 1 (T+3d)   S4 presents "Clinic"; S4 attends
    Group A, session 2 (T+7d)   S3 presents "Hospice"; S1, S3 attend (S2 absent)

Codes: Contexts (per case): PAT. Triggers (per case): INJ, ROLE.
Themes (per session): FEEL, IDEN.

Segments (shared coding; researcher1 unless said):

    #1  A1 coleader1, case Night shift   INJ  [0, 20)
    #2  A1 coleader1, case Night shift   FEEL [10, 30)    overlaps #1
    #3  A1 coleader2, case Night shift   ROLE [0, 15)     researcher2, the other co-leader's note
    #4  A1 coleader1, case Ward round    ROLE [0, 10)
    #5  A1 coleader1, discussion         FEEL [0, 10)
    #6  A1 coleader1, discussion         IDEN [5, 15)     researcher2, overlaps #5
    #7  A2 coleader1, case Hospice       INJ  [0, 10)
    #8  A2 coleader1, discussion         IDEN [0, 10)
    #9  B1 coleaderB, case Clinic        PAT  [0, 10)
    #10 B1 coleaderB, discussion         FEEL [0, 10)
    an open double-coding round's FEEL on Hospice [0, 5): never counted

Case codings (set on the case directly): Ward round INJ; Hospice ROLE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from analysis import queries
from analysis.models import CaseCoding, Category, Code, CodedSegment, CodingRound
from analysis.queries import Mode, SegmentFilter
from conftest import make_user
from fieldnotes import services
from fieldnotes.models import NoteSection
from sessions.models import Attendance, CasePresentation, Consent, Meeting, Membership, Participant, Role

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


@dataclass
class Study:
    world: object
    codes: dict
    categories: dict
    meetings: dict
    cases: dict
    sections: dict
    segments: dict
    round: CodingRound


def consent(world, participant, decision, when, scope=""):
    return Consent.objects.create(
        participant=participant, form=world.form if decision != "withdrawn" else None, form_version=1,
        form_text=world.form.text, decision=decision, decided_at=when, method="paper", withdrawal_scope=scope,
        recorded_by=world.leader,
    )


def submit(meeting, author, texts_by_kind):
    """Open and submit a note; `texts_by_kind` maps "discussion" or a case's title to its text."""
    note = services.note_open(meeting=meeting, author=author)
    texts, sections = {}, {}
    for section in note.sections.select_related("case"):
        key = section.case.title if section.case_id else section.kind
        if key in texts_by_kind:
            texts[section.pk] = texts_by_kind[key]
        sections[key] = section
    services.note_submit(note=note, base_version=note.version, texts=texts, actor=author)
    for section in sections.values():
        section.refresh_from_db()
    return sections


TEXT = "abcdefghij klmnopqrst uvwxyzabcd efghijklmn opqrstuvwx yz"


@pytest.fixture
def study(world) -> Study:
    r1, r2 = world.researcher1, world.researcher2
    s1, s2, s3 = world.participants
    s4 = Participant.objects.create(course=world.course, group=world.other_group, pseudonym="S4", name="Ville Vieras")
    coleader_b = make_user("coleaderb")
    Membership.objects.create(user=coleader_b, course=world.course, group=world.other_group, role=Role.COLEADER)
    t = timezone.now() - 30 * DAY
    for p in (s1, s2, s3, s4):
        consent(world, p, "given", t - 10 * DAY)

    def meeting(group, number, when, present):
        m = Meeting.objects.create(group=group, number=number, starts_at=when, status=Meeting.Status.HELD)
        for p in present:
            Attendance.objects.create(meeting=m, participant=p, present=True)
        return m

    a1 = meeting(world.group, 1, t, [s1, s2])
    b1 = meeting(world.other_group, 1, t + 3 * DAY, [s4])
    a2 = meeting(world.group, 2, t + 7 * DAY, [s1, s3])
    cases = {
        "night": CasePresentation.objects.create(meeting=a1, presenter=s1, order=1, title="Night shift"),
        "ward": CasePresentation.objects.create(meeting=a1, presenter=s2, order=2, title="Ward round"),
        "clinic": CasePresentation.objects.create(meeting=b1, presenter=s4, order=1, title="Clinic"),
        "hospice": CasePresentation.objects.create(meeting=a2, presenter=s3, order=1, title="Hospice"),
    }
    everything = {"Night shift": TEXT, "Ward round": TEXT, "Clinic": TEXT, "Hospice": TEXT, "discussion": TEXT}
    a1_c1 = submit(a1, world.coleader1, everything)
    a1_c2 = submit(a1, world.coleader2, everything)
    a2_c1 = submit(a2, world.coleader1, everything)
    b1_cb = submit(b1, coleader_b, everything)
    sections = {
        "night": a1_c1["Night shift"], "night_b": a1_c2["Night shift"], "ward": a1_c1["Ward round"],
        "d_a1": a1_c1["discussion"], "hospice": a2_c1["Hospice"], "d_a2": a2_c1["discussion"],
        "clinic": b1_cb["Clinic"], "d_b1": b1_cb["discussion"],
    }

    categories = {
        "contexts": Category.objects.create(course=world.course, name="Contexts", unit="case", order=0),
        "triggers": Category.objects.create(course=world.course, name="Triggers", unit="case", order=1),
        "themes": Category.objects.create(course=world.course, name="Themes", unit="session", order=2),
    }
    codes = {
        name: Code.objects.create(course=world.course, category=categories[cat], name=name, created_by=r1)
        for name, cat in [("PAT", "contexts"), ("INJ", "triggers"), ("ROLE", "triggers"), ("FEEL", "themes"),
                          ("IDEN", "themes")]
    }

    def seg(section, code, start, end, coder=r1, round=None):
        section = sections[section]
        return CodedSegment.objects.create(
            section=section, code=codes[code], coder=coder, start=start, end=end, quote=section.text[start:end],
            section_revision=section.revision, round=round,
        )

    segments = {
        1: seg("night", "INJ", 0, 20), 2: seg("night", "FEEL", 10, 30), 3: seg("night_b", "ROLE", 0, 15, r2),
        4: seg("ward", "ROLE", 0, 10), 5: seg("d_a1", "FEEL", 0, 10), 6: seg("d_a1", "IDEN", 5, 15, r2),
        7: seg("hospice", "INJ", 0, 10), 8: seg("d_a2", "IDEN", 0, 10), 9: seg("clinic", "PAT", 0, 10),
        10: seg("d_b1", "FEEL", 0, 10),
    }
    open_round = CodingRound.objects.create(course=world.course, name="Round 1", created_by=r1)
    open_round.coders.set([r1, r2])
    seg("hospice", "FEEL", 0, 5, round=open_round)
    CaseCoding.objects.create(case=cases["ward"], code=codes["INJ"], set_by=r1, why="Said so in the discussion")
    CaseCoding.objects.create(case=cases["hospice"], code=codes["ROLE"], set_by=r1, why="Both notes imply it")
    return Study(world, codes, categories, {"a1": a1, "b1": b1, "a2": a2}, cases, sections, segments, open_round)


def url(name, study, **params):
    from urllib.parse import urlencode

    return reverse(f"analysis:{name}", args=[study.world.course.pk]) + ("?" + urlencode(params, doseq=True) if params else "")


def search(client, study, **params):
    client.force_login(study.world.researcher1)
    response = client.get(url("segment_search", study, **params))
    assert response.status_code == 200
    return response


def found(response) -> set[int]:
    return {row.pk for row in response.context["rows"]}


def numbered(study, *numbers) -> set[int]:
    return {study.segments[n].pk for n in numbers}


def code_ids(study, *names):
    return [study.codes[n].pk for n in names]


# --- Segment search ------------------------------------------------------------


def test_all_visible_segments_without_filters_leave_out_the_open_round(client, study):
    response = search(client, study)
    assert response.context["page"].paginator.count == 10
    assert found(response) == numbered(study, *range(1, 11))


def test_or_finds_segments_of_any_chosen_code(client, study):
    response = search(client, study, codes=code_ids(study, "INJ", "FEEL"), mode="or")
    assert found(response) == numbered(study, 1, 2, 5, 7, 10)


def test_and_finds_sections_where_all_chosen_codes_are(client, study):
    # INJ and FEEL meet only in coleader1's section on Night shift.
    response = search(client, study, codes=code_ids(study, "INJ", "FEEL"), mode="and")
    assert found(response) == numbered(study, 1, 2)


def test_and_within_case_counts_both_notes_and_codes_set_on_the_case(client, study):
    # Night shift: INJ (#1) and ROLE in the other co-leader's note (#3); Ward round: ROLE (#4),
    # INJ set directly; Hospice: INJ (#7), ROLE set directly.
    response = search(client, study, codes=code_ids(study, "INJ", "ROLE"), mode="and_case")
    assert found(response) == numbered(study, 1, 3, 4, 7)
    assert not search(client, study, codes=code_ids(study, "INJ", "ROLE"), mode="and").context["rows"]


def test_and_within_session(client, study):
    # INJ and IDEN meet in A1 (#1, #6) and A2 (#7, #8), not in B1.
    response = search(client, study, codes=code_ids(study, "INJ", "IDEN"), mode="and_session")
    assert found(response) == numbered(study, 1, 6, 7, 8)


def test_overlap_finds_segments_whose_ranges_intersect(client, study):
    assert found(search(client, study, codes=code_ids(study, "FEEL", "IDEN"), mode="overlap")) == numbered(study, 5, 6)
    assert found(search(client, study, codes=code_ids(study, "INJ", "FEEL"), mode="overlap")) == numbered(study, 1, 2)
    # Touching is not overlapping: [0, 10) and [10, 20) share no character.
    seg = study.segments[8]
    CodedSegment.objects.create(section=seg.section, code=study.codes["FEEL"], coder=seg.coder, start=10, end=20,
                                quote=seg.section.text[10:20], section_revision=seg.section.revision)
    assert found(search(client, study, codes=code_ids(study, "IDEN", "FEEL"), mode="overlap")) == numbered(study, 5, 6)


@pytest.mark.parametrize("param, value, expected", [
    ("group", lambda s: s.world.other_group.pk, {9, 10}),
    ("session", lambda s: s.meetings["a2"].pk, {7, 8}),
    ("coder", lambda s: s.world.researcher2.pk, {3, 6}),
    ("category", lambda s: s.categories["themes"].pk, {2, 5, 6, 8, 10}),
    ("case", lambda s: s.cases["night"].pk, {1, 2, 3}),
])
def test_each_filter(client, study, param, value, expected):
    assert found(search(client, study, **{param: value(study)})) == numbered(study, *expected)


def test_date_filter_uses_the_sessions_local_date(client, study):
    b1_day = timezone.localtime(study.meetings["b1"].starts_at, study.world.course.tz).date()
    assert found(search(client, study, date_from=b1_day, date_to=b1_day)) == numbered(study, 9, 10)
    assert found(search(client, study, date_from=b1_day)) == numbered(study, 7, 8, 9, 10)
    assert found(search(client, study, date_to=b1_day - DAY)) == numbered(study, *range(1, 7))


def test_filters_combine_with_codes(client, study):
    response = search(client, study, codes=code_ids(study, "FEEL"), group=study.world.group.pk)
    assert found(response) == numbered(study, 2, 5)


def test_bad_filters_get_a_message_not_an_error(client, study):
    response = search(client, study, codes="nonsense", date_from="2026-05-01", date_to="2026-04-01")
    assert response.context["page"] is None
    assert "The first date is after the last one." in response.text
    other_course_code = Code.objects.create(course=study.world.course2, category=Category.objects.create(
        course=study.world.course2, name="Theirs"), name="Theirs", created_by=study.world.admin2)
    response = search(client, study, codes=other_course_code.pk)
    assert response.context["page"] is None


def test_rows_show_code_session_section_coder_and_marked_context(client, study):
    long_before = "Alpha " * 30  # 180 characters
    section = study.sections["d_b1"]
    NoteSection.objects.filter(pk=section.pk).update(text=long_before + "the quoted words" + " omega" * 40)
    seg = study.segments[10]
    CodedSegment.objects.filter(pk=seg.pk).update(start=180, end=196, quote="the quoted words")
    response = search(client, study, group=study.world.other_group.pk)
    text = response.text
    assert '<mark class="code-mark code-%d">the quoted words</mark>' % study.codes["FEEL"].pk in text
    row = next(r for r in response.context["rows"] if r.pk == seg.pk)
    assert row.cut_before and row.cut_after
    assert row.before.startswith("Alpha") and len(row.before) <= 120
    assert row.after.startswith(" omega") and len(row.after) <= 120
    assert "Case 1: Clinic (S4)" in text and "Group discussion" in text
    assert "Group B · session 1" in text
    assert reverse("analysis:coding_page", args=[section.pk]) in text
    assert reverse("analysis:case_analysis", args=[study.cases["clinic"].pk]) in text
    assert reverse("analysis:codes_css", args=[study.world.course.pk]) in text
    assert "Ville Vieras" not in text  # the presenter is S4 to research


def test_context_counts_code_points(client, study):
    section = study.sections["d_b1"]
    text = "😀é\u0301 " * 50 + "target" + " 🎉" * 80
    NoteSection.objects.filter(pk=section.pk).update(text=text)
    start = text.index("target")
    CodedSegment.objects.filter(pk=study.segments[10].pk).update(start=start, end=start + 6, quote="target")
    row = next(r for r in search(client, study, group=study.world.other_group.pk).context["rows"]
               if r.pk == study.segments[10].pk)
    assert row.marked == "target"
    assert text[start - 120:start].endswith(row.before) and row.cut_before
    assert text[start + 6:].startswith(row.after)


def test_paging_keeps_the_filters(client, study):
    seg = study.segments[5]
    for i in range(30):
        CodedSegment.objects.create(section=seg.section, code=seg.code, coder=seg.coder, start=i, end=i + 1,
                                    quote=seg.section.text[i], section_revision=seg.section.revision)
    feel = study.codes["FEEL"].pk
    first = search(client, study, codes=feel)
    assert first.context["page"].paginator.count == 33 and len(first.context["rows"]) == 25
    assert f"?codes={feel}&amp;page=2" in first.text
    second = search(client, study, codes=feel, page=2)
    assert len(second.context["rows"]) == 8
    assert not found(first) & found(second)
    assert search(client, study, codes=feel, page=99).context["page"].number == 2


def test_rows_are_read_for_any_number_of_ids_in_the_order_given(study, django_assert_num_queries):
    seg = study.segments[5]
    extra = [CodedSegment.objects.create(section=seg.section, code=seg.code, coder=seg.coder, start=i, end=i + 2,
                                         quote=seg.section.text[i:i + 2], section_revision=seg.section.revision)
             for i in range(30)]
    ids = [s.pk for s in reversed(extra)] + [seg.pk]
    with django_assert_num_queries(2):  # a page's worth of ids at a time
        rows = queries.segment_rows(ids)
    assert [r.pk for r in rows] == ids
    assert [r.marked for r in rows[:2]] == [seg.section.text[29:31], seg.section.text[28:30]]
    assert rows[-1].quote == seg.quote


# --- Matrices ------------------------------------------------------------------


def test_code_session_matrix_counts_segments(client, study):
    client.force_login(study.world.researcher1)
    matrix = client.get(url("matrix", study)).context["sessions"]
    # Columns per group in session order: A1, A2, then B1.
    assert [m.pk for m in matrix.meetings] == [study.meetings[k].pk for k in ("a1", "a2", "b1")]
    cells = {
        (row.code.name, m.pk): cell.count
        for _, rows in matrix.categories for row in rows for m, cell in zip(matrix.meetings, row.cells)
    }
    a1, a2, b1 = (study.meetings[k].pk for k in ("a1", "a2", "b1"))
    assert cells[("FEEL", a1)] == 2 and cells[("FEEL", a2)] == 0 and cells[("FEEL", b1)] == 1  # round not counted
    assert cells[("ROLE", a1)] == 2 and cells[("INJ", a1)] == 1 and cells[("INJ", a2)] == 1
    assert cells[("IDEN", a1)] == 1 and cells[("IDEN", a2)] == 1 and cells[("PAT", b1)] == 1
    assert sum(cells.values()) == 10
    assert [cat.name for cat, _ in matrix.categories] == ["Contexts", "Triggers", "Themes"]
    row = next(r for _, rows in matrix.categories for r in rows if r.code.name == "FEEL")
    assert (row.total, row.units) == (3, 2)
    # The cell links to exactly its segments.
    link = row.cells[0].filter.querystring()
    assert found(search(client, study, **dict(p.split("=") for p in link.split("&")))) == numbered(study, 2, 5)


def test_code_case_table_marks_segments_and_case_codings(client, study):
    client.force_login(study.world.researcher1)
    table = client.get(url("matrix", study)).context["cases"]
    assert [c.name for c in table.codes] == ["PAT", "INJ", "ROLE"]  # themes are counted per session
    cells = {(row.case.title, code.name): cell for row in table.rows for code, cell in zip(table.codes, row.cells)}
    assert (cells["Night shift", "INJ"].segments, cells["Night shift", "INJ"].set_directly) == (1, False)
    assert (cells["Night shift", "ROLE"].segments, cells["Night shift", "ROLE"].set_directly) == (1, False)  # #3
    assert (cells["Ward round", "INJ"].segments, cells["Ward round", "INJ"].set_directly) == (0, True)
    assert (cells["Hospice", "ROLE"].segments, cells["Hospice", "ROLE"].set_directly) == (0, True)
    assert not cells["Clinic", "INJ"].carries
    assert table.totals == [1, 3, 3]
    assert found(search(client, study, **{"codes": study.codes["ROLE"].pk, "case": study.cases["night"].pk})) == \
        numbered(study, 3)


# --- Co-occurrence ---------------------------------------------------------------


def table_counts(table) -> dict:
    return {(r.name, c.name): (cell.count if cell else None) for r, cells in table.rows for c, cell in
            zip(table.columns, cells)}


def test_cooccurrence_defaults_to_triggers_by_themes(client, study):
    client.force_login(study.world.researcher1)
    response = client.get(url("cooccurrence", study))
    assert response.context["row_category"].name == "Triggers"
    assert response.context["col_category"].name == "Themes"
    tables = response.context["tables"]
    assert table_counts(tables["overlap"]) == {
        ("INJ", "FEEL"): 1, ("INJ", "IDEN"): 0, ("ROLE", "FEEL"): 0, ("ROLE", "IDEN"): 0}
    # Cases: Night shift carries INJ, ROLE and FEEL; no case carries IDEN.
    assert table_counts(tables["case"]) == {
        ("INJ", "FEEL"): 1, ("INJ", "IDEN"): 0, ("ROLE", "FEEL"): 1, ("ROLE", "IDEN"): 0}
    # Sessions: A1 {INJ, ROLE, FEEL, IDEN}; A2 {INJ, IDEN, ROLE (set on Hospice)}; B1 {PAT, FEEL}.
    # The round's FEEL in A2 would make INJ × FEEL 2.
    assert table_counts(tables["session"]) == {
        ("INJ", "FEEL"): 1, ("INJ", "IDEN"): 2, ("ROLE", "FEEL"): 1, ("ROLE", "IDEN"): 2}
    for words in ("pairs of segments", "Counts are cases", "Counts are sessions"):
        assert words in response.text


def test_cooccurrence_within_one_category_and_its_links(client, study):
    client.force_login(study.world.researcher1)
    themes = study.categories["themes"].pk
    tables = client.get(url("cooccurrence", study, rows=themes, cols=themes)).context["tables"]
    overlap = table_counts(tables["overlap"])
    assert overlap == {("FEEL", "FEEL"): None, ("FEEL", "IDEN"): 1, ("IDEN", "FEEL"): 1, ("IDEN", "IDEN"): None}
    # Against itself: the units carrying the code.
    assert table_counts(tables["session"])[("FEEL", "FEEL")] == 2
    assert table_counts(tables["case"])[("FEEL", "FEEL")] == 1
    cell = tables["overlap"].rows[0][1][1]
    assert cell.filter == SegmentFilter(codes=(study.codes["FEEL"].pk, study.codes["IDEN"].pk), mode=Mode.OVERLAP)
    params = {"codes": list(cell.filter.codes), "mode": cell.filter.mode}
    assert found(search(client, study, **params)) == numbered(study, 5, 6)


def test_cooccurrence_counts_distinct_overlapping_pairs(client, study):
    seg = study.segments[6]  # IDEN [5, 15) in A1's discussion; FEEL #5 is [0, 10)
    CodedSegment.objects.create(section=seg.section, code=study.codes["FEEL"], coder=seg.coder, start=12, end=20,
                                quote="x", section_revision=seg.section.revision)
    CodedSegment.objects.create(section=seg.section, code=study.codes["IDEN"], coder=seg.coder, start=0, end=3,
                                quote="x", section_revision=seg.section.revision)
    # FEEL [0,10) × IDEN [5,15), FEEL [0,10) × IDEN [0,3), FEEL [12,20) × IDEN [5,15)
    counts = queries.overlap_counts(CodedSegment.objects.filter(round__isnull=True),
                                    row_codes=code_ids(study, "FEEL"), col_codes=code_ids(study, "IDEN"))
    assert counts == {(study.codes["FEEL"].pk, study.codes["IDEN"].pk): 3}


# --- Saturation ------------------------------------------------------------------


def test_saturation_in_session_order_across_groups(client, study):
    client.force_login(study.world.researcher1)
    response = client.get(url("saturation", study))
    rows = response.context["rows"]
    assert [r.meeting.pk for r in rows] == [study.meetings[k].pk for k in ("a1", "b1", "a2")]
    assert [(r.used, r.new, r.cumulative) for r in rows] == [(4, 4, 4), (2, 1, 5), (3, 0, 5)]
    assert [c.name for c in rows[0].new_codes] == ["INJ", "ROLE", "FEEL", "IDEN"]
    assert [c.name for c in rows[1].new_codes] == ["PAT"]
    assert "<svg" in response.text and "style=" not in response.text


# --- Consent and rounds ----------------------------------------------------------


def snapshot(client, study) -> dict:
    """What each of the four views counts."""
    client.force_login(study.world.researcher1)
    search_page = client.get(url("segment_search", study))
    matrix = client.get(url("matrix", study)).context
    tables = client.get(url("cooccurrence", study)).context["tables"]
    saturation_rows = client.get(url("saturation", study)).context["rows"]
    return {
        "segments": search_page.context["page"].paginator.count,
        "matrix": sum(row.total for _, rows in matrix["sessions"].categories for row in rows),
        "cases": [row.case.title for row in matrix["cases"].rows],
        "case_totals": matrix["cases"].totals,
        "session_pairs": table_counts(tables["session"]),
        "overlap_pairs": table_counts(tables["overlap"]),
        "saturation": [(r.new, r.cumulative) for r in saturation_rows],
    }


def test_withdrawal_of_past_data_removes_segments_from_all_four_views(client, study):
    before = snapshot(client, study)
    assert before["segments"] == 10 and before["matrix"] == 10
    # S1 presented Night shift and attended A1 and A2: both co-leaders' Night shift sections and
    # the discussions of A1 and A2 go; left are #4 (Ward round), #7 (Hospice), #9, #10 (B1).
    consent(study.world, study.world.participants[0], "withdrawn", timezone.now(), scope="past")
    after = snapshot(client, study)
    assert after["segments"] == 4 and after["matrix"] == 4
    assert found(search(client, study)) == numbered(study, 4, 7, 9, 10)
    assert after["cases"] == ["Ward round", "Hospice", "Clinic"]
    assert after["case_totals"] == [1, 2, 2]  # PAT: Clinic; INJ: Ward round (set), Hospice; ROLE: Ward round, Hospice (set)
    assert after["overlap_pairs"][("INJ", "FEEL")] == 0
    assert after["session_pairs"] == {("INJ", "FEEL"): 0, ("INJ", "IDEN"): 0, ("ROLE", "FEEL"): 0, ("ROLE", "IDEN"): 0}
    # A1: ROLE (#4), INJ (set on Ward round); B1: PAT, FEEL; A2: nothing new.
    assert after["saturation"] == [(2, 2), (2, 4), (0, 4)]


def test_withdrawal_for_the_future_only_keeps_past_segments(client, study):
    consent(study.world, study.world.participants[0], "withdrawn", timezone.now(), scope="future")
    assert snapshot(client, study)["segments"] == 10


def test_segments_of_an_open_round_are_not_counted_anywhere(client, study):
    before = snapshot(client, study)
    seg = study.segments[7]
    for code in ("FEEL", "IDEN", "PAT"):
        CodedSegment.objects.create(section=seg.section, code=study.codes[code], coder=study.world.researcher1,
                                    start=0, end=10, quote="x", section_revision=0, round=study.round)
    assert snapshot(client, study) == before


# --- Scoping and query counts ----------------------------------------------------

VIEWS = ["segment_search", "matrix", "cooccurrence", "saturation"]


@pytest.mark.parametrize("name", VIEWS)
def test_anonymous_is_sent_to_login(client, study, name):
    response = client.get(url(name, study))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


@pytest.mark.parametrize("name", VIEWS)
@pytest.mark.parametrize("who", ["coleader1", "leader", "admin", "outsider", "other_researcher"])
def test_only_the_courses_researchers_get_in(client, study, name, who):
    if who == "other_researcher":
        user = make_user("elsewhere")
        Membership.objects.create(user=user, course=study.world.course2, role=Role.RESEARCHER)
    else:
        user = getattr(study.world, who)
    client.force_login(user)
    assert client.get(url(name, study)).status_code == 404


@pytest.mark.parametrize("name", VIEWS)
def test_wrong_method_is_405(client, study, name):
    client.force_login(study.world.researcher1)
    assert client.post(url(name, study)).status_code == 405
    assert client.get(url(name, study)).status_code == 200


def add_segments(study, n):
    """n more FEEL segments spread over the sections (and a case coding per case)."""
    keys = list(study.sections)
    CodedSegment.objects.bulk_create([
        CodedSegment(section=study.sections[keys[i % len(keys)]], code=study.codes[["FEEL", "INJ", "IDEN"][i % 3]],
                     coder=study.world.researcher1, start=i % 40, end=i % 40 + 5, quote="x", section_revision=0)
        for i in range(n)
    ])


# Each page: session and user, memberships, course (4); then its own queries.
@pytest.mark.parametrize("name, params, queries", [
    # codes, coders, groups, sessions, cases (the form's choices); the ordered ids (counted in Python); the rows
    ("segment_search", {}, 4 + 7),
    ("segment_search", {"codes": ["FEEL", "INJ"], "mode": "and"}, 4 + 7),
    # ... and the cases carrying each code, from segments and from codes set on cases
    ("segment_search", {"codes": ["FEEL", "INJ"], "mode": "and_case"}, 4 + 9),
    ("segment_search", {"codes": ["FEEL", "IDEN"], "mode": "overlap"}, 4 + 7),
    # codes, sessions, cases; segments per code × session; per code × case; case codings
    ("matrix", {}, 4 + 6),
    # codes; overlap pairs; codes per case and session from segments and from case codings
    ("cooccurrence", {}, 4 + 4),
    # codes, sessions; codes per session from segments and from case codings
    ("saturation", {}, 4 + 4),
])
def test_query_count_does_not_grow_with_segments(client, study, django_assert_num_queries, name, params, queries):
    if "codes" in params:
        params = {**params, "codes": code_ids(study, *params["codes"]), "group": study.world.group.pk}
    client.force_login(study.world.researcher1)
    address = url(name, study, **params)
    client.get(address)
    for total in (10, 200):
        add_segments(study, total - CodedSegment.objects.filter(round__isnull=True).count())
        with django_assert_num_queries(queries):
            response = client.get(address)
        assert response.status_code == 200
        if name == "segment_search":
            assert len(response.context["rows"]) == min(25, response.context["page"].paginator.count)


def test_a_segment_flagged_for_review_shows_its_stored_quote(client, study):
    CodedSegment.objects.filter(pk=study.segments[9].pk).update(needs_review=True, quote="what was coded once")
    response = search(client, study, codes=study.codes["PAT"].pk)
    row = response.context["rows"][0]
    assert (row.before, row.marked, row.after) == ("", "what was coded once", "")
    assert "needs review" in response.text


def choice_ids(response, name):
    return [key for key, _ in response.context["form"].fields[name].choices if key != ""]


def test_a_large_course_lists_sessions_and_cases_of_the_chosen_group_only(client, study, monkeypatch):
    """Beyond LISTED_AT_MOST, a <select> of every session and case of the
    course is no use to anyone: the group narrows it, and a link naming a
    session or case still works."""
    from analysis.views import retrieval

    m = study.meetings
    assert choice_ids(search(client, study), "session") == [m["a1"].pk, m["a2"].pk, m["b1"].pk]
    monkeypatch.setattr(retrieval, "LISTED_AT_MOST", 2)  # the study has 3 sessions with research data, 4 cases
    response = search(client, study)
    assert choice_ids(response, "session") == [] and choice_ids(response, "case") == []
    assert "choose a group and press Find" in response.content.decode()
    response = search(client, study, group=study.world.other_group.pk)
    assert choice_ids(response, "session") == [m["b1"].pk]
    assert choice_ids(response, "case") == [study.cases["clinic"].pk]
    assert "choose a group" not in response.content.decode()
    response = search(client, study, group=study.world.group.pk)  # 2 sessions, but 3 cases
    assert choice_ids(response, "session") == [m["a1"].pk, m["a2"].pk] and choice_ids(response, "case") == []
    # a link from the matrix names a session without a group: it is offered and applied
    response = search(client, study, session=m["b1"].pk)
    assert choice_ids(response, "session") == [m["b1"].pk]
    assert found(response) == numbered(study, 9, 10)
    response = search(client, study, case=study.cases["hospice"].pk)
    assert choice_ids(response, "case") == [study.cases["hospice"].pk] and found(response) == numbered(study, 7)


def test_a_session_of_another_course_is_not_offered_even_by_id(client, study, monkeypatch):
    from analysis.views import retrieval

    monkeypatch.setattr(retrieval, "LISTED_AT_MOST", 2)
    elsewhere = Meeting.objects.create(group=study.world.group2, number=1, starts_at=timezone.now(),
                                       status=Meeting.Status.HELD)
    response = search(client, study, session=elsewhere.pk)
    assert choice_ids(response, "session") == []
    assert response.context["page"] is None  # "Select a valid choice": nothing listed, nothing leaked
    assert "group2" not in response.content.decode().lower()


@pytest.mark.parametrize("value", ["99999999999999999999", "-3", "²", "1e3", "", "0"])
def test_odd_group_session_and_case_ids_are_refused_or_ignored_not_a_crash(client, study, monkeypatch, value):
    from analysis.views import retrieval

    monkeypatch.setattr(retrieval, "LISTED_AT_MOST", 2)  # the narrowing code path reads the raw values
    client.force_login(study.world.researcher1)
    response = client.get(url("segment_search", study) + f"?group={value}&session={value}&case={value}")
    assert response.status_code == 200
    if value:
        assert response.context["page"] is None  # "Select a valid choice"
