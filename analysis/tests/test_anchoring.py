"""Re-anchoring coded segments on amendment, and UTF-16 / code-point offsets.

Pure functions: no database, no Django.
"""

import pytest

from analysis.anchoring import (
    Anchor,
    codepoint_to_utf16,
    reanchor,
    reanchor_many,
    utf16_to_codepoint,
)

NOTE = (
    "Helmi presented a patient who would not speak during the visit.\n"
    "\n"
    "The group asked how she felt. Anna said she felt helpless.\n"
    "\n"
    "Ben connected it to his own first year on the ward.\n"
)


def span(text, quote, nth=0):
    """(start, end, quote) of the nth occurrence of quote in text."""
    start = -1
    for _ in range(nth + 1):
        start = text.index(quote, start + 1)
    return start, start + len(quote), quote


def anchor_of(old, new, quote, nth=0):
    return reanchor(old, new, *span(old, quote, nth))


def placed(anchor, text):
    assert anchor.ok
    return text[anchor.start : anchor.end]


# --- The diff carries untouched segments --------------------------------------


def test_identical_text_leaves_segment_unchanged():
    anchor = anchor_of(NOTE, NOTE, "would not speak")

    assert anchor == Anchor(*span(NOTE, "would not speak")[:2], "unchanged")


def test_text_inserted_before_segment_shifts_it():
    new = NOTE.replace("Helmi presented", "Helmi, a fourth-year student, presented")

    anchor = anchor_of(NOTE, new, "would not speak")

    assert anchor.how == "shifted"
    assert (anchor.start, anchor.end) == span(new, "would not speak")[:2]
    assert anchor.start == span(NOTE, "would not speak")[0] + len(", a fourth-year student,")


def test_text_deleted_before_segment_shifts_it_back():
    new = NOTE.replace("during the visit", "")

    anchor = anchor_of(NOTE, new, "felt helpless")

    assert anchor.how == "shifted"
    assert placed(anchor, new) == "felt helpless"


def test_text_inserted_after_segment_leaves_it_unchanged():
    new = NOTE.replace("first year", "first, difficult year")

    anchor = anchor_of(NOTE, new, "felt helpless")

    assert anchor.how == "unchanged"
    assert (anchor.start, anchor.end) == span(NOTE, "felt helpless")[:2]


def test_insertions_touching_the_segment_edges_leave_it_untouched():
    old = "She would not speak."
    new = "She really would not speak at all."

    anchor = reanchor(old, new, *span(old, "would not speak"))

    assert anchor.how == "shifted"
    assert placed(anchor, new) == "would not speak"


def test_edit_inside_a_neighbouring_word_does_not_touch_the_segment():
    # "Helmi's" became "Helmin": the coded "Helmi" is still there, letter for letter.
    old = "Then Helmi's case was discussed."
    new = "Then Helmin case was discussed."

    anchor = reanchor(old, new, *span(old, "Helmi"))

    assert anchor == Anchor(5, 10, "unchanged")


# --- Edits inside the segment ------------------------------------------------------


def test_text_inserted_inside_segment_loses_it():
    new = NOTE.replace("would not speak", "would not really speak")

    anchor = anchor_of(NOTE, new, "would not speak")

    assert anchor == Anchor(None, None, "lost")
    assert not anchor.ok


def test_text_inserted_inside_segment_finds_the_quote_if_it_survives():
    # The co-leader added the patient's stammer; the coded words are still
    # there in full, partly retyped.
    old = "He would not speak."
    new = "He would not, would not speak."

    anchor = reanchor(old, new, *span(old, "would not speak"))

    assert anchor.how == "found"
    assert (anchor.start, anchor.end) == span(new, "would not speak")[:2]


def test_word_changed_inside_segment_loses_it():
    new = NOTE.replace("felt helpless", "felt powerless")

    assert anchor_of(NOTE, new, "felt helpless").how == "lost"


def test_segment_text_deleted_is_lost():
    new = NOTE.replace(" Anna said she felt helpless.", "")

    assert anchor_of(NOTE, new, "Anna said she felt helpless").how == "lost"


def test_deleted_quote_is_lost_even_when_others_said_the_same_words():
    # Anna's line goes; Ben's and Carl's "I agree" are other people's words,
    # untouched by the amendment, and must not inherit her coding.
    old = "Ben: I agree.\nAnna: I agree.\nCarl: I agree.\n"
    new = "Ben: I agree.\nCarl: I agree.\n"

    anchor = reanchor(old, new, *span(old, "I agree", nth=1))

    assert anchor.how == "lost"


# --- Moved text ---------------------------------------------------------------------


def test_segment_moved_to_another_paragraph_is_found():
    moved = " Anna said she felt helpless."
    new = NOTE.replace(moved, "").replace("on the ward.", "on the ward." + moved)

    anchor = anchor_of(NOTE, new, "she felt helpless")

    assert anchor.how == "found"
    assert (anchor.start, anchor.end) == span(new, "she felt helpless")[:2]
    assert new[anchor.end :].startswith(".\n") and new.rindex("ward") < anchor.start


# --- Several matches ------------------------------------------------------------


def test_duplicated_quote_resolved_by_nearest_mapped_position():
    # The coded words were partly retyped (the stammer), and Ben's new
    # sentence says them too: both matches are new text; the stammer is where
    # the old words were.
    old = "The group was quiet.\n\nHe would not speak."
    new = "The group was quiet; Ben said he would not speak either.\n\nHe would not, would not speak."

    anchor = reanchor(old, new, *span(old, "would not speak"))

    assert anchor.how == "found"
    assert (anchor.start, anchor.end) == span(new, "would not speak", nth=1)[:2]
    assert new[anchor.start - 5 : anchor.start] == "not, "


def test_quote_equally_near_two_new_places_is_ambiguous():
    # Anna's "yes" line was deleted; new "yes" lines stand as far before the
    # deletion as after it, so nothing says which one she meant.
    old = "Ok.\nAnna: yes\nThanks.\n"
    new = "yes\nOk.\nThanks.\nyes\n"

    anchor = reanchor(old, new, *span(old, "yes"))

    assert anchor == Anchor(None, None, "ambiguous")
    assert not anchor.ok


# --- Whitespace -----------------------------------------------------------------


def test_whitespace_change_inside_quote_finds_the_new_exact_span():
    new = NOTE.replace("would not speak", "would  not\nspeak")

    anchor = anchor_of(NOTE, new, "would not speak")

    assert anchor.how == "found"
    assert placed(anchor, new) == "would  not\nspeak"


def test_whitespace_match_covers_whole_runs_at_the_quote_edges():
    # A selection that took a trailing space: the new span takes the whole
    # run of spaces, and one run is one match, not one per space.
    old = "She would not speak. Then"
    new = "She would not  speak.   Then"

    anchor = reanchor(old, new, *span(old, "not speak. "))

    assert anchor.how == "found"
    assert placed(anchor, new) == "not  speak.   "


def test_exact_quote_wins_over_whitespace_variants():
    old = "Anna: would not speak.\nBen: ok."
    new = "Anna: would not speak!\nBen: would  not speak.\nCarl: would not speak."

    anchor = reanchor(old, new, *span(old, "would not speak."))

    assert anchor.how == "found"
    assert new[anchor.start : anchor.end] == "would not speak." and new[anchor.start - 6 : anchor.start] == "Carl: "


# --- Characters beyond ASCII ----------------------------------------------------------


def test_emoji_and_combining_characters_before_segment_count_as_code_points():
    old = "😀 e\u0301 Helmi kertoi tapauksesta."
    new = "😀😀 e\u0301 Helmi kertoi tapauksesta."
    assert span(old, "Helmi") == (5, 10, "Helmi")  # 😀 is one code point, é two

    anchor = reanchor(old, new, 5, 10, "Helmi")

    assert anchor == Anchor(6, 11, "shifted")
    assert new[6:11] == "Helmi"


def test_zwj_sequence_inserted_before_segment_shifts_by_its_code_points():
    family = "👩\u200d👩\u200d👧"  # five code points, eight UTF-16 units
    old = "Äiti ja tytär: Helmi kertoi."
    new = family + " " + old

    anchor = reanchor(old, new, *span(old, "Helmi"))

    assert anchor.how == "shifted"
    assert anchor.start == span(old, "Helmi")[0] + 6
    assert placed(anchor, new) == "Helmi"


def test_browser_selection_after_emoji_lands_on_the_right_code_points():
    text = "😀 e\u0301 Helmi kertoi."
    js_start, js_end = 6, 11  # what the browser reports for "Helmi"

    start, end = utf16_to_codepoint(text, js_start), utf16_to_codepoint(text, js_end)

    assert text[start:end] == "Helmi"
    assert (codepoint_to_utf16(text, start), codepoint_to_utf16(text, end)) == (js_start, js_end)


# --- Many segments -------------------------------------------------------------


def test_reanchor_many_equals_individual_reanchor_calls():
    old = NOTE
    new = (
        NOTE.replace("Helmi presented", "Helmi, a student, presented")
        .replace("would not speak", "would not really speak")
        .replace(" Anna said she felt helpless.", "")
        .replace("on the ward.", "on the ward. Anna said she felt helpless.")
        .replace("The group asked", "The  group asked")
    )
    spans = [
        span(old, "Helmi"),
        span(old, "a patient"),
        span(old, "would not speak"),
        span(old, "The group asked how she felt"),
        span(old, "she felt helpless"),
        span(old, "own first year"),
        span(old, "e"),
    ]

    anchors = reanchor_many(old, new, spans)

    assert anchors == [reanchor(old, new, *s) for s in spans]
    assert [a.how for a in anchors] == ["unchanged", "shifted", "lost", "found", "found", "shifted", "unchanged"]
    for anchor, (_, _, quote) in zip(anchors, spans):
        if anchor.ok:
            assert " ".join(new[anchor.start : anchor.end].split()) == quote


def test_reanchor_many_with_no_segments_returns_nothing():
    assert reanchor_many("old", "new", []) == []


def test_long_text_with_a_local_edit_keeps_every_segment():
    paragraph = "Ryhmä pohti, miksi potilas ei puhunut 😀 ja mitä se herätti. "
    old = "\n".join(f"{n}. {paragraph}" for n in range(1500))  # about 100,000 code points
    new = old.replace("700. ", "700. Lisäys. ", 1)
    spans = [(i, i + 20, old[i : i + 20]) for i in range(0, len(old) - 20, 997)]

    anchors = reanchor_many(old, new, spans)

    assert all(a.ok for a in anchors)
    assert all(new[a.start : a.end] == quote for a, (_, _, quote) in zip(anchors, spans))
    assert {a.how for a in anchors} == {"unchanged", "shifted"}


# --- UTF-16 offsets ------------------------------------------------------------------

ROUND_TRIP_TEXTS = {
    "ascii": "Helmi presented a case.",
    "finnish": "Äiti ja tytär söivät öljyä Åland-saarella.",
    "emoji": "😀 ja 🎉🎉 juhlat 𝔘",
    "zwj": "perhe 👩\u200d👩\u200d👧 ja 🏳\ufe0f\u200d🌈 lippu",
    "combining": "e\u0301 a\u0308 Helmi o\u0308\u0301",
    "empty": "",
}


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS.values(), ids=ROUND_TRIP_TEXTS.keys())
def test_every_code_point_offset_round_trips_through_utf16(text):
    for index in range(len(text) + 1):
        units = codepoint_to_utf16(text, index)

        assert units == len(text[:index].encode("utf-16-le")) // 2
        assert utf16_to_codepoint(text, units) == index


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS.values(), ids=ROUND_TRIP_TEXTS.keys())
def test_every_utf16_offset_outside_a_pair_round_trips(text):
    length = len(text.encode("utf-16-le")) // 2
    boundaries = {codepoint_to_utf16(text, i) for i in range(len(text) + 1)}

    for units in range(length + 1):
        if units in boundaries:
            assert codepoint_to_utf16(text, utf16_to_codepoint(text, units)) == units
        else:
            with pytest.raises(ValueError, match="surrogate pair"):
                utf16_to_codepoint(text, units)


def test_utf16_offsets_of_known_strings():
    assert codepoint_to_utf16("Äiti", 4) == 4  # BMP letters are one unit
    assert codepoint_to_utf16("😀a", 1) == 2  # astral: a surrogate pair
    assert codepoint_to_utf16("👩\u200d👧x", 3) == 5  # ZWJ itself is one unit
    assert utf16_to_codepoint("😀😀a", 4) == 2
    assert utf16_to_codepoint("e\u0301x", 2) == 2  # a combining mark is its own code point


def test_utf16_conversion_of_a_long_text():
    text = ("Äiti 😀 " * 15_000)[:100_000]
    index = len(text) - 3

    units = codepoint_to_utf16(text, index)

    assert utf16_to_codepoint(text, units) == index


# --- Errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [(-1, 3), (3, 3), (5, 2), (0, len(NOTE) + 1), (len(NOTE), len(NOTE) + 1)],
)
def test_bad_offsets_are_refused(start, end):
    with pytest.raises(ValueError, match="inside the old text"):
        reanchor(NOTE, NOTE, start, end, "x")


def test_empty_quote_is_refused():
    with pytest.raises(ValueError, match="quote"):
        reanchor(NOTE, NOTE, 0, 5, "")


def test_non_integer_offsets_are_refused():
    with pytest.raises(TypeError):
        reanchor(NOTE, NOTE, 0.0, 5, "Helmi")
    with pytest.raises(TypeError):
        reanchor(NOTE, NOTE, False, 5, "Helmi")


def test_reanchor_many_names_the_bad_segment_and_does_no_work():
    spans = [span(NOTE, "Helmi"), (10, 5, "x")]

    with pytest.raises(ValueError, match="segment 1"):
        reanchor_many(NOTE, NOTE, spans)


@pytest.mark.parametrize("index", [-1, 5])
def test_codepoint_index_out_of_range_is_refused(index):
    with pytest.raises(ValueError, match="outside 0..4"):
        codepoint_to_utf16("😀abc", index)


@pytest.mark.parametrize(("text", "index"), [("abc", 4), ("😀abc", 6), ("😀abc", -1), ("", 1)])
def test_utf16_index_out_of_range_is_refused(text, index):
    with pytest.raises(ValueError, match="outside"):
        utf16_to_codepoint(text, index)


def test_utf16_index_inside_a_surrogate_pair_is_refused():
    with pytest.raises(ValueError, match="surrogate pair"):
        utf16_to_codepoint("a😀b", 2)


def test_anchor_offsets_must_match_its_kind():
    with pytest.raises(ValueError):
        Anchor(None, None, "found")
    with pytest.raises(ValueError):
        Anchor(1, 2, "lost")
    with pytest.raises(ValueError):
        Anchor(1, 2, "moved")
