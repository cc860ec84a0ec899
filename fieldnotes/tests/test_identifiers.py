"""The identifier check run on every saved field note. Pure Python: no database."""

import random
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldnotes import identifiers
from fieldnotes.identifiers import Finding, KnownPerson, find_identifiers, valid_hetu

HELMI = KnownPerson("Helmi Mäkinen", "S3")
BO = KnownPerson("Bo Lindqvist", "S2")

# The check character table, written out here rather than imported, so the
# tests do not share a mistake with the code.
CHECK_CHARS = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def hetu(ddmmyy: str, sign: str, individual: str) -> str:
    """A code with the check character worked out by hand: DDMMYYNNN mod 31."""
    return f"{ddmmyy}{sign}{individual}{CHECK_CHARS[int(ddmmyy + individual) % 31]}"


def found(text, people=(), ignore=()):
    findings = find_identifiers(text, people, ignore)
    for f in findings:
        assert text[f.start : f.end] == f.text
    return [(f.kind, f.text) for f in findings]


# --- Empty and plain text ----------------------------------------------------


def test_empty_text_has_no_findings():
    assert find_identifiers("", [HELMI], ["x"]) == []


def test_ordinary_note_has_no_findings():
    text = (
        "Session 3 started at 16:15 with 7 of 9 students. S2 presented a case from "
        "her 4th-year surgery placement (2003-2004) about a patient on ward 12."
    )
    assert find_identifiers(text, [HELMI, BO]) == []


# --- Names -------------------------------------------------------------------


def test_full_name_is_one_finding_with_the_pseudonym_as_suggestion():
    [finding] = find_identifiers("Today Helmi Mäkinen presented.", [HELMI])

    assert finding == Finding(
        kind="name",
        start=6,
        end=19,
        text="Helmi Mäkinen",
        suggestion="S3",
        message="Matches the name of S3",
    )


def test_first_and_last_name_are_found_on_their_own():
    assert found("Helmi spoke first; later Mäkinen returned to it.", [HELMI]) == [
        ("name", "Helmi"),
        ("name", "Mäkinen"),
    ]


def test_full_name_split_over_a_line_break_is_one_finding():
    assert found("asked\nHelmi\n  Mäkinen about it", [HELMI]) == [("name", "Helmi\n  Mäkinen")]


def test_name_match_ignores_case():
    assert found("HELMI MÄKINEN, helmi, mäkinen", [HELMI]) == [
        ("name", "HELMI MÄKINEN"),
        ("name", "helmi"),
        ("name", "mäkinen"),
    ]


def test_names_with_finnish_letters_match_only_with_those_letters():
    person = KnownPerson("Åke Ylönen", "S7")

    assert found("Åke and ÅKE and ylönen, but not Ake or Ylonen", [person]) == [
        ("name", "Åke"),
        ("name", "ÅKE"),
        ("name", "ylönen"),
    ]


def test_decomposed_given_name_matches_composed_text():
    person = KnownPerson(unicodedata.normalize("NFD", "Helmi Mäkinen"), "S3")
    assert unicodedata.normalize("NFD", "ä") in person.name

    assert found("Mäkinen said", [person]) == [("name", "Mäkinen")]


def test_composed_given_name_matches_decomposed_text():
    text = unicodedata.normalize("NFD", "Mäkinen said")

    assert found(text, [HELMI]) == [("name", text[:8])]


def test_name_followed_by_a_combining_mark_is_a_different_word():
    assert found("Helmi\u0308", [HELMI]) == []


def test_name_inside_a_longer_word_is_not_found():
    assert found("Helminen and Mäkiseltä and Helmikuu and xHelmi", [HELMI]) == []


def test_name_before_punctuation_or_a_possessive_is_found():
    assert found("(Helmi), Mäkinen's case", [HELMI]) == [
        ("name", "Helmi"),
        ("name", "Mäkinen"),
    ]


def test_name_parts_shorter_than_three_letters_are_skipped():
    assert found("Bo said so to Lindqvist; Bo Lindqvist agreed.", [BO]) == [
        ("name", "Lindqvist"),
        ("name", "Bo Lindqvist"),
    ]


def test_middle_names_and_parts_of_double_names_are_found():
    person = KnownPerson("Anna-Liisa Maria Korhonen", "S1")

    assert found("Anna-Liisa Korhonen; Anna; Liisa; Maria", [person]) == [
        ("name", "Anna-Liisa Korhonen"),
        ("name", "Anna"),
        ("name", "Liisa"),
        ("name", "Maria"),
    ]


def test_name_shared_by_two_people_suggests_no_single_pseudonym():
    other_helmi = KnownPerson("Helmi Virtanen", "S5")

    [shared, own] = find_identifiers("Helmi and Virtanen", [HELMI, other_helmi])

    assert (shared.text, shared.suggestion) == ("Helmi", "")
    assert shared.message == "Matches the names of S3 and S5"
    assert (own.text, own.suggestion) == ("Virtanen", "S5")


def test_names_are_not_looked_for_without_people():
    assert found("Helmi Mäkinen") == []


# --- E-mail ------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["helmi.makinen@example.fi", "h+notes@mail.helsinki.fi", "S_3-x@uni-example.co.uk"],
)
def test_email_address_is_found(address):
    assert found(f"Write to <{address}>.") == [("email", address)]


def test_email_without_a_top_level_domain_is_not_found():
    assert found("user@localhost, @mention, a@b") == []


# --- Phone numbers -----------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "040 123 4567",
        "040-1234567",
        "0401234567",
        "045 123 45 67",
        "+358 40 123 4567",
        "+358401234567",
        "+358 (0)40 123 4567",
        "(09) 1234 5678",
        "09 1234 5678",
        "+44 20 7946 0958",
    ],
)
def test_phone_number_is_found(number):
    text = f"Call {number}."

    assert find_identifiers(text) == [
        Finding("phone", 5, 5 + len(number), number, "", "Looks like a phone number")
    ]


@pytest.mark.parametrize(
    "text",
    [
        "The group met in 2004.",
        "From 2002-2004 and 2002–2004.",
        "We started at 16:15 and ended at 17.45.",
        "The session on 12.3.2004 and on 05.03.2004.",
        "The session on 05-03-2004 or 05 03 2004.",
        "On 1985-03-12.",
        "Session 12 of 15, 90 minutes, 9 students.",
        "Room 0 12, ward 040.",
        "A 3rd-6th year student; 120/80 mmHg; 37,5 degrees; 0.5 mg.",
        "Sessions 1 2 3 4 5 6 7 were held.",
        "1234567 and 12345678",
    ],
)
def test_numbers_that_are_not_phone_numbers_are_not_found(text):
    assert found(text) == []


def test_phone_with_too_few_digits_is_not_found():
    assert found("Call 040 123.") == []


# --- Henkilötunnus -----------------------------------------------------------


def test_valid_hetu_is_found():
    # 131052308 = 31 * 4227493 + 25, and CHECK_CHARS[25] is "T".
    assert 131052308 == 31 * 4227493 + 25
    assert CHECK_CHARS[25] == "T"

    assert find_identifiers("hetu 131052-308T, thanks") == [
        Finding("hetu", 5, 16, "131052-308T", "", "Looks like a Finnish personal identity code")
    ]


@pytest.mark.parametrize(
    "ddmmyy, sign, individual",
    [
        ("131052", "-", "308"),  # 1900s, the classic separator
        ("010594", "Y", "902"),  # 1900s, a sign added in 2023
        ("150385", "X", "123"),
        ("020502", "A", "024"),  # 2000s
        ("290200", "A", "123"),  # 29.2.2000 existed
        ("311210", "F", "006"),
        ("150300", "+", "123"),  # 1800s
        ("010101", "-", "010"),
    ],
)
def test_hetu_with_correct_check_character_is_valid_and_found(ddmmyy, sign, individual):
    code = hetu(ddmmyy, sign, individual)

    assert valid_hetu(code)
    assert found(f"code {code}") == [("hetu", code)]


def test_hetu_with_wrong_check_character_is_not_found():
    assert not valid_hetu("131052-308U")
    assert find_identifiers("hetu 131052-308U") == []


@pytest.mark.parametrize(
    "ddmmyy, sign",
    [
        ("290200", "-"),  # 1900 was not a leap year
        ("310452", "-"),  # 31 April
        ("001052", "-"),  # day 0
        ("131352", "A"),  # month 13
    ],
)
def test_hetu_with_impossible_date_is_not_valid_even_with_right_check(ddmmyy, sign):
    code = hetu(ddmmyy, sign, "123")

    assert not valid_hetu(code)
    assert found(f"code {code}") == []


def test_hetu_check_character_in_lower_case_is_found_as_written():
    assert valid_hetu("131052-308t")
    assert found("hetu 131052-308t") == [("hetu", "131052-308t")]


@pytest.mark.parametrize(
    "code",
    ["", "131052-308", "131052-308TT", " 131052-308T", "131052Z308T", "1310523-08T", "13105-2308T"],
)
def test_malformed_hetu_is_not_valid(code):
    assert not valid_hetu(code)


def test_hetu_inside_a_longer_code_is_not_found():
    assert found("ref X131052-308T and 9131052-308T") == []


# --- Dates of birth ----------------------------------------------------------


@pytest.mark.parametrize(
    "text, date",
    [
        ("She was born 12.3.1985 in Turku.", "12.3.1985"),
        ("Date of birth: 12/3/1985", "12/3/1985"),
        ("b. 1985-03-12", "1985-03-12"),
        ("DOB 12 March 1985", "12 March 1985"),
        ("born on March 12, 1985", "March 12, 1985"),
        ("potilas, syntynyt 12.3.1985, tuli", "12.3.1985"),
        ("Helmi (s. 12.3.1985) kertoi", "12.3.1985"),
        ("syntymäaika 12. maaliskuuta 1985", "12. maaliskuuta 1985"),
        ("s. 12.3.85", "12.3.85"),
    ],
)
def test_date_after_a_birth_cue_is_found(text, date):
    assert found(text) == [("birth_date", date)]


def test_date_without_a_birth_cue_is_not_found():
    assert found("The session on 12.3.2004 and on 12 March 2004 went well.") == []


def test_birth_cue_more_than_thirty_characters_before_the_date_does_not_count():
    near = "born, as she told the group, 12.3.1985"
    far = "born, as she told the group later, 12.3.1985"

    assert found(near) == [("birth_date", "12.3.1985")]
    assert found(far) == []


def test_birth_cue_counts_for_the_first_date_after_it_only():
    assert found("born 12.3.1985, seen on 5.9.2004") == [("birth_date", "12.3.1985")]


def test_birth_cue_inside_a_word_does_not_count():
    assert found("a newborn on 12.3.2004; unborn 12.3.2004; this. 12.3.2004") == []


def test_impossible_date_is_not_a_birth_date():
    assert found("born 31.2.1985") == []


def test_hetu_after_a_birth_cue_is_reported_as_hetu_only():
    assert found("syntynyt 131052-308T") == [("hetu", "131052-308T")]


# --- Ignore list -------------------------------------------------------------


def test_ignored_string_is_left_out_case_insensitively():
    text = "Helmi told Mäkinen"

    assert found(text, [HELMI], ignore=["HELMI"]) == [("name", "Mäkinen")]


def test_ignore_list_is_compared_after_nfc_normalisation():
    decomposed = unicodedata.normalize("NFD", "mäkinen")

    assert found("Helmi told Mäkinen", [HELMI], ignore=[decomposed]) == [("name", "Helmi")]


def test_ignore_list_matches_the_whole_finding_only():
    assert found("Helmi Mäkinen", [HELMI], ignore=["Helmi"]) == [("name", "Helmi Mäkinen")]


def test_ignoring_a_longer_finding_leaves_a_name_inside_it_reported():
    text = "mail helmi@example.fi"

    assert found(text, [HELMI]) == [("email", "helmi@example.fi")]
    assert found(text, [HELMI], ignore=["helmi@example.fi"]) == [("name", "helmi")]


# --- Offsets, sorting and overlaps --------------------------------------------


def test_offsets_count_code_points_after_an_emoji():
    [finding] = find_identifiers("😀 Helmi", [HELMI])

    assert (finding.start, finding.end) == (2, 7)


def test_offsets_are_right_after_astral_characters_and_combining_marks():
    text = "𝔘 e\u0301 😀😀 call 040 123 4567"

    [finding] = find_identifiers(text)

    assert finding.start == text.index("040")
    assert text[finding.start : finding.end] == "040 123 4567"


def test_findings_are_sorted_by_start():
    text = "hetu 131052-308T, Helmi (b. 12.3.1985), 040 123 4567, x@example.fi, Mäkinen"

    assert found(text, [HELMI]) == [
        ("hetu", "131052-308T"),
        ("name", "Helmi"),
        ("birth_date", "12.3.1985"),
        ("phone", "040 123 4567"),
        ("email", "x@example.fi"),
        ("name", "Mäkinen"),
    ]


def test_email_containing_a_name_is_one_email_finding():
    assert found("helmi.makinen@example.fi", [HELMI]) == [("email", "helmi.makinen@example.fi")]


def test_hetu_starting_with_zero_is_not_also_a_phone_number():
    code = hetu("010180", "-", "029")
    assert code == "010180-0291"  # all digits: the shape of a phone number too

    assert found(f"hetu {code}") == [("hetu", code)]


def test_findings_do_not_overlap():
    text = "Helmi Mäkinen <helmi.makinen@example.fi> syntynyt 131052-308T, +358 40 123 4567"

    findings = find_identifiers(text, [HELMI])

    assert [f.kind for f in findings] == ["name", "email", "hetu", "phone"]
    for before, after in zip(findings, findings[1:]):
        assert before.end <= after.start


# --- Long text ---------------------------------------------------------------


def test_million_character_text_completes():
    paragraph = (
        "Helmi Mäkinen (s. 12.3.1985) called 040 123 4567 after the session on "
        "12.3.2004; mail h@example.fi, hetu 131052-308T. " + "Discussion went on. " * 5 + "\n"
    )
    repeats = 1_000_000 // len(paragraph) + 1
    text = (paragraph * repeats)[:1_000_000]
    complete = text.count(paragraph)

    findings = find_identifiers(text, [HELMI])

    assert len(text) == 1_000_000
    assert sum(f.kind == "name" for f in findings) >= complete
    assert sum(f.kind == "hetu" for f in findings) >= complete
    assert sum(f.kind == "birth_date" for f in findings) >= complete


@pytest.mark.parametrize("unit", ["a", "0", "1 ", "0 12 ", "a@", "a.", "+1", "Helmi "])
def test_million_characters_of_repetitive_input_completes(unit):
    text = unit * (1_000_000 // len(unit))

    find_identifiers(text, [HELMI])


# --- Many participants ---------------------------------------------------------
#
# Names are looked up word by word in a dict of the participants' name forms
# (fieldnotes/identifiers.py). What they must find is defined by the plain
# way to do it, kept here as the reference: one regex with every form as an
# alternative, longest first, searched left to right.


def reference_names(text, people):
    pseudonyms_by_form, spelling_by_form = {}, {}
    for person in people:
        for form in identifiers._name_forms(person.name):
            key = identifiers._fold(form)
            pseudonyms_by_form.setdefault(key, set()).add(person.pseudonym)
            spelling_by_form.setdefault(key, form)
    if not pseudonyms_by_form:
        return []
    keys = sorted(pseudonyms_by_form, key=lambda k: (-len(k), k))
    groups = "|".join(
        f"(?P<n{i}>{identifiers._form_pattern(spelling_by_form[key])})" for i, key in enumerate(keys)
    )
    pattern = re.compile(
        f"{identifiers._NOT_AFTER_WORD}(?:{groups}){identifiers._NOT_BEFORE_WORD}", re.IGNORECASE
    )
    out = []
    for match in pattern.finditer(text):
        pseudonyms = sorted(pseudonyms_by_form[keys[int(match.lastgroup[1:])]])
        out.append((match.start(), match.end(), match.group(), pseudonyms))
    return out


def names_found(text, people):
    return [f for f in find_identifiers(text, people) if f.kind == "name"]


def assert_same_as_reference(text, people):
    # Only the names: the other checks may hide a name under a longer finding.
    got = list(identifiers._find_names(text, tuple(people)))
    expected = reference_names(text, people)
    assert [(f.start, f.end, f.text) for f in got] == [(s, e, t) for s, e, t, _ in expected]
    for finding, (_, _, _, pseudonyms) in zip(got, expected):
        if len(pseudonyms) == 1:
            assert (finding.suggestion, finding.message) == (pseudonyms[0], f"Matches the name of {pseudonyms[0]}")
        else:
            assert finding.suggestion == ""
            assert finding.message == f"Matches the names of {', '.join(pseudonyms[:-1])} and {pseudonyms[-1]}"


FIRST = ["Aino", "Eero", "Helmi", "Anna-Liisa", "Ville", "Åke", "Juha-Pekka", "Sanna", "Olli", "Mikko",
         "Emilia", "Väinö", "Kaisu", "Ilkka", "Saara", "Tuomas", "Elina", "Jaakko", "Pirjo", "Liisa"]
LAST = ["Virtanen", "Mäkinen", "Korhonen", "Nieminen", "Hämäläinen", "Laine", "Heikkinen", "Koskinen",
        "Järvinen", "Lehtonen", "Ylönen", "Lindqvist", "Saarinen", "Salo", "Kallio-Kokko", "Turunen"]


def course_of(n, seed=1):
    rng = random.Random(seed)
    people = []
    for i in range(n):
        middle = f" {rng.choice(FIRST)}" if rng.random() < 0.2 else ""
        # A surname of its own for most, so a full name points at one person.
        last = f"{rng.choice(LAST)}{i:04d}".translate(str.maketrans("0123456789", "abcdefghij"))
        people.append(KnownPerson(f"{rng.choice(FIRST)}{middle} {last}", f"S{i + 1}"))
    return people


def test_the_one_participant_named_is_found_among_eighteen_hundred():
    people = course_of(1800)
    target = people[1234]
    first, *_, last = target.name.split()
    text = f"The group met. {target.name} presented; later {last.upper()} said more. Nobody else."

    findings = names_found(text, people)

    full = next(f for f in findings if f.text == target.name)
    assert (full.start, full.end) == (15, 15 + len(target.name))
    assert (full.suggestion, full.message) == (target.pseudonym, f"Matches the name of {target.pseudonym}")
    surname = next(f for f in findings if f.text == last.upper())
    assert surname.start == text.index(last.upper()) and surname.suggestion == target.pseudonym
    # The first name is shared with others: it is a finding, but not one person's.
    assert [f.text for f in findings] == [target.name, last.upper()]


def test_a_first_name_shared_by_many_names_them_all():
    people = course_of(180)
    sharing = sorted(p.pseudonym for p in people if "Aino" in p.name.split())
    assert len(sharing) > 2

    [finding] = names_found("Aino came late.", people)

    assert finding.text == "Aino" and finding.suggestion == ""
    assert finding.message == f"Matches the names of {', '.join(sharing[:-1])} and {sharing[-1]}"


def test_many_participants_find_what_one_regex_of_all_their_names_finds():
    people = course_of(300, seed=7)
    rng = random.Random(7)
    pieces = []
    for _ in range(400):
        person = rng.choice(people)
        word = rng.choice([person.name, *person.name.split(), *person.name.replace(" ", "-").split("-")])
        word = rng.choice([str.upper, str.lower, str.title, lambda w: w,
                           lambda w: unicodedata.normalize("NFD", w)])(word)
        pieces.append(word)
        pieces.append(rng.choice([" ", "\n  ", ", ", "-", "'s ", "x", "\u0308 ", " and ", ". "]))
    text = "".join(pieces)

    assert_same_as_reference(text, people)


# Names and texts built from the characters where case-insensitive matching,
# word boundaries and Unicode normalisation are least obvious.
NAME_CHARS = "aAäÄoöiIİıeEsSſßẞkKKǅǆǄΣσςΐΐιΙͅ-'._1Ⓐⓐ\u0308(ﬅﬆ"
name_part = st.text(NAME_CHARS, min_size=1, max_size=7)
a_name = st.lists(name_part, min_size=1, max_size=3).map(" ".join)
SEPARATORS = [" ", "  ", "\n", "-", "'", ".", ",", "_", "x", "\u0308", "ä", "İ", "1", "(", ")", "Ⓐ", "\u00a0"]


@st.composite
def people_and_text(draw):
    names = draw(st.lists(a_name, min_size=1, max_size=6))
    people = [KnownPerson(name, f"S{i + 1}") for i, name in enumerate(names)]
    words = [w for name in names for w in [name, *name.split(), *name.replace(" ", "-").split("-")] if w]
    pieces = draw(st.lists(
        st.one_of(
            st.tuples(st.sampled_from(words), st.sampled_from(["", "upper", "lower", "swapcase", "NFD", "NFC"])),
            st.tuples(st.sampled_from(SEPARATORS), st.just("")),
        ),
        max_size=30,
    ))
    text = ""
    for piece, change in pieces:
        if change in ("NFD", "NFC"):
            piece = unicodedata.normalize(change, piece)
        elif change:
            piece = getattr(piece, change)()
        text += piece
    return people, text


@settings(max_examples=400, deadline=None)
@given(people_and_text())
def test_names_in_any_text_are_what_one_regex_of_all_names_finds(case):
    people, text = case
    assert_same_as_reference(text, people)


def test_the_name_dict_key_is_never_finer_than_case_insensitive_matching():
    # Every two characters re.IGNORECASE takes for each other share a key and
    # are both word characters or both not: otherwise a name could be missed.
    word_char = re.compile(rf"[\w{identifiers._COMBINING}]")
    cased = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000
             and (chr(c).lower() != chr(c) or chr(c).upper() != chr(c))]
    everything = "".join(cased)
    for ch in cased:
        for match in re.finditer(re.escape(ch), everything, re.IGNORECASE):
            other = match.group()
            assert identifiers._name_key(other) == identifiers._name_key(ch), (ch, other)
            assert bool(word_char.match(other)) == bool(word_char.match(ch)), (ch, other)


@pytest.mark.parametrize(
    "names, text, expected",
    [
        # Dotted and dotless i, and ß, match as re.IGNORECASE matches them.
        (["İlkka Straße"], "ilkka ILKKA ılkka İLKKA STRASSE straße STRAẞE",
         ["ilkka", "ILKKA", "ılkka", "İLKKA", "straße", "STRAẞE"]),
        (["Džemal Ǆ"], "DŽEMAL džemal Džemal", ["DŽEMAL", "džemal", "Džemal"]),
        # A name that does not start with a letter is searched for everywhere.
        (["(Helmi) Mäkinen"], "(helmi) x (Helmi) Mäkinen", ["(helmi)", "(Helmi) Mäkinen"]),
        (["'Ali Khan"], "'Ali said, 'ali Khan", ["'Ali", "'ali Khan"]),
        # ... and still wins over a shorter name at the same position.
        (["aaaⓐ Bee", "aaa Cee"], "aaaⒶ aaaⓐ aaa", ["aaaⒶ", "aaaⓐ", "aaa"]),
        (["Anna_Liisa Oja"], "Anna_Liisa and Anna", ["Anna_Liisa"]),
    ],
)
def test_names_with_unusual_characters(names, text, expected):
    people = [KnownPerson(name, f"S{i + 1}") for i, name in enumerate(names)]

    assert [f.text for f in names_found(text, people)] == expected
    assert_same_as_reference(text, people)
