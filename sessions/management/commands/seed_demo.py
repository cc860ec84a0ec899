"""Load the demo course, modelled on the study: two groups, 9 students, 15 sessions each.

Every held session gets both co-leaders' submitted field notes, except the
latest held session of the Tuesday group: there coleader1 has a draft and
coleader2 has not started (the prose is in fieldnotes/demo.py).

Idempotent: when the demo course exists, nothing changes. Demo users exist only
because someone ran this; it refuses to run with DEBUG off unless told
`--allow-production`.
"""

from datetime import time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from analysis.demo import seed_coding
from fieldnotes.demo import seed_field_notes
from sessions.models import Course, Group, Role
from sessions.services import consent as consent_services
from sessions.services import courses as course_services
from sessions.services import people as people_services
from sessions.services import scheduling

DEMO_COURSE = "Student Balint groups (demo)"

USERS = [
    # username, first name, last name
    ("admin", "Anna", "Admin"),
    ("leader", "Leena", "Lehtonen"),
    ("coleader1", "Pekka", "Saarinen"),
    ("coleader2", "Riikka", "Heikkinen"),
    ("researcher1", "Tuomas", "Laine"),
    ("researcher2", "Sanna", "Koskinen"),
]

# (group, weekday of its sessions: 1 = Tuesday, 3 = Thursday)
GROUPS = [("Tuesday group", 1, "Seminar room 2, Meilahti"), ("Thursday group", 3, "Seminar room 5, Meilahti")]

STUDENTS = [
    # pseudonym, name, study year, group index
    ("S1", "Aino Virtanen", 3, 0),
    ("S2", "Eero Korhonen", 4, 0),
    ("S3", "Helmi Mäkinen", 5, 0),
    ("S4", "Ville Nieminen", 6, 0),
    ("S5", "Sofia Hämäläinen", 3, 0),
    ("S6", "Oskari Järvinen", 4, 1),
    ("S7", "Ella Lindholm", 5, 1),
    ("S8", "Juho Räsänen", 3, 1),
    ("S9", "Iida Kallio", 6, 1),
]

CASE_TITLES = [
    "A dying patient's family on the ward",
    "The consultant who mocked a patient on the round",
    "A friend asked me for a prescription",
    "A patient who reminded me of my grandfather",
    "Left alone with a crying patient on call",
    "An elderly patient who refused treatment",
    "Unsure whether to mention a resident's mistake",
    "A drug-seeking patient at the health centre",
    "Examining a patient my own age",
    "Told to just watch while bad news was given",
    "A neighbour asking about her test results",
    "A psychiatric patient who frightened me",
    "Feeling useless beside an incurable cancer patient",
    "Two specialists, two opposite instructions",
    "A nurse who corrected me in front of the patient",
]

CONSENT_TEXT = (
    "I agree that the co-leaders of my Balint group write field notes after each session, and that "
    "researchers of this course may analyse those notes. I am named only by a pseudonym in research "
    "material. Participation in the research is voluntary: I may withdraw my consent at any time, "
    "either for future sessions only or also for my past data, without any effect on my studies."
)


class Command(BaseCommand):
    help = "Create the demo course, its people, its sessions and their field notes (once)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--allow-production", action="store_true", help="Create demo users even though DEBUG is off."
        )

    def handle(self, *args, allow_production=False, **options):
        if not settings.DEBUG and not allow_production:
            raise CommandError(
                "Refusing to create demo users with DJANGO_DEBUG off. Pass --allow-production if you mean it."
            )
        if Course.objects.filter(name=DEMO_COURSE).exists():
            self.stdout.write("The demo course is already there; nothing changed.")
        else:
            with transaction.atomic():
                self._create()
            self.stdout.write(self.style.SUCCESS(f"Created “{DEMO_COURSE}”."))
        self._print_logins()

    def _print_logins(self):
        names = ", ".join(["superuser"] + [u for u, *_ in USERS])
        self.stdout.write(f"Demo logins: {names}; password: {settings.DEMO_PASSWORD}")

    def _create(self):
        User = get_user_model()
        users = {}
        for username, first, last in USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={"first_name": first, "last_name": last, "email": f"{username}@demo.example.org"},
            )
            if created:
                user.set_password(settings.DEMO_PASSWORD)
                user.save()
            users[username] = user
        root, created = User.objects.get_or_create(
            username="superuser", defaults={"is_superuser": True, "is_staff": True, "email": "root@demo.example.org"}
        )
        if created:
            root.set_password(settings.DEMO_PASSWORD)
            root.save()
        admin = users["admin"]

        # The course runs about twelve weeks back and on from today, so about
        # half of its sessions have been held whenever the demo is loaded.
        today = timezone.localdate()
        monday = today - timedelta(days=today.weekday()) - timedelta(weeks=12)
        course = course_services.course_create(
            course=Course(
                name=DEMO_COURSE,
                institution="University of Helsinki, Faculty of Medicine",
                starts_on=monday,
                ends_on=monday + timedelta(weeks=30),
                time_zone="Europe/Helsinki",
                description="A demo course modelled on the student Balint groups of 2002–04: "
                "volunteer 3rd–6th year students, one trained leader and two co-leaders, "
                "15 sessions of 90 minutes every other week.",
            ),
            created_by=admin,
        )
        for username in ("researcher1", "researcher2"):
            people_services.role_add(course=course, user=users[username], role=Role.RESEARCHER, group=None, actor=admin)

        form = consent_services.consent_form_create(
            course=course,
            title="Consent to research use of field notes",
            text=CONSENT_TEXT,
            effective_date=monday - timedelta(days=14),
            actor=admin,
        )

        groups = []
        for name, weekday, place in GROUPS:
            group = course_services.group_save(
                group=Group(course=course, name=name, default_place=place), before=None, saved_by=admin
            )
            groups.append(group)
            people_services.role_add(course=course, user=users["leader"], role=Role.LEADER, group=group, actor=admin)
            for username in ("coleader1", "coleader2"):
                people_services.role_add(course=course, user=users[username], role=Role.COLEADER, group=group, actor=admin)
            scheduling.series_create(
                group=group,
                starts=scheduling.series_starts(
                    first_date=monday + timedelta(days=weekday), at=time(16, 15), count=15, every_weeks=2, tz=course.tz
                ),
                duration_minutes=90,
                place=place,
                actor=users["leader"],
            )

        participants = [[], []]
        for pseudonym, name, year, group_index in STUDENTS:
            participant = consent_services.participant_create(
                group=groups[group_index],
                pseudonym=pseudonym,
                name=name,
                email=f"{name.split()[0].lower()}@students.example.org",
                study_year=year,
                actor=users["leader"],
            )
            first_session = groups[group_index].meetings.order_by("starts_at").first()
            consent_services.consent_record(
                participant=participant,
                form=form,
                decision="given",
                decided_at=first_session.starts_at - timedelta(minutes=10),
                method="paper",
                actor=users["leader"],
            )
            participants[group_index].append(participant)

        self._hold_past_sessions(groups, participants, users["leader"])
        seed_field_notes(groups=groups, coleaders=(users["coleader1"], users["coleader2"]), draft_group=groups[0])
        seed_coding(course=course, researcher1=users["researcher1"], researcher2=users["researcher2"])

    def _hold_past_sessions(self, groups, participants, leader):
        titles = iter(CASE_TITLES * 3)
        now = timezone.now()
        for group, members in zip(groups, participants, strict=True):
            for meeting in group.meetings.filter(starts_at__lt=now).order_by("starts_at"):
                # Someone is away now and then, never the same pattern twice running.
                present = {p.pk for i, p in enumerate(members) if (meeting.number + i) % 6 != 0}
                scheduling.attendance_record(meeting=meeting, participants=members, present_ids=present, actor=leader)
                attendees = [p for p in members if p.pk in present]
                for order in range(1, 1 + 1 + meeting.number % 2):
                    presenter = attendees[(meeting.number + order) % len(attendees)]
                    scheduling.case_add(meeting=meeting, presenter=presenter, order=order, title=next(titles), actor=leader)
