"""The identifier check as a submission runs it (services.unconfirmed_identifiers):
the course's participants' names, in a bounded number of queries."""

import pytest

from fieldnotes import services
from sessions.models import Participant

pytestmark = pytest.mark.django_db


def write(note, kind, text, actor):
    section = note.sections.get(kind=kind)
    services.note_save(note=note, base_version=note.version, texts={section.pk: text}, actor=actor)
    note.refresh_from_db()
    return section


def add_students(world, count):
    Participant.objects.bulk_create(
        Participant(course=world.course, group=world.other_group, pseudonym=f"S{100 + i}",
                    name=f"Student{i:04d} Surname{i:04d}")
        for i in range(count)
    )


def test_the_check_runs_the_same_few_queries_for_three_or_three_hundred_participants(
    world, held, django_assert_num_queries
):
    note = services.note_open(meeting=held, author=world.coleader1)
    write(note, "case", "Helmi Mäkinen told us; mail x@example.fi.", world.coleader1)
    # The note as a view has it: its meeting and group loaded with it.
    note = type(note).objects.select_related("meeting__group").get(pk=note.pk)

    with django_assert_num_queries(3):  # participants, confirmations, sections
        few = services.unconfirmed_identifiers(note)

    add_students(world, 300)
    with django_assert_num_queries(3):
        many = services.unconfirmed_identifiers(note)

    assert few == many
    [(section_id, findings)] = many.items()
    assert [(f.kind, f.text, f.suggestion) for f in findings] == [
        ("name", "Helmi Mäkinen", "S3"), ("email", "x@example.fi", ""),
    ]


def test_among_many_participants_the_one_named_is_found_in_every_section(world, held):
    add_students(world, 300)
    note = services.note_open(meeting=held, author=world.coleader1)
    case = write(note, "case", "Later student0123 spoke with Aino.", world.coleader1)
    discussion = write(note, "discussion", "STUDENT0299 SURNAME0299 disagreed.", world.coleader1)

    found = services.unconfirmed_identifiers(note)

    assert [(f.start, f.end, f.text, f.suggestion, f.message) for f in found[case.pk]] == [
        (6, 17, "student0123", "S223", "Matches the name of S223"),
        (29, 33, "Aino", "S1", "Matches the name of S1"),
    ]
    assert [(f.text, f.suggestion) for f in found[discussion.pk]] == [("STUDENT0299 SURNAME0299", "S399")]


def test_a_participant_added_or_renamed_after_a_check_is_found_by_the_next(world, held):
    note = services.note_open(meeting=held, author=world.coleader1)
    case = write(note, "case", "Then Kaarina spoke.", world.coleader1)
    assert services.unconfirmed_identifiers(note) == {}

    student = Participant.objects.create(course=world.course, group=world.group, pseudonym="S4", name="Kaarina Oja")
    [finding] = services.unconfirmed_identifiers(note)[case.pk]
    assert (finding.text, finding.suggestion) == ("Kaarina", "S4")

    student.name = "Kerttu Oja"
    student.save()
    assert services.unconfirmed_identifiers(note) == {}


def test_participants_of_another_course_are_not_looked_for(world, held):
    note = services.note_open(meeting=held, author=world.coleader1)
    write(note, "case", "Outi Ulkopuolinen is in the other course.", world.coleader1)

    assert services.unconfirmed_identifiers(note) == {}
