"""The per-course report, on a small hand-made course whose every number is
worked out below by hand (none is computed by the code under test).

The course (Helsinki time, 2026):

    Participants   Group A: S1, S2 (consent given 1 Sep), S3 (declined 1 Sep)
                   Group B: S4 (given 1 Sep), S5 (given 1 Sep, withdrew 1 Oct *with past data*)

    Sessions       A1 Tue  8 Sep  held       present S1 S2 (S3 absent)   cases c1 S1, c2 S2
                   B1 Thu 10 Sep  held       present S4 S5               cases c4 S4, c5 S5
                   A2 Tue 15 Sep  held       present S1 S3 (S2 absent)   case  c3 S3
                   B2 Thu 17 Sep  held       present S4 (S5 absent)      no case
                   A3 Tue 22 Sep  cancelled
                   B3 Thu 24 Sep  scheduled

    Notes          A1: coleader1 and coleader2 (submitted); A2: coleader1 (submitted), coleader2 (draft);
                   B1, B2: coleaderB (submitted)

Research-eligible sections (with text; "other observations" are left empty):

    night   A1 coleader1 c1   60 chars   NIGHT
    ward    A1 coleader1 c2   50         WARD
    d_a1    A1 coleader1 disc 419        DISC_A1
    night_b A1 coleader2 c1   51         NIGHT_B
    ward_b  A1 coleader2 c2   50         WARD_B
    d_a1_b  A1 coleader2 disc 55         DISC_A1_B
    hospice B1 coleaderB c4   72         HOSPICE
    d_b2    B2 coleaderB disc 99         DISC_B2
                              856 characters in 8 sections

Excluded by consent:

    clinic  A2 c3 (S3 declined)                       45   the presenter's consent was not in force
    d_a2    A2 discussion (S3 present, declined)      47   not everyone present had consent
    emerg   B1 c5 (S5 withdrew past data)             46   the presenter withdrew ... past data
    d_b1    B1 discussion (S5 present, withdrew)      46   not everyone present had consent

Codes: Contexts (per case) EDU, PAT; Triggers (per case) INJ, ROLE;
Themes (per session) FEEL, IDEN, and OLD (retired, never used).

Shared coding of eligible text (r1 = researcher1, r2 = researcher2):

    s1  night   PAT  "S1 sat by a dying man." (22)                 r1
    s2  night   INJ  "Nobody spoke to his wife." (25)              r1
    s3  night_b ROLE whole (51)                                    r2
    s4  ward    EDU  "S2 was sent away by a resident, again." (38) r1
    s5  d_a1    FEEL whole (419: too long to quote)                r1
    s6  d_a1_b  FEEL whole (55)                                    r2
    s7  hospice PAT  "S4 met a young patient in a hospice." (36)   r2
    s8  d_b2    FEEL "Feelings about patients filled the room." (40)   r1
    s9  d_b2    IDEN "Then the group asked ... wants to be." (58)  r1
    s10 hospice FEEL "The visit stayed with S4 for weeks." (35)    r2
    copy ward   ROLE "Ward round" [0, 10), made by the resolution below, coder r1

Also coded, never counted: INJ in emerg, EDU in clinic, FEEL in d_b1 (ineligible
text), and the round's own segments. Case codings: c2 ROLE (counted), c5 INJ
(c5 has no eligible section: not counted).

The closed double-coding round "Pilot round": r1 and r2 code night (60) and
ward (50) for INJ and ROLE:
    r1: INJ night [0, 10), ROLE ward [0, 10);  r2: INJ night [0, 10), ROLE night [0, 10).
The ROLE disagreement in ward is resolved keeping r1's coding (the copy above).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date

import pytest
from pypdf import PdfReader

from analysis import rounds
from analysis.models import CaseCoding, Category, Code, CodebookChange, CodedSegment, Memo
from analysis.report import build_report, collect, render_html
from analysis.report_data import (
    AgreementRow, CategoryTable, CodeCount, ExclusionRow, GroupSummary, Heatmap, ParticipantRow, Ratio,
    SaturationPoint, SessionRow, Stats,
)
from conftest import helsinki, make_user
from fieldnotes import services as notes
from sessions.models import Attendance, CasePresentation, Consent, Meeting, Membership, Participant, Role

pytestmark = pytest.mark.django_db

NIGHT = "Night duty: S1 sat by a dying man. Nobody spoke to his wife."
WARD = "Ward round: S2 was sent away by a resident, again."
DISC_A1 = " ".join(["The group felt helpless beside the dying."] * 10)
NIGHT_B = "S1 felt unsure what a student may say to relatives."
WARD_B = "A resident sent S2 out of the room without a word."
DISC_A1_B = "The group talked about anger and shame after the night."
HOSPICE = "S4 met a young patient in a hospice. The visit stayed with S4 for weeks."
DISC_B2 = "Feelings about patients filled the room. Then the group asked what kind of doctor each wants to be."
CLINIC = "Declined presenter's case text, never quoted."
DISC_A2 = "Discussion with a declined participant present."
EMERG = "Withdrawn presenter's case text, never quoted."
DISC_B1 = "Discussion the withdrawn participant attended."

# The lengths the hand counts below rely on.
assert [len(t) for t in (NIGHT, WARD, DISC_A1, NIGHT_B, WARD_B, DISC_A1_B, HOSPICE, DISC_B2)] == [
    60, 50, 419, 51, 50, 55, 72, 99]
assert [len(t) for t in (CLINIC, DISC_A2, EMERG, DISC_B1)] == [45, 47, 46, 46]

NOT_IN_FORCE = "The presenter's consent was not in force at this session."
NOT_EVERYONE = "Not everyone present had consent in force for research use of this session."
REMOVED = "The presenter withdrew consent and asked for past data to be removed."

NAMES = ["Aino Virtanen", "Eero Korhonen", "Helmi Mäkinen", "Ville Vieras", "Kaisa Kuusi"]


@dataclass
class Course:
    world: object
    course: object
    codes: dict
    sections: dict
    segments: dict
    round: object


def consent(world, participant, decision, when, scope=""):
    Consent.objects.create(
        participant=participant, form=None if decision == "withdrawn" else world.form, form_version=1,
        form_text=world.form.text, decision=decision, decided_at=when, method="paper", withdrawal_scope=scope,
        recorded_by=world.leader,
    )


def meeting(group, number, when, *, present=(), absent=(), status=Meeting.Status.HELD):
    m = Meeting.objects.create(group=group, number=number, starts_at=when, status=status,
                               cancel_reason="Leader ill" if status == Meeting.Status.CANCELLED else "")
    for p in present:
        Attendance.objects.create(meeting=m, participant=p, present=True)
    for p in absent:
        Attendance.objects.create(meeting=m, participant=p, present=False)
    return m


def submit(meeting, author, texts):
    """Open and submit a note; `texts` maps a case's title or "discussion" to its text."""
    note = notes.note_open(meeting=meeting, author=author)
    sections = {(s.case.title if s.case_id else s.kind): s for s in note.sections.select_related("case")}
    notes.note_submit(note=note, base_version=note.version,
                      texts={sections[k].pk: v for k, v in texts.items()}, actor=author)
    for section in sections.values():
        section.refresh_from_db()
    return sections


@pytest.fixture
def hand(world) -> Course:
    r1, r2 = world.researcher1, world.researcher2
    course = world.course
    s1, s2, s3 = world.participants
    s4 = Participant.objects.create(course=course, group=world.other_group, pseudonym="S4", name="Ville Vieras",
                                    email="ville@students.example.org")
    s5 = Participant.objects.create(course=course, group=world.other_group, pseudonym="S5", name="Kaisa Kuusi",
                                    email="kaisa@students.example.org")
    coleader_b = make_user("coleaderb")
    Membership.objects.create(user=coleader_b, course=course, group=world.other_group, role=Role.COLEADER)
    for p in (s1, s2, s4, s5):
        consent(world, p, "given", helsinki(2026, 9, 1))
    consent(world, s3, "declined", helsinki(2026, 9, 1))
    consent(world, s5, "withdrawn", helsinki(2026, 10, 1), scope="past")

    a1 = meeting(world.group, 1, helsinki(2026, 9, 8, 16, 15), present=[s1, s2], absent=[s3])
    b1 = meeting(world.other_group, 1, helsinki(2026, 9, 10, 16, 15), present=[s4, s5])
    a2 = meeting(world.group, 2, helsinki(2026, 9, 15, 16, 15), present=[s1, s3], absent=[s2])
    b2 = meeting(world.other_group, 2, helsinki(2026, 9, 17, 16, 15), present=[s4], absent=[s5])
    meeting(world.group, 3, helsinki(2026, 9, 22, 16, 15), status=Meeting.Status.CANCELLED)
    meeting(world.other_group, 3, helsinki(2026, 9, 24, 16, 15), status=Meeting.Status.SCHEDULED)
    CasePresentation.objects.create(meeting=a1, presenter=s1, order=1, title="Night duty")
    c2 = CasePresentation.objects.create(meeting=a1, presenter=s2, order=2, title="Ward round")
    CasePresentation.objects.create(meeting=a2, presenter=s3, order=1, title="Clinic")
    CasePresentation.objects.create(meeting=b1, presenter=s4, order=1, title="Hospice")
    c5 = CasePresentation.objects.create(meeting=b1, presenter=s5, order=2, title="Emergency")

    a1_c1 = submit(a1, world.coleader1, {"Night duty": NIGHT, "Ward round": WARD, "discussion": DISC_A1})
    a1_c2 = submit(a1, world.coleader2, {"Night duty": NIGHT_B, "Ward round": WARD_B, "discussion": DISC_A1_B})
    a2_c1 = submit(a2, world.coleader1, {"Clinic": CLINIC, "discussion": DISC_A2})
    b1_cb = submit(b1, coleader_b, {"Hospice": HOSPICE, "Emergency": EMERG, "discussion": DISC_B1})
    b2_cb = submit(b2, coleader_b, {"discussion": DISC_B2})
    draft = notes.note_open(meeting=a2, author=world.coleader2)
    notes.note_save(note=draft, base_version=draft.version, actor=world.coleader2,
                    texts={s.pk: "A draft is not research data, never quoted." for s in draft.sections.all()})
    sections = {
        "night": a1_c1["Night duty"], "ward": a1_c1["Ward round"], "d_a1": a1_c1["discussion"],
        "night_b": a1_c2["Night duty"], "ward_b": a1_c2["Ward round"], "d_a1_b": a1_c2["discussion"],
        "clinic": a2_c1["Clinic"], "d_a2": a2_c1["discussion"],
        "hospice": b1_cb["Hospice"], "emerg": b1_cb["Emergency"], "d_b1": b1_cb["discussion"],
        "d_b2": b2_cb["discussion"],
    }

    categories = {
        "Contexts": Category.objects.create(course=course, name="Contexts", unit="case", order=0,
                                            description="What the cases were about."),
        "Triggers": Category.objects.create(course=course, name="Triggers", unit="case", order=1),
        "Themes": Category.objects.create(course=course, name="Themes", unit="session", order=2),
    }
    codes = {
        name: Code.objects.create(course=course, category=categories[category], name=name, created_by=r1,
                                  definition=f"Definition of {name}.")
        for name, category in [("EDU", "Contexts"), ("PAT", "Contexts"), ("INJ", "Triggers"), ("ROLE", "Triggers"),
                               ("FEEL", "Themes"), ("IDEN", "Themes"), ("OLD", "Themes")]
    }
    Code.objects.filter(pk=codes["OLD"].pk).update(retired_at=helsinki(2026, 9, 2))
    CodebookChange.objects.create(course=course, actor=r1, action="template", summary="Started")
    CodebookChange.objects.create(course=course, actor=r2, action="code.edit", summary="Edited")

    def seg(section, code, phrase=None, coder=r1, round=None):
        section = sections[section]
        start = section.text.index(phrase) if phrase else 0
        end = start + len(phrase) if phrase else len(section.text)
        # Written directly, as a coding made before a withdrawal would have been.
        return CodedSegment.objects.create(section=section, code=codes[code], coder=coder, start=start, end=end,
                                           quote=section.text[start:end], section_revision=section.revision,
                                           round=round)

    segments = {
        "s1": seg("night", "PAT", "S1 sat by a dying man."),
        "s2": seg("night", "INJ", "Nobody spoke to his wife."),
        "s3": seg("night_b", "ROLE", coder=r2),
        "s4": seg("ward", "EDU", "S2 was sent away by a resident, again."),
        "s5": seg("d_a1", "FEEL"),
        "s6": seg("d_a1_b", "FEEL", coder=r2),
        "s7": seg("hospice", "PAT", "S4 met a young patient in a hospice.", coder=r2),
        "s8": seg("d_b2", "FEEL", "Feelings about patients filled the room."),
        "s9": seg("d_b2", "IDEN", "Then the group asked what kind of doctor each wants to be."),
        "s10": seg("hospice", "FEEL", "The visit stayed with S4 for weeks.", coder=r2),
        "x_emerg": seg("emerg", "INJ"),
        "x_clinic": seg("clinic", "EDU"),
        "x_d_b1": seg("d_b1", "FEEL", coder=r2),
    }
    CaseCoding.objects.create(case=c2, code=codes["ROLE"], set_by=r1, why="The discussion says so")
    CaseCoding.objects.create(case=c5, code=codes["INJ"], set_by=r1, why="Before the withdrawal")

    Memo.objects.create(course=course, author=r1, code=codes["INJ"], title="Injustice at night",
                        text="Mostly on call.")
    Memo.objects.create(course=course, author=r1, section=sections["emerg"], title="Hidden memo",
                        text="About the emergency, a withdrawn case.")
    Memo.objects.create(course=course, author=r2, title="Plan", text="Code the rest next week.")

    pilot = rounds.round_create(course=course, name="Pilot round", coders=[r1, r2],
                                sections=[sections["night"], sections["ward"]],
                                codes=[codes["INJ"], codes["ROLE"]], actor=r1)
    seg("night", "INJ", "Night duty", coder=r1, round=pilot)
    seg("ward", "ROLE", "Ward round", coder=r1, round=pilot)
    seg("night", "INJ", "Night duty", coder=r2, round=pilot)
    seg("night", "ROLE", "Night duty", coder=r2, round=pilot)
    rounds.round_close(round=pilot, actor=r1)
    rounds.resolution_record(round=pilot, section=sections["ward"], code=codes["ROLE"], kept_coder=r1,
                             why="The resident's order is the point.", actor=r1)
    segments["copy"] = CodedSegment.objects.get(resolution__isnull=False)
    return Course(world, course, codes, sections, segments, pilot)


# --- The numbers ---------------------------------------------------------------------


def test_overview_counts_groups_sessions_attendance_and_cases(hand):
    o = collect(hand.course).overview
    assert o.groups == [GroupSummary("Group A", participants=3, held=2, cancelled=1, scheduled=0, cases=3),
                        GroupSummary("Group B", participants=2, held=2, cancelled=0, scheduled=1, cases=2)]
    assert (o.held, o.cancelled, o.scheduled, o.cases) == (4, 1, 1, 5)
    assert o.sessions == [
        SessionRow("Group A", 1, date(2026, 9, 8), "held", Ratio(2, 3), 2),
        SessionRow("Group B", 1, date(2026, 9, 10), "held", Ratio(2, 2), 2),
        SessionRow("Group A", 2, date(2026, 9, 15), "held", Ratio(2, 3), 1),
        SessionRow("Group B", 2, date(2026, 9, 17), "held", Ratio(1, 2), 0),
        SessionRow("Group A", 3, date(2026, 9, 22), "cancelled", None, 0),
    ]
    # 2 + 2 + 2 + 1 present of 3 + 2 + 3 + 2 on the register.
    assert o.attendance == Ratio(7, 10)
    assert o.participants == [
        ParticipantRow("S1", "Group A", Ratio(2, 2)), ParticipantRow("S2", "Group A", Ratio(1, 2)),
        ParticipantRow("S3", "Group A", Ratio(1, 2)), ParticipantRow("S4", "Group B", Ratio(2, 2)),
        ParticipantRow("S5", "Group B", Ratio(1, 2)),
    ]


def test_consent_counts_decisions_and_excluded_text_by_reason(hand):
    c = collect(hand.course).consent
    assert (c.participants, c.given, c.declined, c.withdrawn_future, c.withdrawn_past, c.no_decision) == (
        5, 3, 1, 0, 1, 0)
    assert (c.included_sections, c.included_characters) == (8, 856)
    assert c.exclusions == [
        ExclusionRow(NOT_EVERYONE, 2, 47 + 46),
        ExclusionRow(REMOVED, 1, 46),
        ExclusionRow(NOT_IN_FORCE, 1, 45),
    ]
    assert (c.excluded_sections, c.excluded_characters) == (4, 184)
    assert c.excluded_share == Ratio(184, 184 + 856)


def test_contexts_and_triggers_are_counted_per_case(hand):
    # Cases with eligible text: c1, c2, c4 (c3's presenter declined, c5's withdrew).
    # c1 carries PAT, INJ (s1, s2) and ROLE (s3, the other co-leader's note); c2 EDU (s4) and
    # ROLE (set on the case, and the resolution's copy); c4 PAT (s7).
    per_case = collect(hand.course).per_case
    assert per_case == [
        CategoryTable("Contexts", "case", "What the cases were about.", 3, [
            CodeCount("EDU", Ratio(1, 3), segments=1), CodeCount("PAT", Ratio(2, 3), segments=2),
        ], without_code=0),
        CategoryTable("Triggers", "case", "", 3, [
            CodeCount("INJ", Ratio(1, 3), segments=1), CodeCount("ROLE", Ratio(2, 3), segments=2),
        ], without_code=1),
    ]
    assert [r.units.label for r in per_case[0].rows] == ["1 / 3 (33%)", "2 / 3 (67%)"]


def test_themes_are_counted_per_session_and_per_discussion(hand):
    # Sessions with eligible text: A1, B1 (its hospice case), B2. Discussions: A1, B2
    # (A2's and B1's discussions are excluded). FEEL: A1 (s5, s6), B1 (s10, in a case
    # section), B2 (s8); as a discussion only A1 and B2. IDEN: B2 (s9). The retired OLD
    # carries nothing and is left out.
    assert collect(hand.course).per_session == [
        CategoryTable("Themes", "session", "", 3, [
            CodeCount("FEEL", Ratio(3, 3), segments=4, discussions=Ratio(2, 2)),
            CodeCount("IDEN", Ratio(1, 3), segments=1, discussions=Ratio(1, 2)),
        ], without_code=0, discussions=2),
    ]


def test_cooccurrence_crosses_contexts_with_triggers_by_case_and_with_themes_by_session(hand):
    # Cases: c1 {PAT, INJ, ROLE}, c2 {EDU, ROLE}, c4 {PAT, FEEL}.
    # Sessions: A1 {EDU, PAT, INJ, ROLE, FEEL}, B1 {PAT, FEEL}, B2 {FEEL, IDEN}
    # (c5's INJ is not counted: c5 has no eligible text).
    assert collect(hand.course).cooccurrence == [
        Heatmap("case", "Contexts", "Triggers", ["EDU", "PAT"], ["INJ", "ROLE"], [[0, 1], [1, 1]], 3),
        Heatmap("session", "Contexts", "Themes", ["EDU", "PAT"], ["FEEL", "IDEN"], [[1, 0], [2, 0]], 3),
        Heatmap("session", "Triggers", "Themes", ["INJ", "ROLE"], ["FEEL", "IDEN"], [[1, 0], [1, 0]], 3),
    ]


def test_timeline_and_saturation_follow_sessions_in_time_order(hand):
    data = collect(hand.course)
    t = data.timeline
    assert t.sessions == ["A1", "B1", "B2"]
    assert t.session_names == ["Group A · session 1", "Group B · session 1", "Group B · session 2"]
    assert t.group_key == [("A", "Group A"), ("B", "Group B")]
    assert t.codes == ["EDU", "PAT", "INJ", "ROLE", "FEEL", "IDEN"]
    assert t.segments == [[1, 0, 0], [1, 1, 0], [1, 0, 0], [2, 0, 0], [2, 1, 1], [0, 0, 1]]
    assert t.present == [[True, False, False], [True, True, False], [True, False, False],
                         [True, False, False], [True, True, True], [False, False, True]]
    assert data.saturation == [
        SaturationPoint("A1", "Group A · session 1", 5, ["EDU", "PAT", "INJ", "ROLE", "FEEL"], 5),
        SaturationPoint("B1", "Group B · session 1", 2, [], 5),
        SaturationPoint("B2", "Group B · session 2", 2, ["IDEN"], 6),
    ]


def test_exemplar_quotes_are_the_longest_eligible_ones_with_their_reference(hand):
    quotes = {q.code: [(x.text, x.reference) for x in q.quotes] for q in collect(hand.course).exemplars}
    assert quotes == {
        "EDU": [("S2 was sent away by a resident, again.", "Group A · session 1 · case 2 (S2)")],
        "PAT": [("S4 met a young patient in a hospice.", "Group B · session 1 · case 1 (S4)"),
                ("S1 sat by a dying man.", "Group A · session 1 · case 1 (S1)")],
        "INJ": [("Nobody spoke to his wife.", "Group A · session 1 · case 1 (S1)")],
        "ROLE": [(NIGHT_B, "Group A · session 1 · case 1 (S1)"), ("Ward round", "Group A · session 1 · case 2 (S2)")],
        # s5 (419 characters) is too long; then by length: s6 (55), s8 (40), s10 (35).
        "FEEL": [(DISC_A1_B, "Group A · session 1 · group discussion"),
                 ("Feelings about patients filled the room.", "Group B · session 2 · group discussion"),
                 ("The visit stayed with S4 for weeks.", "Group B · session 1 · case 1 (S4)")],
        "IDEN": [("Then the group asked what kind of doctor each wants to be.",
                  "Group B · session 2 · group discussion")],
    }


def test_exemplar_quotes_never_come_from_excluded_text(hand):
    ids = {q.segment_id for item in collect(hand.course).exemplars for q in item.quotes}
    research = set(CodedSegment.objects.research(hand.course).values_list("pk", flat=True))
    assert ids <= research
    assert not ids & {hand.segments[k].pk for k in ("x_emerg", "x_clinic", "x_d_b1")}


def test_agreement_of_the_closed_round_per_code_and_pooled(hand):
    (r,) = collect(hand.course).agreement
    assert (r.name, r.coders, r.sections, r.disagreements, r.resolved) == (
        "Pilot round", ["researcher1", "researcher2"], 2, 2, 1)
    # INJ: both coders, night [0, 10): full agreement. Characters: 10 both, 100 neither (of 110).
    assert r.rows[0] == AgreementRow("INJ", Stats(2, 1.0, 1.0, 1.0), Stats(110, 1.0, 1.0, 1.0))
    # ROLE: r1 ward, r2 night. Sections: (T,F), (F,T): 0%, kappa (0 - 2)/(4 - 2) = -1,
    # alpha (3·0 - 4)/8 = -0.5. Characters: 10 (T,F), 10 (F,T), 90 (F,F) of 110: agreement 90/110,
    # kappa (110·90 - 10100)/(12100 - 10100) = -0.1, alpha (219·180 - 40180)/8000 = -0.095.
    role = r.rows[1]
    assert role.code == "ROLE"
    assert role.sections == Stats(2, 0.0, -1.0, -0.5)
    assert role.characters.units == 110
    assert role.characters.percent == pytest.approx(90 / 110)
    assert role.characters.kappa == pytest.approx(-0.1)
    assert role.characters.alpha == pytest.approx(-0.095)
    # Pooled sections: (T,T), (F,F), (F,T), (T,F): 50%, kappa 0, alpha (7·4 - 24)/32 = 0.125.
    # Pooled characters (220 units): 200 agree; kappa 3600/8000 = 0.45; alpha 14440/32000 = 0.45125.
    assert r.pooled.sections == Stats(4, 0.5, 0.0, 0.125)
    assert r.pooled.characters.units == 220
    assert r.pooled.characters.percent == pytest.approx(200 / 220)
    assert r.pooled.characters.kappa == pytest.approx(0.45)
    assert r.pooled.characters.alpha == pytest.approx(0.45125)
    assert (role.sections.kappa_label, role.sections.alpha_label) == ("\u22121.00", "\u22120.50")


def test_agreement_says_not_defined_where_a_statistic_is_none(hand):
    # Nobody in the round used EDU: agreement is complete but kappa and alpha are undefined.
    hand.round.codes.add(hand.codes["EDU"])
    (r,) = collect(hand.course).agreement
    edu = next(row for row in r.rows if row.code == "EDU")
    assert edu.sections == Stats(2, 1.0, None, None)
    assert (edu.sections.percent_label, edu.sections.kappa_label, edu.sections.alpha_label) == (
        "100.0%", "not defined", "not defined")
    assert "not defined" in render_html(collect(hand.course))


def test_codebook_memos_and_methods(hand):
    data = collect(hand.course, include_memos=True)
    assert [(c.name, c.unit, [(x.name, x.definition, x.retired) for x in c.codes]) for c in data.codebook] == [
        ("Contexts", "per case", [("EDU", "Definition of EDU.", False), ("PAT", "Definition of PAT.", False)]),
        ("Triggers", "per case", [("INJ", "Definition of INJ.", False), ("ROLE", "Definition of ROLE.", False)]),
        ("Themes", "per session", [("FEEL", "Definition of FEEL.", False), ("IDEN", "Definition of IDEN.", False),
                                   ("OLD", "Definition of OLD.", True)]),
    ]
    # The memo on the withdrawn presenter's section is left out; the resolution wrote one on the round.
    assert [(m.title, m.about, m.author) for m in data.memos] == [
        ("Injustice at night", "Code: INJ", "researcher1"),
        ("Plan", "The course", "researcher2"),
        ("Resolution: “ROLE” in Case 2: Ward round", "Double-coding round: Pilot round", "researcher1"),
    ]
    m = data.methods
    # Notes with eligible text: A1 ×2, B1, B2 (A2's only note has none); by coleader1, coleader2, coleaderB.
    assert (m.notes, m.coleaders, m.sessions, m.first_session, m.last_session) == (
        4, 3, 3, date(2026, 9, 8), date(2026, 9, 17))
    assert (m.sections, m.characters) == (8, 856)
    # r1: s1 s2 s4 s5 s8 s9 and the copy; r2: s3 s6 s7 s10. One counted case coding (c2).
    assert (m.segments, m.coders, m.case_codings, m.case_coders) == (
        11, [("researcher1", 7), ("researcher2", 4)], 1, [("researcher1", 1)])
    latest = CodebookChange.objects.filter(course=hand.course).latest("at", "id")
    assert (m.codebook_version, m.codebook_changed_at) == (2, latest.at)
    assert (m.categories, m.codes, m.retired_codes, m.closed_rounds) == (3, 6, 1, 1)
    assert collect(hand.course).memos is None


def test_a_withdrawal_of_past_data_changes_the_numbers_at_once(hand):
    # S4 withdraws too: c4 and B2's discussion (S4 attended) leave the analysis, and so
    # does B1 (its last eligible section was c4's).
    consent(hand.world, Participant.objects.get(pseudonym="S4", course=hand.course), "withdrawn",
            helsinki(2026, 10, 2), scope="past")
    data = collect(hand.course)
    assert [(r.code, r.units) for r in data.per_case[0].rows] == [("EDU", Ratio(1, 2)), ("PAT", Ratio(1, 2))]
    assert [(r.code, r.units, r.discussions) for r in data.per_session[0].rows] == [
        ("FEEL", Ratio(1, 1), Ratio(1, 1)), ("IDEN", Ratio(0, 1), Ratio(0, 1))]
    assert (data.consent.withdrawn_past, data.consent.included_sections) == (2, 6)


def test_collect_reads_in_a_bounded_number_of_queries(hand, django_assert_max_num_queries):
    # Aggregates and one pass over ids: no query per segment, section or code. (The data
    # fingerprint is the tidy export's business, counted in its own tests; the report
    # job hands it in.)
    with django_assert_max_num_queries(45):
        data = collect(hand.course, include_memos=True, data_hash="0" * 64)
    assert data.methods.data_hash == "0" * 64


# --- Rendering -------------------------------------------------------------------------


def test_same_data_gives_the_same_document(hand):
    first, second = collect(hand.course, include_memos=True), collect(hand.course, include_memos=True)
    second.generated_at = first.generated_at
    assert first == second
    assert render_html(first) == render_html(second)


def test_html_holds_the_tables_and_the_charts_and_no_names(hand):
    html = render_html(collect(hand.course, include_memos=True))
    # Two per-case charts, one per-session, three heat maps, the timeline and the saturation curve.
    assert html.count('src="data:image/png;base64,') == 8
    assert html.count("<table") >= 9
    for heading in ("1 Course overview", "2 Consent and excluded text", "3 Per case: contexts and triggers",
                    "4 Per session: themes", "5 Co-occurrence", "6 Codes across sessions and saturation",
                    "7 Exemplar quotes", "8 Inter-coder agreement", "Appendix A. Methods",
                    "Appendix B. Codebook", "Appendix C. Memos"):
        assert f">{heading}</h2>" in html
    assert "1 / 3 (33%)" not in html  # tables print n / N and the percentage in their own columns
    assert '<td class="num">2 / 3</td><td class="num">67%</td>' in html
    for name in NAMES:
        for part in name.split():
            assert part not in html
    assert "students.example.org" not in html
    for text in ("never quoted", "withdrawn participant attended", "declined participant present",
                 "Hidden memo", "a withdrawn case"):
        assert text not in html


def test_names_that_slipped_into_quoted_text_are_replaced_by_pseudonyms(hand):
    CodedSegment.objects.filter(pk=hand.segments["s7"].pk).update(quote="Aino Virtanen met a young patient.")
    data = collect(hand.course)
    pat = next(q for q in data.exemplars if q.code == "PAT")
    assert pat.quotes[0].text == "S1 met a young patient."


def test_code_names_and_quotes_are_escaped(hand):
    payload = "<script>alert(1)</script>"
    Code.objects.filter(pk=hand.codes["IDEN"].pk).update(name=payload)
    CodedSegment.objects.filter(pk=hand.segments["s8"].pk).update(quote=f"Quoted {payload} text")
    html = render_html(collect(hand.course))
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_empty_course_renders(world):
    html = render_html(collect(world.course, include_memos=True))
    assert "No research-eligible text has been coded yet." in html
    assert "No double-coding round has been closed yet." in html


# --- The PDF ------------------------------------------------------------------------------


def page_texts(pdf: bytes) -> list[str]:
    return [" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf)).pages]


def test_build_report_gives_html_and_a_pdf_with_the_expected_pages(hand):
    calls = []
    files = build_report(hand.course, include_memos=True, progress=lambda p, stage: calls.append((p, stage)))
    assert set(files) == {"report.html", "report.pdf"}
    assert files["report.pdf"].startswith(b"%PDF")
    percents = [p for p, _ in calls]
    assert percents[0] == 0 and percents[-1] == 100 and percents == sorted(percents)
    assert all(stage for _, stage in calls)

    reader = PdfReader(io.BytesIO(files["report.pdf"]))
    assert reader.metadata.title == "Student Balint groups 2026 – course report"
    pages = page_texts(files["report.pdf"])
    contents = reader.pages[1].extract_text().splitlines()
    assert len(pages) > 3
    assert "Student Balint groups 2026" in pages[0] and "course report" in pages[0].lower()
    assert pages[1].startswith("Contents") or "Contents" in pages[1]
    headings = ["1 Course overview", "2 Consent and excluded text", "3 Per case: contexts and triggers",
                "4 Per session: themes", "5 Co-occurrence", "6 Codes across sessions and saturation",
                "7 Exemplar quotes", "8 Inter-coder agreement", "Appendix A. Methods", "Appendix B. Codebook",
                "Appendix C. Memos"]
    found = []
    for heading in headings:
        # The first page after the contents that carries the heading (running heads repeat it later).
        page = next(i for i, text in enumerate(pages) if i > 1 and heading in text) + 1
        found.append(page)
        # The contents page gives the same page number.
        title = heading.split(" ", 1)[1] if heading[0].isdigit() else heading
        line = next(line for line in contents if title in line)
        assert int(re.search(r"(\d+)\s*$", line).group(1)) == page, heading
    assert found[0] == 3
    assert found == sorted(set(found)), "every chapter starts on a page of its own"
    assert "Table 1." in pages[2] and "Figure 1." in "".join(pages)

    everything = "\n".join(pages)
    for name in NAMES:
        for part in name.split():
            assert part not in everything
    assert "never quoted" not in everything
    assert "S4 met a young patient in a hospice." in everything


def test_charts_draw_labels_as_typed():
    # A "$" would start matplotlib's mathtext; an unbalanced one must not break the report.
    from analysis import charts

    png = charts.bar_chart(["Costs $5 and $10", "An odd $ sign", "$x^2$"], [("Cases", [1, 2, 0], 3)], unit="cases")
    assert png.startswith(b"\x89PNG")
    assert charts.heatmap(["$a"], ["b$"], [[1]], row_title="$", column_title="$$").startswith(b"\x89PNG")
