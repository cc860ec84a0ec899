"""Coding for the demo course: a study in progress, not empty pages.

researcher1 codes every research-eligible section of the demo notes with the
study's codebook (context and trigger on each case, the case's theme in the
discussion); there are memos; and a completed double-coding round with
researcher2, who reads a few cases differently, so kappa and alpha have
something to say. Everything goes through the real services and is chosen
from the texts themselves: the same demo every time.
"""

from __future__ import annotations

import re

from fieldnotes.models import NoteSection
from sessions.models import Course

from . import rounds, services
from .models import Code, Memo

# Case title -> (context, trigger, theme of the discussion it leads to).
CASE_CODES = {
    "A dying patient's family on the ward": ("Patients", "Incurable patient", "Feelings related to patients"),
    "The consultant who mocked a patient on the round": (
        "Confusing experiences in medical education", "Witnessing injustice", "Negative role models"),
    "A friend asked me for a prescription": ("Privacy and profession", "Value conflict",
                                             "Building professional identity"),
    "A patient who reminded me of my grandfather": ("Patients", "Difficult human relationships",
                                                    "Feelings related to patients"),
    "Left alone with a crying patient on call": ("Confusing experiences in medical education", "Role confusion",
                                                 "Feelings related to patients"),
    "An elderly patient who refused treatment": ("Patients", "Value conflict", "Building professional identity"),
    "Unsure whether to mention a resident's mistake": ("Confusing experiences in medical education",
                                                       "Value conflict", "Negative role models"),
    "A drug-seeking patient at the health centre": ("Patients", "Difficult human relationships",
                                                    "Feelings related to patients"),
    "Examining a patient my own age": ("Patients", "Role confusion", "Building professional identity"),
    "Told to just watch while bad news was given": ("Confusing experiences in medical education", "Role confusion",
                                                    "Negative role models"),
    "A neighbour asking about her test results": ("Privacy and profession", "Role confusion",
                                                  "Building professional identity"),
    "A psychiatric patient who frightened me": ("Patients", "Difficult human relationships",
                                                "Feelings related to patients"),
    "Feeling useless beside an incurable cancer patient": ("Patients", "Incurable patient",
                                                           "Feelings related to patients"),
    "Two specialists, two opposite instructions": ("Confusing experiences in medical education", "Role confusion",
                                                   "Co-operation with other medical professionals"),
    "A nurse who corrected me in front of the patient": ("Confusing experiences in medical education",
                                                         "Difficult human relationships",
                                                         "Co-operation with other medical professionals"),
}

# How researcher2 reads some triggers differently in the double-coding round.
SECOND_READING = {"Role confusion": "Value conflict", "Difficult human relationships": "Witnessing injustice"}

_SENTENCE = re.compile(r"[^.!?]+[.!?]+")


def sentences(text: str) -> list[tuple[int, int]]:
    """Code-point spans of the sentences of `text`, without surrounding spaces."""
    spans = []
    for match in _SENTENCE.finditer(text):
        start, end = match.span()
        while start < end and text[start].isspace():
            start += 1
        spans.append((start, end))
    return spans


def _plan(section: NoteSection, codes: dict[str, Code], *, second_reading: bool = False):
    """(code, start, end) for one section, from its case's codes."""
    spans = sentences(section.text)
    if not spans:
        return []
    if section.kind == NoteSection.Kind.CASE:
        context, trigger, _ = CASE_CODES.get(section.case.title, (None, None, None))
        if context is None:
            return []
        if second_reading:
            trigger = SECOND_READING.get(trigger, trigger)
        plan = [(codes[context], *spans[0])]
        plan.append((codes[trigger], *spans[min(1, len(spans) - 1)]))
        return plan
    if section.kind == NoteSection.Kind.DISCUSSION:
        themes = [CASE_CODES[c.title][2] for c in section.note.meeting.cases.order_by("order") if c.title in CASE_CODES]
        return [(codes[theme], *spans[i % len(spans)]) for i, theme in enumerate(dict.fromkeys(themes))]
    return []


def seed_coding(*, course: Course, researcher1, researcher2) -> None:
    services.codebook_start_from_study(course=course, actor=researcher1)
    codes = {c.name: c for c in Code.objects.filter(course=course)}
    sections = list(
        NoteSection.objects.research_eligible()
        .filter(note__meeting__group__course=course)
        .select_related("case", "note__meeting")
        .order_by("note__meeting__starts_at", "note__author__username", "kind", "case__order")
    )
    # The double-coding round: the case sections of the first three sessions of the first group.
    first_group = min(sections, key=lambda s: s.note.meeting.starts_at).note.meeting.group_id
    first_sessions = sorted({s.note.meeting for s in sections if s.note.meeting.group_id == first_group},
                            key=lambda m: m.starts_at)[:3]
    round_sections = [s for s in sections if s.note.meeting in first_sessions and s.kind == NoteSection.Kind.CASE]

    for section in sections:
        for code, start, end in _plan(section, codes):
            services.segment_create(section=section, code=code, coder=researcher1, start=start, end=end)

    round = rounds.round_create(course=course, name="Triggers, first three sessions",
                                coders=[researcher1, researcher2], sections=round_sections, actor=researcher1)
    for section in round_sections:
        for coder, second in ((researcher1, False), (researcher2, True)):
            for code, start, end in _plan(section, codes, second_reading=second):
                services.segment_create(section=section, code=code, coder=coder, start=start, end=end, round=round)
    rounds.round_close(round=round, actor=researcher1)

    role_confusion = codes["Role confusion"]
    Memo.objects.create(course=course, author=researcher1, code=role_confusion, title="Where role confusion shows",
                        text="Mostly on call and in bad-news situations: the student is present but nobody says "
                             "what a student may do. Compare with Value conflict: there the student knows the role "
                             "but disagrees with what is expected.")
    first_case = next(s.case for s in sections if s.kind == NoteSection.Kind.CASE)
    Memo.objects.create(course=course, author=researcher1, case=first_case, title="First case of the course",
                        text="Set the tone for the group: the presenter chose a case about presence rather than "
                             "about medicine.")
    Memo.objects.create(course=course, author=researcher2, round=round, title="Disagreements in the first round",
                        text="I read several 'role' cases as value conflicts. We should sharpen the definitions "
                             "of the two triggers before the next round.")
    Memo.objects.create(course=course, author=researcher1, title="Saturation",
                        text="No new codes after the fourth session in either group; the study's codebook seems to "
                             "cover these cases.")
