"""REFI-QDA exchange: .qdc and .qdpx out and back in.

Positions are Unicode code points, end excluded. The study below has text
with Finnish letters, emoji (outside the BMP, and a ZWJ sequence) and
combining characters that have no precomposed form, so a position counted in
UTF-16 units or bytes, or a text normalised after coding, would show.
"""

from __future__ import annotations

import io
import stat
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from lxml import etree

from analysis import qda
from analysis import services as analysis_services
from analysis.models import Category, Code, CodebookChange, CodedSegment, Memo
from fieldnotes import services as note_services
from fieldnotes.models import FieldNote, NoteSection, NoteVersion, SectionRevision
from sessions.models import (
    Attendance,
    AuditEvent,
    CasePresentation,
    Consent,
    Group,
    Meeting,
    Membership,
    Participant,
    Role,
)

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
P = "{urn:QDA-XML:project:1.0}"
C = "{urn:QDA-XML:codebook:1.0}"

# "q\u0301" and "m\u0308" have no precomposed form, so they stay two code
# points each after NFC; the emoji are one code point each, the health worker
# three (woman, ZWJ, staff of Aesculapius) plus a variation selector.
CASE_TEXT = "Äiti sanoi: ”Älä pelkää.” 😀 👩\u200d⚕\ufe0f Öinen vuoro, q\u0301 ja m\u0308.\nToinen rivi – ääri."
DISCUSSION_TEXT = "Ryhmä puhui tunteista: pelko, häpeä ja ilo 🎉.\nLopuksi hiljaisuus."
CRLF_TEXT = "Rivi yksi\r\nRivi kaksi 😀\r\nKolmas\rNeljäs\r\n"


# --- Building a study -------------------------------------------------------------


def give_consent(world, participant, when, decision="given", scope=""):
    return Consent.objects.create(
        participant=participant, form=None if decision == "withdrawn" else world.form, form_version=1,
        form_text=world.form.text, decision=decision, decided_at=when, method="paper", withdrawal_scope=scope,
        recorded_by=world.leader,
    )


def span(text, quote):
    start = text.index(quote)
    return start, start + len(quote)


@dataclass
class Study:
    world: object
    codes: dict
    case: NoteSection
    discussion: NoteSection


@pytest.fixture
def study(world) -> Study:
    r1, r2 = world.researcher1, world.researcher2
    triggers = Category.objects.create(course=world.course, name="Triggers", unit="case", order=1,
                                       description="What made the student bring the case.")
    themes = Category.objects.create(course=world.course, name="Themes", unit="session", order=2)
    Category.objects.create(course=world.course, name="Tyhjä kategoria", order=3)
    value = Code.objects.create(
        course=world.course, category=triggers, name="Value conflict", colour="#ff9896", created_by=r1,
        definition="Asked to act against one's values.", when_to_use="The student names a clash.",
        when_not_to_use="Mere disagreement.", example="”I had to lie to the patient.”",
    )
    feelings = Code.objects.create(course=world.course, category=themes, name="Tunteet 😨", colour="#2CA02C",
                                   created_by=r1)
    fear = Code.objects.create(course=world.course, category=themes, parent=feelings, name="Kuolemanpelko",
                               colour="#98df8a", created_by=r1, definition="Fear of death.\n\nTwo paragraphs.")
    retired = Code.objects.create(course=world.course, category=themes, name="Vanha koodi", created_by=r1)

    s1, s2, s3 = world.participants
    starts = timezone.now() - 20 * DAY
    for p in (s1, s2, s3):
        give_consent(world, p, starts - 60 * DAY)
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=starts, status=Meeting.Status.HELD)
    for p in (s1, s2):
        Attendance.objects.create(meeting=meeting, participant=p, present=True)
    CasePresentation.objects.create(meeting=meeting, presenter=s1, order=1, title="Yövuoro")
    note = note_services.note_open(meeting=meeting, author=world.coleader1)
    sections = {s.kind: s for s in note_services.ordered_sections(note)}
    note_services.note_submit(
        note=note, base_version=note.version, actor=world.coleader1,
        texts={sections["case"].pk: CASE_TEXT, sections["discussion"].pk: DISCUSSION_TEXT},
    )
    case = NoteSection.objects.get(pk=sections["case"].pk)
    discussion = NoteSection.objects.get(pk=sections["discussion"].pk)
    assert case.text == CASE_TEXT  # already NFC: nothing moved on submit

    def code(section, c, coder, quote):
        start, end = span(section.text, quote)
        return analysis_services.segment_create(section=section, code=c, coder=coder, start=start, end=end)

    first = code(case, value, r1, "”Älä pelkää.” 😀 👩\u200d⚕\ufe0f")
    code(case, feelings, r2, "q\u0301 ja m\u0308")
    code(case, value, r2, "Äiti sanoi")
    code(case, retired, r1, "ääri")
    analysis_services.code_retire(code=retired, actor=r1, why="Coded with, then retired.")
    code(discussion, fear, r1, "pelko, häpeä ja ilo 🎉")
    Memo.objects.create(course=world.course, author=r1, code=feelings, title="Tunteista", text="Pelko näkyy 😨.")
    Memo.objects.create(course=world.course, author=r2, segment=first, text="Tärkeä kohta.")
    Memo.objects.create(course=world.course, author=r1, text="Vapaa muistio.")
    return Study(world=world, codes={"value": value, "feelings": feelings, "fear": fear, "retired": retired},
                 case=case, discussion=discussion)


def make_eligible(course, group_name="Imported"):
    """What a leader does after an import: a participant with consent, present at every imported session."""
    group = Group.objects.get(course=course, name=group_name)
    participant = Participant.objects.create(course=course, group=group, pseudonym=Participant.next_pseudonym(course),
                                             name="Tuomas Tuotu")
    Consent.objects.create(participant=participant, decision="given", decided_at=timezone.now() - 3650 * DAY,
                           method="paper", recorded_by=Membership.objects.filter(course=course).first().user,
                           form=course.consent_forms.first() or _form(course), form_version=1)
    for meeting in group.meetings.all():
        Attendance.objects.get_or_create(meeting=meeting, participant=participant, defaults={"present": True})


def _form(course):
    from datetime import date

    return course.consent_forms.create(version=1, text="Consent.", effective_date=date(2020, 1, 1),
                                       created_by=Membership.objects.filter(course=course).first().user)


# --- Hand-made REFI-QDA files --------------------------------------------------

SRC = "11111111-2222-4333-8444-555555555555"
CODE = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
CATEGORY = "aaaaaaaa-bbbb-4ccc-8ddd-000000000000"
USER = "99999999-8888-4777-8666-555555555555"


def project_xml(*, selections="", text_attr=f'plainTextPath="internal://{SRC}.txt"', created="2026-01-10T10:00:00Z",
                codes=None) -> bytes:
    codes = codes or (
        f'<Code guid="{CATEGORY}" name="Triggers" isCodable="false">'
        f'<Code guid="{CODE}" name="value conflict" isCodable="true" color="#f00"/></Code>'
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<Project xmlns="urn:QDA-XML:project:1.0" name="Toinen projekti" origin="QualCoder">'
        f'<Users><User guid="{USER}" name="Researcher Two" id="researcher2"/></Users>'
        f'<CodeBook><Codes>{codes}</Codes></CodeBook>'
        f'<Sources><TextSource guid="{SRC}" name="Haastattelu 1" {text_attr} creationDateTime="{created}">'
        f'{selections}</TextSource></Sources></Project>'
    ).encode("utf-8")


def selection(start, end, code=CODE, guid="22222222-3333-4444-8555-666666666666", user=USER):
    return (
        f'<PlainTextSelection guid="{guid}" startPosition="{start}" endPosition="{end}" creatingUser="{user}">'
        f'<Coding guid="{guid[:-4]}7777" creatingUser="{user}"><CodeRef targetGUID="{code}"/></Coding>'
        "</PlainTextSelection>"
    )


def make_qdpx(project: bytes, files: dict | None = None, infos: list | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("project.qde", project)
        for name, data in (files or {}).items():
            archive.writestr(name, data)
        for info, data in infos or []:
            archive.writestr(info, data)
    return buffer.getvalue()


def crlf_qdpx() -> bytes:
    original = CRLF_TEXT
    return make_qdpx(
        project_xml(selections=selection(*span(original, "Rivi kaksi 😀"))
                    + selection(*span(original, "Neljäs"), guid="22222222-3333-4444-8555-666666666667")),
        {f"sources/{SRC}.txt": original.encode("utf-8")},
    )


# --- Reading exports back ----------------------------------------------------------


def read_qdpx(data: bytes):
    archive = zipfile.ZipFile(io.BytesIO(data))
    root = etree.fromstring(archive.read("project.qde"))
    texts = {n: archive.read(n).decode("utf-8") for n in archive.namelist() if n.startswith("sources/")}
    return root, texts, archive


def codebook_of(codes_el, ns):
    """Every code as (path of names from its category, codable, colour, description)."""
    out = set()

    def walk(element, path):
        here = (*path, element.get("name"))
        out.add((here, element.get("isCodable"), (element.get("color") or "").lower(),
                 element.findtext(f"{ns}Description") or ""))
        for child in element.findall(f"{ns}Code"):
            walk(child, here)

    for element in codes_el.findall(f"{ns}Code"):
        walk(element, ())
    return out


def content_of(data: bytes):
    """The parsed content a round trip must keep: codebook, texts and codings, memos."""
    root, texts, _ = read_qdpx(data)
    users = {u.get("guid"): u.get("id") for u in root.iter(f"{P}User")}
    codes = {c.get("guid"): c.get("name") for c in root.iter(f"{P}Code")}
    sources = Counter()
    for source in root.iter(f"{P}TextSource"):
        text = texts[f"sources/{source.get('plainTextPath').removeprefix('internal://')}"]
        codings = sorted(
            (int(s.get("startPosition")), int(s.get("endPosition")),
             codes[s.find(f"{P}Coding/{P}CodeRef").get("targetGUID")], users[s.find(f"{P}Coding").get("creatingUser")])
            for s in source.iter(f"{P}PlainTextSelection")
        )
        for start, end, _, _ in codings:
            assert 0 <= start < end <= len(text)
        sources[(text, tuple(codings))] += 1
    notes = {n.findtext(f"{P}PlainTextContent") for n in root.iter(f"{P}Note")}
    return codebook_of(root.find(f"{P}CodeBook/{P}Codes"), P), sources, notes


# --- Export -----------------------------------------------------------------------------


def test_project_and_codebook_validate_against_the_schemas(study):
    root, texts, _ = read_qdpx(qda.export_qdpx(study.world.course))
    assert qda.schema_errors(root, qda.PROJECT_SCHEMA) == []
    codebook = etree.fromstring(qda.export_qdc(study.world.course))
    assert qda.schema_errors(codebook, qda.CODEBOOK_SCHEMA) == []
    # The schema files themselves, not only our reading of them.
    schema = etree.XMLSchema(etree.parse(str(qda.schema_dir() / "Project-mrt2019.xsd")))
    assert schema.validate(root)


def test_export_is_deterministic(study):
    course = study.world.course
    assert qda.export_qdpx(course) == qda.export_qdpx(course)
    assert qda.export_qdc(course) == qda.export_qdc(course)
    archive = zipfile.ZipFile(io.BytesIO(qda.export_qdpx(course)))
    assert archive.namelist() == sorted(archive.namelist())
    assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_export_holds_texts_codings_codebook_cases_and_memos(study):
    world = study.world
    root, texts, _ = read_qdpx(qda.export_qdpx(world.course))
    sources = {s.get("name"): s for s in root.iter(f"{P}TextSource")}
    assert set(sources) == {
        "Group A – session 1 – Case 1 (S1) – coleader1",
        "Group A – session 1 – Group discussion – coleader1",
    }
    case = sources["Group A – session 1 – Case 1 (S1) – coleader1"]
    text = texts[f"sources/{case.get('guid')}.txt"]
    assert text == CASE_TEXT
    users = {u.get("guid"): u.get("id") for u in root.iter(f"{P}User")}
    assert set(users.values()) == {"coleader1", "researcher1", "researcher2"}
    selected = {
        (text[int(s.get("startPosition")):int(s.get("endPosition"))], users[s.find(f"{P}Coding").get("creatingUser")])
        for s in case.iter(f"{P}PlainTextSelection")
    }
    assert ("”Älä pelkää.” 😀 👩\u200d⚕\ufe0f", "researcher1") in selected
    assert ("q\u0301 ja m\u0308", "researcher2") in selected

    [category] = [c for c in root.find(f"{P}CodeBook/{P}Codes") if c.get("name") == "Triggers"]
    assert category.get("isCodable") == "false"
    [value] = category.findall(f"{P}Code")
    assert (value.get("name"), value.get("color"), value.get("isCodable")) == ("Value conflict", "#ff9896", "true")
    assert value.findtext(f"{P}Description") == (
        "Asked to act against one's values.\n\nWhen to use: The student names a clash.\n\n"
        "When not to use: Mere disagreement.\n\nExample: ”I had to lie to the patient.”"
    )
    names = {c.get("name") for c in root.iter(f"{P}Code")}
    assert "Vanha koodi" in names  # retired, but the shared coding still uses it

    [exported_case] = root.iter(f"{P}Case")
    assert exported_case.get("name") == "Group A – session 1 – Case 1 (S1): Yövuoro"
    assert [r.get("targetGUID") for r in exported_case.iter(f"{P}SourceRef")] == [case.get("guid")]

    notes = {n.findtext(f"{P}PlainTextContent"): n.get("guid") for n in root.iter(f"{P}Note")}
    assert set(notes) == {"Pelko näkyy 😨.", "Tärkeä kohta.", "Vapaa muistio."}
    [feelings] = [c for c in root.iter(f"{P}Code") if c.get("name") == "Tunteet 😨"]
    assert [r.get("targetGUID") for r in feelings.findall(f"{P}NoteRef")] == [notes["Pelko näkyy 😨."]]
    assert [r.get("targetGUID") for r in root.findall(f"{P}NoteRef")] == [notes["Vapaa muistio."]]
    assert "0 sections of submitted notes were left out" in root.findtext(f"{P}Description")

    without = read_qdpx(qda.export_qdpx(world.course, include_memos=False))[0]
    assert not list(without.iter(f"{P}Note"))


def test_no_participant_identity_is_ever_exported(study):
    _, _, archive = read_qdpx(qda.export_qdpx(study.world.course))
    everything = b"".join(archive.read(n) for n in archive.namelist()) + qda.export_qdc(study.world.course)
    for participant in study.world.participants:
        assert participant.name.encode() not in everything
        assert participant.email.encode() not in everything


def test_withdrawal_of_past_data_takes_the_text_out_of_the_export(study):
    world = study.world
    Memo.objects.create(course=world.course, author=world.researcher1, section=study.discussion,
                        text="Muistio: pelko, häpeä")
    Memo.objects.create(course=world.course, author=world.researcher1, text="Segmentistä",
                        segment=CodedSegment.objects.get(section=study.discussion))
    # S2 attended the discussion and now withdraws with past data removed.
    give_consent(world, world.participants[1], timezone.now(), decision="withdrawn", scope="past")
    root, texts, archive = read_qdpx(qda.export_qdpx(world.course))
    assert list(texts.values()) == [CASE_TEXT]
    everything = b"".join(archive.read(n) for n in archive.namelist())
    assert "Ryhmä puhui".encode() not in everything
    assert "pelko, häpeä".encode() not in everything  # neither the text nor a memo quoting it
    assert "Segmentistä".encode() not in everything
    assert "Kuolemanpelko".encode() in everything  # the codebook is not consent-bound
    assert [s.get("name") for s in root.iter(f"{P}TextSource")] == ["Group A – session 1 – Case 1 (S1) – coleader1"]
    description = root.findtext(f"{P}Description")
    assert "1 section of submitted notes was left out because consent does not allow" in description
    assert "S2" not in description
    assert qda.schema_errors(root, qda.PROJECT_SCHEMA) == []


def test_empty_codebook_has_nothing_to_export_as_qdc(world):
    with pytest.raises(qda.QdaError, match="empty"):
        qda.export_qdc(world.course)
    root, texts, _ = read_qdpx(qda.export_qdpx(world.course))  # an empty course is still a valid project
    assert qda.schema_errors(root, qda.PROJECT_SCHEMA) == [] and texts == {}


# --- Import ------------------------------------------------------------------------------


def test_crlf_source_keeps_every_coding_on_its_text(study):
    world = study.world
    summary = qda.import_qdpx(course=world.course, data=crlf_qdpx(), actor=world.admin, author=world.coleader2)
    assert (summary.sources, summary.notes, summary.segments) == (1, 1, 2)
    assert (summary.codes_created, summary.codes_matched) == (0, 1)  # “value conflict” is “Value conflict”
    assert "not research data yet" in summary.message
    note = FieldNote.objects.get(meeting__group__name="Imported")
    assert note.author == world.coleader2 and note.is_submitted and note.meeting.number == 1
    discussion = note.sections.get(kind="discussion")
    assert discussion.text == "Rivi yksi\nRivi kaksi 😀\nKolmas\nNeljäs\n"
    segments = list(CodedSegment.objects.filter(section=discussion).order_by("start"))
    assert [(s.quote, s.code, s.coder, s.round) for s in segments] == [
        ("Rivi kaksi 😀", study.codes["value"], world.researcher2, None),
        ("Neljäs", study.codes["value"], world.researcher2, None),
    ]
    assert [discussion.text[s.start:s.end] for s in segments] == [s.quote for s in segments]
    assert SectionRevision.objects.get(section=discussion).text == discussion.text
    assert NoteVersion.objects.get(note=note).action == "import"
    # Not research data until attendance and consent are recorded.
    assert not NoteSection.objects.research_eligible().filter(pk=discussion.pk).exists()
    make_eligible(world.course)
    assert NoteSection.objects.research_eligible().filter(pk=discussion.pk).exists()


def test_text_not_in_nfc_is_kept_as_it_is_with_a_warning(world):
    text = "Ha\u0308pea\u0308 ja pelko"
    data = make_qdpx(project_xml(selections=selection(*span(text, "pelko"))),
                     {f"sources/{SRC}.txt": "\ufeff".encode() + text.encode()})  # a BOM is fine
    summary = qda.import_qdpx(course=world.course, data=data, actor=world.researcher1)
    segment = CodedSegment.objects.get(code__course=world.course)
    assert segment.section.text == text and segment.quote == "pelko"
    assert any("normal form C" in w for w in summary.warnings)
    assert segment.code.category.name == "Triggers" and segment.code.colour == "#ff0000"
    assert segment.coder == world.researcher2


def test_unknown_coder_becomes_the_importer(world):
    data = make_qdpx(project_xml(selections=selection(0, 4), text_attr="").replace(
        b'creationDateTime="2026-01-10T10:00:00Z">',
        b'creationDateTime="2026-01-10T10:00:00Z"><PlainTextContent>Yksi kaksi</PlainTextContent>',
    ).replace(b'id="researcher2"', b'id="somebody.else"').replace(b'name="Researcher Two"', b'name="Some Body"'))
    summary = qda.import_qdpx(course=world.course, data=data, actor=world.researcher1, group_name="Vanhat")
    segment = CodedSegment.objects.get(code__course=world.course)
    assert segment.coder == world.researcher1 and segment.quote == "Yksi"
    assert segment.section.note.meeting.group.name == "Vanhat"
    assert any("somebody.else" in w for w in summary.warnings)


def test_round_trip_keeps_codebook_texts_and_codings(study):
    world = study.world
    # An imported CRLF source, made research data, is part of the course too.
    qda.import_qdpx(course=world.course, data=crlf_qdpx(), actor=world.admin, author=world.coleader2)
    make_eligible(world.course)
    first = qda.export_qdpx(world.course)
    codebook, sources, notes = content_of(first)
    assert sum(sources.values()) == 3 and any("Rivi kaksi 😀\n" in text for text, _ in sources)

    course2 = world.course2
    for researcher in (world.researcher1, world.researcher2):
        Membership.objects.create(user=researcher, course=course2, role=Role.RESEARCHER)
    summary = qda.import_qdpx(course=course2, data=first, actor=world.admin2)
    assert (summary.sources, summary.notes, summary.segments) == (3, 3, 7)
    assert summary.codes_created == 4 and summary.memos == 3
    assert not qda.export_qdpx(course2).count(b"<TextSource")  # not research data before attendance is recorded
    make_eligible(course2)
    second = qda.export_qdpx(course2)

    codebook2, sources2, notes2 = content_of(second)
    assert codebook2 == codebook
    assert sources2 == sources
    assert notes2 == notes
    assert sorted(Meeting.objects.filter(group__course=course2).values_list("starts_at", flat=True)) == sorted(
        m.starts_at.replace(microsecond=0)
        for m in Meeting.objects.filter(group__course=world.course, field_notes__isnull=False).distinct()
        for _ in m.field_notes.get().sections.exclude(text="")
    )
    fear = Code.objects.get(course=course2, name="Kuolemanpelko")
    assert (fear.parent.name, fear.category.name, fear.definition) == ("Tunteet 😨", "Themes",
                                                                       "Fear of death.\n\nTwo paragraphs.")
    value = Code.objects.get(course=course2, name="Value conflict")
    assert (value.when_to_use, value.when_not_to_use, value.example, value.category.unit) == (
        "The student names a clash.", "Mere disagreement.", "”I had to lie to the patient.”", "case")
    assert Memo.objects.get(course=course2, code__isnull=False).code.name == "Tunteet 😨"
    assert Memo.objects.get(course=course2, segment__isnull=False).segment.quote.startswith("”Älä")

    # Importing the same codebook again matches every code and adds none.
    assert qda.import_qdc(course=course2, data=qda.export_qdc(world.course), actor=world.admin2) == 0


def test_qdc_import_builds_the_hierarchy(study):
    world = study.world
    before = CodebookChange.objects.count()
    created = qda.import_qdc(course=world.course2, data=qda.export_qdc(world.course), actor=world.admin2)
    assert created == 3  # active codes only: Value conflict, Tunteet, Kuolemanpelko
    assert set(Category.objects.filter(course=world.course2).values_list("name", flat=True)) == {
        "Triggers", "Themes", "Tyhjä kategoria"}
    assert Code.objects.get(course=world.course2, name="Kuolemanpelko").parent.name == "Tunteet 😨"
    assert CodebookChange.objects.count() == before + 1
    with pytest.raises(qda.QdaError, match="project"):
        qda.import_qdc(course=world.course2, data=qda.export_qdpx(world.course), actor=world.admin2)


# --- Hostile and broken files: refused, nothing imported ------------------------------


def row_counts():
    return {model.__name__: model.objects.count() for model in (
        Group, Meeting, FieldNote, NoteSection, NoteVersion, SectionRevision, Category, Code, CodedSegment, Memo,
        CodebookChange, AuditEvent,
    )}


def refused(world, data, match):
    before = row_counts()
    with pytest.raises(qda.QdaError, match=match) as error:
        qda.import_qdpx(course=world.course, data=data, actor=world.researcher1)
    assert row_counts() == before
    return str(error.value)


def source_files(text=CRLF_TEXT):
    return {f"sources/{SRC}.txt": text.encode("utf-8")}


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Project [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Project xmlns="urn:QDA-XML:project:1.0" name="&lol9;"/>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Project [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Project xmlns="urn:QDA-XML:project:1.0" name="&xxe;"/>"""


def test_malformed_xml_is_refused(study):
    refused(study.world, make_qdpx(b'<Project xmlns="urn:QDA-XML:project:1.0" name="x"><Sources>'),
            "not well-formed")


def test_entity_expansion_is_refused(study):
    refused(study.world, make_qdpx(BILLION_LAUGHS), "DOCTYPE")
    refused(study.world, make_qdpx(BILLION_LAUGHS.replace(b'"1.0"?>', b'"1.0" encoding="utf-16"?>', 1)), "DOCTYPE")


def test_external_entity_is_refused(study):
    message = refused(study.world, make_qdpx(EXTERNAL_ENTITY), "DOCTYPE")
    assert "root:" not in message
    with pytest.raises(qda.QdaError, match="DOCTYPE"):
        qda.import_qdc(course=study.world.course, data=EXTERNAL_ENTITY, actor=study.world.researcher1)


@pytest.mark.parametrize("name", ["../evil.txt", "sources/../../evil.txt", "/etc/cron.d/evil",
                                  "sources\\..\\evil.txt", "C:/evil.txt"])
def test_path_traversal_names_are_refused(study, name):
    data = make_qdpx(project_xml(selections=selection(0, 4)), {**source_files(), name: b"x"})
    refused(study.world, data, "outside the project")


def test_symlinks_are_refused(study):
    link = zipfile.ZipInfo(f"sources/{SRC}.txt")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    data = make_qdpx(project_xml(selections=selection(0, 4)), infos=[(link, b"/etc/passwd")])
    refused(study.world, data, "symbolic link")


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    """300 MB of zeros as a source, about 300 KB zipped: built for real, in one go."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("project.qde", project_xml())
        info = zipfile.ZipInfo(f"sources/{SRC}.txt")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            chunk = bytes(1024 * 1024)
            for _ in range(300):
                member.write(chunk)
    assert len(buffer.getvalue()) < 1024 * 1024
    return buffer.getvalue()


def test_zip_bomb_is_refused_before_unpacking(study, zip_bomb):
    refused(study.world, zip_bomb, "zip bomb")


def test_a_highly_compressed_member_is_refused(study):
    # 2 MiB of zeros: under the total, but compressed about a thousand to one.
    data = make_qdpx(project_xml(selections=selection(0, 4)), {f"sources/{SRC}.txt": bytes(2 * 1024 * 1024)})
    refused(study.world, data, "zip bomb")


def test_too_many_entries_are_refused(study, monkeypatch):
    monkeypatch.setattr(qda, "MAX_ZIP_ENTRIES", 3)
    data = make_qdpx(project_xml(), {**source_files(), "a.txt": b"", "b.txt": b""})
    refused(study.world, data, "at most 3")


def test_selection_out_of_range_is_refused(study):
    length = len(CRLF_TEXT)
    refused(study.world, make_qdpx(project_xml(selections=selection(2, length + 1)), source_files()),
            f"outside its text \\(0–{length}")
    refused(study.world, make_qdpx(project_xml(selections=selection(4, 4)), source_files()), "empty")


def test_unknown_code_ref_is_refused(study):
    data = make_qdpx(project_xml(selections=selection(0, 4, code="deadbeef-0000-4000-8000-000000000000")),
                     source_files())
    refused(study.world, data, "not in the codebook")


def test_coding_with_a_category_is_refused(study):
    refused(study.world, make_qdpx(project_xml(selections=selection(0, 4, code=CATEGORY)), source_files()),
            "category")


def test_duplicate_coding_of_the_same_text_is_refused(study):
    selections = selection(0, 8) + selection(0, 8, guid="22222222-3333-4444-8555-666666666668")
    refused(study.world, make_qdpx(project_xml(selections=selections), source_files()), "twice to the same text")


def test_overlapping_codings_by_one_coder_are_imported(study):
    selections = selection(0, 8) + selection(4, 12, guid="22222222-3333-4444-8555-666666666668")
    summary = qda.import_qdpx(course=study.world.course2, data=make_qdpx(project_xml(selections=selections),
                                                                         source_files()), actor=study.world.admin2)
    assert summary.segments == 2


def test_non_utf8_source_is_refused(study):
    data = make_qdpx(project_xml(selections=selection(0, 4)), {f"sources/{SRC}.txt": "Äiti ja häpeä".encode("cp1252")})
    refused(study.world, data, "not UTF-8")


def test_missing_source_text_is_refused(study):
    refused(study.world, make_qdpx(project_xml(selections=selection(0, 4))), "missing")
    external = project_xml(text_attr='plainTextPath="relative://../../etc/passwd"')
    refused(study.world, make_qdpx(external), "outside the .qdpx")


def test_schema_violations_are_refused(study):
    broken = project_xml(selections=selection(0, 4)).replace(b' endPosition="4"', b"")
    message = refused(study.world, make_qdpx(broken, source_files()), "schema")
    assert "endPosition" in message


def test_not_a_zip_and_no_project_are_refused(study):
    refused(study.world, b"just some text", "not a .qdpx")
    refused(study.world, make_qdpx(b"")[:-10], "not a .qdpx")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("other.xml", b"<x/>")
    refused(study.world, buffer.getvalue(), "no project.qde")


# --- Commands -------------------------------------------------------------------------------


def test_commands_export_and_import(study, tmp_path):
    world = study.world
    project, codebook = tmp_path / "course.qdpx", tmp_path / "codebook.qdc"
    call_command("export_qdpx", str(project), "--course", str(world.course.pk), stdout=io.StringIO())
    call_command("export_qdpx", str(codebook), "--course", world.course.name, "--codebook-only", stdout=io.StringIO())
    assert project.read_bytes() == qda.export_qdpx(world.course)
    assert codebook.read_bytes() == qda.export_qdc(world.course)

    out = io.StringIO()
    call_command("import_qdpx", str(project), "--course", str(world.course2.pk), "--group", "Tuodut",
                 "--author", "leader2", "--actor", "admin2", stdout=out)
    assert "Imported 2 of 2 text sources" in out.getvalue()
    assert FieldNote.objects.filter(meeting__group__name="Tuodut", author=world.leader2).count() == 2


def test_commands_fail_with_a_clear_message(study, tmp_path):
    world = study.world
    bad = tmp_path / "bad.qdpx"
    bad.write_bytes(make_qdpx(EXTERNAL_ENTITY))
    before = row_counts()
    with pytest.raises(CommandError, match="DOCTYPE"):
        call_command("import_qdpx", str(bad), "--course", str(world.course.pk), "--actor", "admin")
    with pytest.raises(CommandError, match="no active user"):
        call_command("import_qdpx", str(bad), "--course", str(world.course.pk), "--actor", "nobody")
    with pytest.raises(CommandError, match="no course"):
        call_command("export_qdpx", str(tmp_path / "x.qdpx"), "--course", "999999")
    with pytest.raises(CommandError, match="empty"):
        call_command("export_qdpx", str(tmp_path / "x.qdc"), "--course", str(world.course2.pk), "--codebook-only")
    assert row_counts() == before


def test_export_queries_do_not_grow_with_the_data(study, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as first:
        qda.export_qdpx(study.world.course)
    qda.import_qdpx(course=study.world.course, data=crlf_qdpx(), actor=study.world.admin)
    make_eligible(study.world.course)
    with django_assert_max_num_queries(len(first)):
        qda.export_qdpx(study.world.course)


def test_summary_message_reads_well(study):
    summary = qda.import_qdpx(course=study.world.course, data=crlf_qdpx(), actor=study.world.admin)
    assert summary.message.startswith(
        "Imported 1 of 1 text source as submitted notes in “Imported” (session 1), with 2 coded segments; "
        "0 codes added to the codebook, 1 matched existing ones."
    )
