"""Coding in a real browser: offsets round-trip from the browser's UTF-16
selection to code-point offsets in the database, past emoji, Finnish letters
and combining characters.

Text is selected three ways: with the real mouse (page.mouse double-clicks a
word, at a position measured from a DOM Range), with a DOM Range set through
page.evaluate (precise to the character, for a span with a combining mark),
and with the keyboard (Shift+arrows in the focusable text). Codes are applied
by clicking them and by their shortcut keys.
"""

import re

import pytest
from playwright.sync_api import expect

from analysis import services as analysis_services
from analysis.anchoring import codepoint_to_utf16, utf16_to_codepoint
from analysis.models import CodedSegment

from .test_coding import held_session

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# NFC keeps "x\u0304" decomposed (there is no precomposed x-macron), so the
# stored text really holds a combining character; "e\u0301" is stored as "é".
TEXT = ("Äiti kertoi 😀 👩‍⚕️ että lääkäri x\u0304 ei kuunnellut.\n"
        "Toinen rivi: hän itki 🙂 hiljaa.")


def select(page, start, end):
    """Select [start, end) of the note text, counted in UTF-16 units as the browser does."""
    page.evaluate(
        """([start, end]) => {
          const box = document.getElementById("coding-text");
          const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
          const at = (n) => {
            let total = 0;
            for (let t = walker.nextNode(); t; t = walker.nextNode()) {
              if (n <= total + t.data.length) return [t, n - total];
              total += t.data.length;
            }
          };
          const range = document.createRange();
          range.setStart(...at(start));
          walker.currentNode = box;
          range.setEnd(...at(end));
          const selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
        }""",
        [start, end],
    )


def word_centre(page, start, end):
    """The centre, in page pixels, of [start, end) of the note text (UTF-16 units)."""
    return page.evaluate(
        """([start, end]) => {
          const box = document.getElementById("coding-text");
          const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
          let total = 0;
          for (let t = walker.nextNode(); t; t = walker.nextNode()) {
            if (start < total + t.data.length) {
              const range = document.createRange();
              range.setStart(t, start - total);
              range.setEnd(t, Math.min(end - total, t.data.length));
              const r = range.getBoundingClientRect();
              return [r.left + r.width / 2, r.top + r.height / 2];
            }
            total += t.data.length;
          }
        }""",
        [start, end],
    )


def utf16(text, index):
    return codepoint_to_utf16(text, index)


@pytest.fixture
def coding(world):
    codes = analysis_services.codebook_start_from_study(course=world.course, actor=world.researcher1)
    sections = held_session(world, texts={"case": TEXT, "discussion": "The group talked."})
    return sections["case"], codes


def test_code_text_after_emoji_by_click_and_by_shortcut(page, login, live_server, world, coding):
    section, codes = coding
    patients, role_confusion = codes[0], codes[7]
    assert section.text == TEXT
    login(page, world.researcher1)
    page.goto(f"/analysis/sections/{section.pk}/code/")
    expect(page.locator("#coding-text")).to_have_text(TEXT)

    # A word after two emoji (one of them a ZWJ sequence of three code points).
    word = "lääkäri"
    start = TEXT.index(word)
    x, y = word_centre(page, utf16(TEXT, start), utf16(TEXT, start + len(word)))
    page.mouse.dblclick(x, y)
    expect(page.locator("#coding-status")).to_contain_text("“lääkäri” (7 characters)")
    page.get_by_role("button", name=re.compile("^Patients")).click()
    expect(page.locator("#segment-list .segment-item")).to_have_count(1)
    segment = CodedSegment.objects.get()
    assert (segment.start, segment.end, segment.quote) == (start, start + len(word), word)
    assert segment.code == patients

    # The combining character, then the shortcut key of "Role confusion".
    wanted = "x\u0304 ei"
    start2 = TEXT.index(wanted)
    select(page, utf16(TEXT, start2), utf16(TEXT, start2 + len(wanted)))
    expect(page.locator("#coding-status")).to_contain_text("“x̄ ei” (5 characters)")
    page.keyboard.press(role_confusion.shortcut)
    expect(page.locator("#segment-list .segment-item")).to_have_count(2)
    second = CodedSegment.objects.get(code=role_confusion)
    assert second.quote == wanted and (second.start, second.end) == (start2, start2 + len(wanted))

    # Reload: both highlights come back in their codes' classes.
    page.reload()
    expect(page.locator(f"#coding-text .seg.code-{patients.pk}")).to_have_text(word)
    expect(page.locator(f"#coding-text .seg.code-{role_confusion.pk}")).to_have_text(wanted)
    background = page.locator(f"#coding-text .seg.code-{patients.pk}").evaluate(
        "el => getComputedStyle(el).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")

    # Remove the first one.
    page.get_by_role("button", name="Remove “Patients” from “lääkäri”").click()
    expect(page.locator("#segment-list .segment-item")).to_have_count(1)
    assert list(CodedSegment.objects.values_list("quote", flat=True)) == [wanted]
    expect(page.locator(f"#coding-text .seg.code-{patients.pk}")).to_have_count(0)


def test_keyboard_selection_and_overlapping_codes(page, login, live_server, world, coding):
    section, codes = coding
    login(page, world.researcher1)
    page.goto(f"/analysis/sections/{section.pk}/code/")
    # Tab into the text, move to the second line, select "hän itki" with Shift+arrows.
    page.locator("#coding-text").focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Home")
    for _ in range(len("Toinen rivi: ")):
        page.keyboard.press("ArrowRight")
    for _ in range(len("hän itki")):
        page.keyboard.press("Shift+ArrowRight")
    expect(page.locator("#coding-status")).to_contain_text("“hän itki”")
    page.keyboard.press("1")  # Patients
    expect(page.locator("#segment-list .segment-item")).to_have_count(1)
    # The selection stays: a second code on the same text.
    page.keyboard.press("2")
    expect(page.locator("#segment-list .segment-item")).to_have_count(2)
    assert sorted(CodedSegment.objects.values_list("quote", flat=True)) == ["hän itki", "hän itki"]
    # Extend past the emoji and adjust the first segment to it.
    for _ in range(len(" 🙂")):
        page.keyboard.press("Shift+ArrowRight")
    expect(page.locator("#coding-status")).to_contain_text("“hän itki 🙂”")
    page.get_by_role("button", name=re.compile("^Adjust “Patients”")).click()
    expect(page.locator("#coding-status")).to_contain_text("now covers")
    assert CodedSegment.objects.get(code=codes[0]).quote == "hän itki 🙂"
    expect(page.locator("#coding-text .seg-multi")).to_have_text("hän itki")
    page.keyboard.press("Escape")
    expect(page.locator("#coding-status")).to_have_text("Nothing selected.")
    # With nothing selected a shortcut does nothing.
    page.keyboard.press("3")
    assert CodedSegment.objects.count() == 2


def test_the_scripts_offset_conversion_matches_the_servers(page, login, live_server, world, coding):
    section, _ = coding
    login(page, world.researcher1)
    page.goto(f"/analysis/sections/{section.pk}/code/")
    units = len(TEXT.encode("utf-16-le")) // 2
    to_points, to_units = page.evaluate(
        """(units) => {
          const text = JSON.parse(document.getElementById("coding-data").textContent).text;
          const c = window.BalintCoding;
          const points = [...text].length;
          return [
            Array.from({length: units + 1}, (_, i) => c.utf16ToCodepoint(text, i)),
            Array.from({length: points + 1}, (_, i) => c.codepointToUtf16(text, i)),
          ];
        }""",
        units,
    )
    assert to_units == [codepoint_to_utf16(TEXT, i) for i in range(len(TEXT) + 1)]
    for i in range(units + 1):
        try:
            expected = utf16_to_codepoint(TEXT, i)
        except ValueError:  # between the halves of a surrogate pair: the script snaps before converting
            continue
        assert to_points[i] == expected, i


def test_a_selection_reaching_outside_the_text_is_trimmed_to_it(page, login, live_server, world, coding):
    section, codes = coding
    login(page, world.researcher1)
    page.goto(f"/analysis/sections/{section.pk}/code/")
    # From the page's heading to the end of "kertoi", across pieces and out of the text box.
    end = utf16(TEXT, TEXT.index(" 😀"))
    page.evaluate(
        """(end) => {
          const box = document.getElementById("coding-text");
          const range = document.createRange();
          range.setStart(document.querySelector("h1").firstChild, 0);
          range.setEnd(box.firstChild.firstChild, end);
          window.getSelection().removeAllRanges();
          window.getSelection().addRange(range);
        }""",
        end,
    )
    expect(page.locator("#coding-status")).to_contain_text("“Äiti kertoi” (11 characters, trimmed to the note text)")
    page.get_by_role("button", name=re.compile("^Incurable patient")).click()
    expect(page.locator("#segment-list .segment-item")).to_have_count(1)
    assert CodedSegment.objects.get().quote == "Äiti kertoi"
