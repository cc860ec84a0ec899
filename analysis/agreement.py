"""Agreement between coders: percent agreement, Cohen's kappa and
Krippendorff's alpha (nominal), at the section and the character level.

Pure standard library, so the app computes reports without numpy. The tests
hold every number against the `krippendorff` package, statsmodels and the
published worked examples.

Everything is computed from weighted counts of rating tuples (one value per
coder, None where a coder did not rate the unit): a tuple seen 4,000 times
costs the same as one seen once. That is what lets the character level treat
every code point as a unit without building one object per character. With
integer counts the arithmetic is exact (fractions) until the final float.

Undefined values are None, never nan and never a made-up 0 or 1:

- percent agreement is None when no unit was rated by two or more coders;
- kappa is None when the two coders rated no unit in common, or when the
  agreement expected by chance is 1, which happens exactly when both coders
  gave one and the same value to every unit (e.g. neither used the code);
- alpha is None when no unit has two or more values (nothing is pairable), or
  when the pairable values are all the same (expected disagreement D_e = 0).

`kappa_undefined_reason` and `alpha_undefined_reason` say which, in words for
the report page. The references agree: statsmodels gives nan for such a
kappa, and the `krippendorff` package gives nan or refuses the data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

Rating = tuple  # one value per coder for one unit, None where missing

NO_UNITS_IN_COMMON = "The two coders rated no unit in common."
ONE_VALUE_EVERYWHERE = "Both coders gave one and the same value to every unit, so chance agreement is complete."
NOTHING_PAIRABLE = "No unit was rated by two or more coders."
ONE_VALUE_USED = "Every coder gave the same value to every unit, so there is no disagreement to expect."


# --- Weighted counts: the arithmetic ---------------------------------------------


def _percent_weighted(counts: Mapping[Rating, int]) -> Fraction | None:
    rated = agreed = 0
    for rating, weight in counts.items():
        values = [v for v in rating if v is not None]
        if len(values) < 2:
            continue
        rated += weight
        if all(v == values[0] for v in values):
            agreed += weight
    return Fraction(agreed, rated) if rated else None


def _kappa_weighted(pairs: Mapping[tuple[Hashable, Hashable], int]) -> tuple[Fraction | None, str | None]:
    """Kappa from counts of (value of coder A, value of coder B); pairs with a None are skipped."""
    n = agreed = 0
    marginal_a: Counter = Counter()
    marginal_b: Counter = Counter()
    for (a, b), weight in pairs.items():
        if a is None or b is None or not weight:
            continue
        n += weight
        marginal_a[a] += weight
        marginal_b[b] += weight
        if a == b:
            agreed += weight
    if n == 0:
        return None, NO_UNITS_IN_COMMON
    # kappa = (p_o - p_e) / (1 - p_e), multiplied through by n² to stay in integers.
    chance = sum(count * marginal_b[value] for value, count in marginal_a.items())
    if chance == n * n:
        return None, ONE_VALUE_EVERYWHERE
    return Fraction(n * agreed - chance, n * n - chance), None


def _alpha_weighted(counts: Mapping[Rating, int]) -> tuple[Fraction | None, str | None]:
    """Nominal alpha from the coincidence matrix (Krippendorff 2011).

    A unit with m values adds n_uc(n_uc - 1)/(m - 1) to the diagonal o_cc and
    n_uc to n_c. Only the diagonal matters for the nominal metric:
    alpha = ((n - 1) Σ o_cc - Σ n_c(n_c - 1)) / (n(n - 1) - Σ n_c(n_c - 1)).
    """
    matches_by_m: Counter = Counter()  # Σ n_uc(n_uc - 1) over units with m values, kept integral
    value_totals: Counter = Counter()  # n_c
    for rating, weight in counts.items():
        if not weight:
            continue
        in_unit = Counter(v for v in rating if v is not None)
        m = sum(in_unit.values())
        if m < 2:
            continue
        matches_by_m[m] += weight * sum(k * (k - 1) for k in in_unit.values())
        for value, k in in_unit.items():
            value_totals[value] += weight * k
    n = sum(value_totals.values())
    if n == 0:
        return None, NOTHING_PAIRABLE
    chance_matches = sum(k * (k - 1) for k in value_totals.values())
    expected = n * (n - 1) - chance_matches
    if expected == 0:
        return None, ONE_VALUE_USED
    observed = sum(Fraction(matches, m - 1) for m, matches in matches_by_m.items())
    return ((n - 1) * observed - chance_matches) / expected, None


def _as_float(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


# --- Plain ratings ---------------------------------------------------------------


def _count_units(ratings: Sequence[Sequence[Hashable | None]]) -> Counter:
    lengths = {len(row) for row in ratings}
    if len(lengths) > 1:
        raise ValueError(f"Every coder must have one entry per unit; got rows of lengths {sorted(lengths)}.")
    return Counter(zip(*ratings))


def _pairs(a: Sequence[Hashable], b: Sequence[Hashable]) -> Counter:
    if len(a) != len(b):
        raise ValueError(f"The two coders must rate the same units; got {len(a)} and {len(b)} values.")
    return Counter(zip(a, b))


def percent_agreement(ratings: Sequence[Sequence[Hashable | None]]) -> float | None:
    """Share of units on which every coder who rated the unit gave the same value.

    `ratings[coder][unit]`, None for missing. Units rated by fewer than two
    coders are left out; None if no unit is left.
    """
    return _as_float(_percent_weighted(_count_units(ratings)))


def cohens_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa for two coders' nominal values on the same units.

    Units where either value is None are left out. None when undefined (see
    `kappa_undefined_reason`): no unit in common, or chance agreement of 1.
    """
    return _as_float(_kappa_weighted(_pairs(a, b))[0])


def kappa_undefined_reason(a: Sequence[Hashable], b: Sequence[Hashable]) -> str | None:
    """Why `cohens_kappa(a, b)` is None, in a sentence; None if kappa is defined."""
    return _kappa_weighted(_pairs(a, b))[1]


def krippendorff_alpha_nominal(ratings: Sequence[Sequence[Hashable | None]]) -> float | None:
    """Krippendorff's alpha, nominal metric, any number of coders, missing values allowed.

    `ratings[coder][unit]`, None for missing. Computed through the coincidence
    matrix as in Krippendorff (2011), "Computing Krippendorff's
    Alpha-Reliability"; units with fewer than two values are not pairable and
    are dropped. None when undefined (see `alpha_undefined_reason`).
    """
    return _as_float(_alpha_weighted(_count_units(ratings))[0])


def alpha_undefined_reason(ratings: Sequence[Sequence[Hashable | None]]) -> str | None:
    """Why `krippendorff_alpha_nominal(ratings)` is None, in a sentence; None if alpha is defined."""
    return _alpha_weighted(_count_units(ratings))[1]


# --- Codes on note sections --------------------------------------------------------


@dataclass(frozen=True)
class PresenceCounts:
    """How two coders' present/absent ratings of one code fall, in units (sections or characters)."""

    both: int
    only_a: int
    only_b: int
    neither: int


@dataclass(frozen=True)
class CodeAgreement:
    """Agreement on one code. `coders` is the order the ratings were read in:
    with two coders, `counts.only_a` is the first one's."""

    code_id: Hashable
    coders: tuple
    units: int
    percent: float | None
    kappa: float | None  # None also when there are not exactly two coders
    alpha: float | None
    counts: PresenceCounts | None  # only for exactly two coders
    kappa_reason: str | None = None  # why kappa is None, when it is
    alpha_reason: str | None = None  # why alpha is None, when it is


def _code_agreement(code_id: Hashable, coders: tuple, counts: Counter) -> CodeAgreement:
    alpha, alpha_reason = _alpha_weighted(counts)
    kappa = kappa_reason = presence = None
    if len(coders) == 2:
        kappa, kappa_reason = _kappa_weighted(counts)
        presence = PresenceCounts(
            both=counts[(True, True)], only_a=counts[(True, False)],
            only_b=counts[(False, True)], neither=counts[(False, False)],
        )
    else:
        kappa_reason = f"Cohen's kappa compares exactly two coders; this round has {len(coders)}."
    return CodeAgreement(
        code_id=code_id, coders=coders, units=sum(counts.values()),
        percent=_as_float(_percent_weighted(counts)), kappa=_as_float(kappa), alpha=_as_float(alpha),
        counts=presence, kappa_reason=kappa_reason, alpha_reason=alpha_reason,
    )


def section_level(
    presence: Mapping[Hashable, Mapping[Hashable, set]],
    sections: Sequence[Hashable],
    codes: Iterable[Hashable],
) -> list[CodeAgreement]:
    """Agreement per code with the section as the unit: did each coder apply the code there or not.

    `presence[coder][code_id]` is the set of section ids where the coder used
    the code; a missing code means nowhere. Every coder rated every one of
    `sections`; sections outside them are ignored (not in the round, or no
    longer eligible).
    """
    coders = tuple(presence)
    sections = list(dict.fromkeys(sections))
    result = []
    for code_id in codes:
        used = [presence[coder].get(code_id, ()) for coder in coders]
        counts = Counter(tuple(section in where for where in used) for section in sections)
        result.append(_code_agreement(code_id, coders, counts))
    return result


def _coverage_counts(per_coder: list[list[tuple[int, int]]], length: int) -> Counter:
    """Number of characters in [0, length) per tuple of coverage (one bool per coder).

    A boundary sweep: only where some coder's segment starts or ends can the
    tuple change. Overlapping segments of one coder count once, and segments
    are clipped to the section (an amended note may leave them hanging over).
    """
    events: dict[int, list[tuple[int, int]]] = {}
    for coder, spans in enumerate(per_coder):
        for start, end in spans:
            start, end = max(start, 0), min(end, length)
            if start < end:
                events.setdefault(start, []).append((coder, 1))
                events.setdefault(end, []).append((coder, -1))
    depth = [0] * len(per_coder)
    counts: Counter = Counter()
    position = 0
    for boundary in sorted(events):
        if boundary > position:
            counts[tuple(d > 0 for d in depth)] += boundary - position
            position = boundary
        for coder, step in events[boundary]:
            depth[coder] += step
    if length > position:
        counts[tuple(d > 0 for d in depth)] += length - position
    return counts


def character_level(
    spans: Mapping[Hashable, Mapping[Hashable, Mapping[Hashable, list[tuple[int, int]]]]],
    section_lengths: Mapping[Hashable, int],
    codes: Iterable[Hashable],
) -> list[CodeAgreement]:
    """Agreement per code with each character (code point) of each section as the unit.

    `spans[coder][code_id][section_id]` lists the coder's segments as
    (start, end) code-point offsets, end excluded. A character is rated True
    for a coder when any of their segments of the code covers it. Only the
    sections in `section_lengths` count; segments elsewhere are ignored.
    """
    coders = tuple(spans)
    nobody = (False,) * len(coders)
    result = []
    for code_id in codes:
        by_coder = [spans[coder].get(code_id, {}) for coder in coders]
        counts: Counter = Counter()
        for section_id, length in section_lengths.items():
            per_coder = [list(by_section.get(section_id, ())) for by_section in by_coder]
            if any(per_coder):
                counts.update(_coverage_counts(per_coder, length))
            elif length > 0:
                counts[nobody] += length
        result.append(_code_agreement(code_id, coders, counts))
    return result
