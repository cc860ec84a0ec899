"""The identifier check a co-leader's submission runs
(`fieldnotes.services.unconfirmed_identifiers`): every section of the note
against the course's participants' names, e-mail addresses, phone numbers,
identity codes and dates.

Measured on notes spread over the course, as it is, with the course's
participants; and, for comparison, the same check without the names (the
other checks only). The loader skips the name search to keep the 3000-note
load short (see bench/load.py); this shows what it costs.

Prints one JSON line ("identifier_check").
"""

from __future__ import annotations

import argparse
import itertools

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common


def run(repeat: int) -> dict:
    from fieldnotes import identifiers, services
    from fieldnotes.models import FieldNote
    from sessions.models import Participant

    world = common.bench_world()
    course = world["course"]
    sections = common.sample_sections(course, 20)
    notes = list(FieldNote.objects.filter(sections__in=sections).select_related("meeting__group__course"))
    rotation = itertools.cycle(notes)
    with_names = common.timed(lambda: services.unconfirmed_identifiers(next(rotation)), repeat=repeat, warmup=2)

    def without_names():
        note = next(rotation)
        for section in note.sections.all():
            identifiers.find_identifiers(section.text, (), ())

    without = common.timed(without_names, repeat=repeat, warmup=2)
    metrics = {
        **common.summary_ms(with_names),
        **common.summary_ms(without, "without_names_"),
        "participants": Participant.objects.filter(course=course).count(),
        "chars_per_note": round(sum(len(s.text) for n in notes for s in n.sections.all()) / len(notes)),
    }
    return common.emit(
        "identifier_check", common.notes_loaded(course), metrics,
        units={"participants": "count", "chars_per_note": "characters"}, repeat=repeat,
        how="fieldnotes.services.unconfirmed_identifiers(note) in-process, rotating over sampled notes",
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    common.setup_django()
    run(args.repeat)


if __name__ == "__main__":
    main()
