"""Agreement statistics against published worked examples and the reference
implementations (the `krippendorff` package and statsmodels), to 1e-9."""

import random
from collections import Counter

import krippendorff
import numpy as np
import pytest
from statsmodels.stats.inter_rater import cohens_kappa as statsmodels_kappa

from analysis.agreement import (
    CodeAgreement,
    PresenceCounts,
    alpha_undefined_reason,
    character_level,
    cohens_kappa,
    kappa_undefined_reason,
    krippendorff_alpha_nominal,
    percent_agreement,
    section_level,
)

TOLERANCE = 1e-9


# --- References, with their "undefined" turned into our None -----------------------


def reference_alpha(ratings):
    """The `krippendorff` package on ratings[coder][unit]; None where it gives nan or refuses."""
    codes = {}  # the package wants numbers; any hashable value gets one
    data = [[np.nan if v is None else codes.setdefault(v, len(codes)) for v in row] for row in ratings]
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            value = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    except ValueError:  # "more than one value in the domain" / "at least one unit with ... two coders"
        return None
    return None if np.isnan(value) else float(value)


def reference_kappa(a, b):
    """statsmodels' simple kappa on the confusion table (rows coder A, columns coder B)."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if not pairs:
        return None  # statsmodels refuses an empty table (an assertion); kappa is undefined
    categories = sorted({x for x, _ in pairs} | {y for _, y in pairs})
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    for x, y in pairs:
        table[index[x], index[y]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        value = statsmodels_kappa(table, return_results=False)
    return None if np.isnan(value) else float(value)


def reference_percent(ratings):
    """Percent agreement spelled out unit by unit."""
    rated = agreed = 0
    for unit in zip(*ratings):
        values = [v for v in unit if v is not None]
        if len(values) >= 2:
            rated += 1
            agreed += len(set(values)) == 1
    return agreed / rated if rated else None


def assert_close(actual, expected):
    if expected is None:
        assert actual is None
    else:
        assert actual is not None
        assert actual == pytest.approx(expected, abs=TOLERANCE)


# --- Published worked examples ----------------------------------------------------


# Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg
# School for Communication, University of Pennsylvania. Example C: four
# observers, twelve units, values 1-5, missing data (None); nominal alpha = 0.743.
KRIPPENDORFF_2011_C = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],  # observer A
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],  # observer B
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],  # observer C
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],  # observer D
]

# The same paper, example A: binary data, two observers, no missing data; alpha = 0.095.
KRIPPENDORFF_2011_A = [
    [0, 1, 0, 0, 0, 0, 0, 0, 1, 0],
    [1, 1, 1, 0, 0, 1, 0, 0, 0, 0],
]


def test_alpha_matches_krippendorff_2011_example_with_four_coders_and_missing_values():
    alpha = krippendorff_alpha_nominal(KRIPPENDORFF_2011_C)

    assert round(alpha, 3) == 0.743
    assert_close(alpha, reference_alpha(KRIPPENDORFF_2011_C))


def test_alpha_matches_krippendorff_2011_binary_example():
    alpha = krippendorff_alpha_nominal(KRIPPENDORFF_2011_A)

    assert round(alpha, 3) == 0.095
    assert_close(alpha, 1 - 19 * 4 / (14 * 6))  # 1 - (n - 1) o_01 / (n_0 n_1), worked in the paper


def test_kappa_matches_the_textbook_yes_no_example():
    # The worked example in Wikipedia's "Cohen's kappa": 50 proposals, both say
    # yes 20, A yes B no 5, A no B yes 10, both no 15; p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15

    assert cohens_kappa(a, b) == pytest.approx(0.4, abs=TOLERANCE)
    assert percent_agreement([a, b]) == pytest.approx(0.7, abs=TOLERANCE)
    assert_close(cohens_kappa(a, b), reference_kappa(a, b))


# --- Random rating sets against the references --------------------------------------


def random_ratings(rng, *, coders, units, categories, missing):
    return [
        [None if rng.random() < missing else rng.randrange(categories) for _ in range(units)]
        for _ in range(coders)
    ]


@pytest.mark.parametrize("seed", range(300))
def test_alpha_equals_krippendorff_package_on_random_ratings(seed):
    rng = random.Random(seed)
    ratings = random_ratings(
        rng, coders=rng.randint(2, 6), units=rng.randint(1, 40), categories=rng.randint(1, 5),
        missing=rng.choice([0.0, 0.1, 0.4, 0.7]),
    )

    assert_close(krippendorff_alpha_nominal(ratings), reference_alpha(ratings))
    assert percent_agreement(ratings) == reference_percent(ratings)


@pytest.mark.parametrize("seed", range(300))
def test_kappa_equals_statsmodels_on_random_ratings(seed):
    rng = random.Random(seed)
    a, b = random_ratings(rng, coders=2, units=rng.randint(1, 60), categories=rng.randint(1, 5),
                          missing=rng.choice([0.0, 0.2]))

    assert_close(cohens_kappa(a, b), reference_kappa(a, b))


def test_references_cover_both_defined_and_undefined_cases():
    # Guards the random tests: they must exercise the None convention, not only numbers.
    seen = Counter()
    for seed in range(300):
        rng = random.Random(seed)
        ratings = random_ratings(
            rng, coders=rng.randint(2, 6), units=rng.randint(1, 40), categories=rng.randint(1, 5),
            missing=rng.choice([0.0, 0.1, 0.4, 0.7]),
        )
        seen[reference_alpha(ratings) is None] += 1
    assert seen[True] > 0 and seen[False] > 200


# --- Edge cases ----------------------------------------------------------------------


def test_perfect_agreement_gives_one_everywhere():
    ratings = [["a", "b", "c", "a"], ["a", "b", "c", "a"], ["a", "b", "c", "a"]]

    assert percent_agreement(ratings) == 1.0
    assert cohens_kappa(ratings[0], ratings[1]) == 1.0
    assert krippendorff_alpha_nominal(ratings) == 1.0
    assert_close(1.0, reference_kappa(ratings[0], ratings[1]))
    assert_close(1.0, reference_alpha(ratings))


def test_one_value_everywhere_is_undefined_with_a_reason():
    same = [[1, 1, 1], [1, 1, 1]]

    assert percent_agreement(same) == 1.0
    assert cohens_kappa(*same) is None
    assert "same value" in kappa_undefined_reason(*same)
    assert krippendorff_alpha_nominal(same) is None
    assert "same value" in alpha_undefined_reason(same)
    assert reference_kappa(*same) is None and reference_alpha(same) is None


def test_reasons_are_none_when_the_statistic_is_defined():
    assert kappa_undefined_reason([1, 2], [1, 2]) is None
    assert alpha_undefined_reason([[1, 2], [1, 2]]) is None


def test_single_unit():
    assert cohens_kappa([1], [2]) == 0.0
    assert_close(cohens_kappa([1], [2]), reference_kappa([1], [2]))
    assert cohens_kappa([1], [1]) is None
    assert krippendorff_alpha_nominal([[1], [2]]) == 0.0
    assert_close(krippendorff_alpha_nominal([[1], [2]]), reference_alpha([[1], [2]]))
    assert krippendorff_alpha_nominal([[1], [1]]) is None
    assert percent_agreement([[1], [2]]) == 0.0
    assert percent_agreement([[1], [1]]) == 1.0


def test_missing_values_leave_units_out():
    ratings = [[1, None, 2, 1], [1, 3, None, 2], [None, 3, None, 2]]
    # Unit 3 has one value and is not pairable; units 1, 2 agree, unit 4 does not.

    assert percent_agreement(ratings) == pytest.approx(2 / 3, abs=TOLERANCE)
    assert_close(krippendorff_alpha_nominal(ratings), reference_alpha(ratings))
    assert cohens_kappa([1, None, 2, 1], [1, 2, None, 2]) == cohens_kappa([1, 1], [1, 2])


def test_nothing_pairable_is_undefined():
    ratings = [[1, None, None], [None, 2, None]]

    assert percent_agreement(ratings) is None
    assert krippendorff_alpha_nominal(ratings) is None
    assert alpha_undefined_reason(ratings) == "No unit was rated by two or more coders."
    assert reference_alpha(ratings) is None
    assert cohens_kappa([1, None], [None, 2]) is None
    assert kappa_undefined_reason([1, None], [None, 2]) == "The two coders rated no unit in common."


def test_values_used_only_in_unpairable_units_do_not_count():
    # Value 2 sits in a unit only one coder rated, so the pairable values are all 1: D_e = 0.
    ratings = [[1, 1, 2], [1, 1, None]]

    assert krippendorff_alpha_nominal(ratings) is None
    assert reference_alpha(ratings) is None


def test_coders_with_different_numbers_of_units_are_refused():
    with pytest.raises(ValueError):
        krippendorff_alpha_nominal([[1, 2], [1]])
    with pytest.raises(ValueError):
        cohens_kappa([1, 2], [1])


# --- Section level -------------------------------------------------------------------

SECTIONS = ["s1", "s2", "s3", "s4", "s5"]


def section_ratings(presence, code, sections=SECTIONS):
    return [[section in presence[coder].get(code, set()) for section in sections] for coder in presence]


def test_section_level_counts_and_statistics_for_two_coders():
    presence = {"ann": {"role": {"s1", "s2", "s3"}}, "ben": {"role": {"s2", "s3", "s5"}}}

    [result] = section_level(presence, SECTIONS, ["role"])

    assert result.code_id == "role" and result.coders == ("ann", "ben") and result.units == 5
    assert result.counts == PresenceCounts(both=2, only_a=1, only_b=1, neither=1)
    assert result.percent == pytest.approx(3 / 5, abs=TOLERANCE)
    a, b = section_ratings(presence, "role")
    assert_close(result.kappa, reference_kappa(a, b))
    assert_close(result.alpha, reference_alpha([a, b]))


def test_section_level_when_one_coder_codes_nothing():
    presence = {"ann": {}, "ben": {"role": {"s1", "s3"}}}

    [result] = section_level(presence, SECTIONS, ["role"])

    a, b = section_ratings(presence, "role")
    assert result.counts == PresenceCounts(both=0, only_a=0, only_b=2, neither=3)
    assert result.percent == pytest.approx(3 / 5, abs=TOLERANCE)
    assert result.kappa == 0.0  # chance agreement is all there is
    assert_close(result.kappa, reference_kappa(a, b))
    assert result.alpha < 0
    assert_close(result.alpha, reference_alpha([a, b]))


def test_section_level_when_one_coder_codes_nothing_and_the_other_codes_everything():
    presence = {"ann": {"role": set()}, "ben": {"role": set(SECTIONS)}}

    [result] = section_level(presence, SECTIONS, ["role"])

    a, b = section_ratings(presence, "role")
    assert result.percent == 0.0
    assert_close(result.kappa, reference_kappa(a, b))
    assert_close(result.alpha, reference_alpha([a, b]))


def test_section_level_code_nobody_used_is_undefined_but_fully_agreed():
    presence = {"ann": {"role": {"s1"}}, "ben": {"role": {"s1"}}}

    role, unused = section_level(presence, SECTIONS, ["role", "unused"])

    assert role.kappa == 1.0 and role.alpha == 1.0
    assert unused.percent == 1.0
    assert unused.kappa is None and unused.alpha is None
    assert unused.kappa_reason and unused.alpha_reason
    assert unused.counts == PresenceCounts(both=0, only_a=0, only_b=0, neither=5)
    a, b = section_ratings(presence, "unused")
    assert reference_kappa(a, b) is None and reference_alpha([a, b]) is None


def test_section_level_with_three_coders_has_alpha_but_no_kappa():
    presence = {"ann": {"c": {"s1", "s2"}}, "ben": {"c": {"s1"}}, "cai": {}}

    [result] = section_level(presence, SECTIONS, ["c"])

    assert result.kappa is None and result.counts is None
    assert "exactly two" in result.kappa_reason
    assert_close(result.alpha, reference_alpha(section_ratings(presence, "c")))
    assert result.percent == pytest.approx(3 / 5, abs=TOLERANCE)


def test_section_level_ignores_sections_outside_the_round():
    presence = {"ann": {"c": {"s1", "gone"}}, "ben": {"c": {"s1"}}}

    [result] = section_level(presence, SECTIONS, ["c"])

    assert result.percent == 1.0 and result.units == 5


def test_section_level_single_section():
    presence = {"ann": {"c": {"s1"}}, "ben": {}}

    [result] = section_level(presence, ["s1"], ["c"])

    assert result.percent == 0.0
    assert result.kappa == 0.0 and result.alpha == 0.0
    assert_close(result.alpha, reference_alpha([[True], [False]]))


# --- Character level -----------------------------------------------------------------


def brute_force_character_ratings(spans, section_lengths, code):
    """One value per character per coder, built the slow way."""
    rows = []
    for coder in spans:
        row = []
        for section_id, length in section_lengths.items():
            covered = [False] * length
            for start, end in spans[coder].get(code, {}).get(section_id, []):
                for i in range(max(start, 0), min(end, length)):
                    covered[i] = True
            row.extend(covered)
        rows.append(row)
    return rows


def assert_matches_brute_force(result: CodeAgreement, spans, section_lengths):
    rows = brute_force_character_ratings(spans, section_lengths, result.code_id)
    assert result.units == sum(section_lengths.values())
    assert result.percent == percent_agreement(rows)
    assert result.alpha == krippendorff_alpha_nominal(rows)
    if len(rows) == 2:
        assert result.kappa == cohens_kappa(*rows)
        pairs = Counter(zip(*rows))
        assert result.counts == PresenceCounts(
            both=pairs[(True, True)], only_a=pairs[(True, False)], only_b=pairs[(False, True)],
            neither=pairs[(False, False)],
        )
    return rows


def test_character_level_overlapping_spans_of_one_coder_count_once():
    spans = {"ann": {"c": {"s": [(0, 6), (4, 10), (5, 8)]}}, "ben": {"c": {"s": [(0, 10)]}}}

    [result] = character_level(spans, {"s": 20}, ["c"])

    assert result.counts == PresenceCounts(both=10, only_a=0, only_b=0, neither=10)
    assert result.percent == 1.0 and result.kappa == 1.0 and result.alpha == 1.0


def test_character_level_spans_at_section_edges():
    spans = {
        "ann": {"c": {"s1": [(0, 3)], "s2": [(7, 10)]}},
        "ben": {"c": {"s1": [(0, 1), (9, 10)], "s2": [(0, 10)]}},
    }
    lengths = {"s1": 10, "s2": 10}

    [result] = character_level(spans, lengths, ["c"])

    assert result.counts == PresenceCounts(both=1 + 3, only_a=2, only_b=1 + 7, neither=6)
    rows = assert_matches_brute_force(result, spans, lengths)
    assert_close(result.kappa, reference_kappa(*rows))
    assert_close(result.alpha, reference_alpha(rows))


def test_character_level_clips_spans_hanging_over_the_section():
    spans = {"ann": {"c": {"s": [(-3, 2), (8, 15)]}}, "ben": {"c": {"s": [(0, 2), (8, 10)]}}}

    [result] = character_level(spans, {"s": 10}, ["c"])

    assert result.counts == PresenceCounts(both=4, only_a=0, only_b=0, neither=6)


def test_character_level_when_one_coder_codes_nothing_and_a_code_nobody_used():
    spans = {"ann": {"c": {"s": [(2, 5)]}}, "ben": {}}

    c, unused = character_level(spans, {"s": 10, "t": 4}, ["c", "unused"])

    assert c.counts == PresenceCounts(both=0, only_a=3, only_b=0, neither=11)
    assert c.kappa == 0.0
    rows = brute_force_character_ratings(spans, {"s": 10, "t": 4}, "c")
    assert_close(c.alpha, reference_alpha(rows))
    assert unused.percent == 1.0 and unused.kappa is None and unused.alpha is None


def random_spans(rng, coders, codes, section_lengths):
    spans = {}
    for coder in coders:
        spans[coder] = {}
        for code in codes:
            if rng.random() < 0.2:
                continue  # this coder never used the code
            by_section = {}
            for section_id, length in section_lengths.items():
                segments = []
                for _ in range(rng.randint(0, 4)):
                    start = rng.randint(-2, length)
                    segments.append((start, start + rng.randint(0, 12)))
                by_section[section_id] = segments
            spans[coder][code] = by_section
    return spans


@pytest.mark.parametrize("seed", range(100))
def test_character_level_equals_brute_force_per_character(seed):
    rng = random.Random(seed)
    coders = [f"coder{i}" for i in range(rng.randint(2, 4))]
    codes = ["x", "y", "z"]
    lengths = {f"s{i}": rng.randint(0, 30) for i in range(rng.randint(1, 4))}
    spans = random_spans(rng, coders, codes, lengths)

    for result in character_level(spans, lengths, codes):
        rows = assert_matches_brute_force(result, spans, lengths)
        assert_close(result.alpha, reference_alpha(rows))
        if len(coders) == 2:
            assert_close(result.kappa, reference_kappa(*rows))


def test_character_level_large_course_completes():
    rng = random.Random(2026)
    lengths = {f"note{i}": 5000 for i in range(300)}
    codes = [f"code{i}" for i in range(12)]
    spans = {
        coder: {
            code: {
                section: [(s, s + rng.randint(20, 400)) for s in rng.sample(range(5000), rng.randint(0, 3))]
                for section in lengths
            }
            for code in codes
        }
        for coder in ("researcher1", "researcher2")
    }

    results = character_level(spans, lengths, codes)

    assert [r.code_id for r in results] == codes
    assert all(r.units == 1_500_000 and r.alpha is not None for r in results)
