"""Scheduling sessions (one-off, series), the overlap warning, rescheduling,
cancelling, the attendance register and case presentations."""

from datetime import date, time, timedelta

import pytest
from django.db.models import ProtectedError
from django.urls import reverse
from django.utils import timezone

from conftest import HELSINKI, helsinki
from fieldnotes.models import FieldNote
from sessions.models import Attendance, AuditEvent, CasePresentation, Meeting, Membership, Participant, Role
from sessions.services.scheduling import local_to_utc, series_create, series_dates, series_starts

pytestmark = pytest.mark.django_db


def make_meeting(group, starts_at, *, number=None, minutes=90, place="", status=Meeting.Status.SCHEDULED, **extra):
    if number is None:
        number = (group.meetings.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    return Meeting.objects.create(
        group=group, number=number, starts_at=starts_at, duration_minutes=minutes, place=place, status=status,
        **extra,
    )


def db_state():
    """Everything this slice writes, to show that a refused action changed nothing."""
    return (
        list(Meeting.objects.order_by("pk").values()),
        list(Attendance.objects.order_by("pk").values()),
        list(CasePresentation.objects.order_by("pk").values()),
        AuditEvent.objects.count(),
    )


def one_off(day="2026-10-13", at="17:00", minutes=90, place="Room 101", **extra):
    return {"date": day, "start_time": at, "duration_minutes": minutes, "place": place, **extra}


def series(first="2026-10-13", at="17:00", count=15, every=1, minutes=90, place="Room 101", skip="", **extra):
    return {
        "first_date": first, "start_time": at, "count": count, "every_weeks": every,
        "duration_minutes": minutes, "place": place, "skip_dates": skip, **extra,
    }


@pytest.fixture
def held(world):
    """A session held yesterday, with attendance (S1, S2 present) and a case."""
    meeting = make_meeting(world.group, timezone.now() - timedelta(days=1), place="Room 101",
                           status=Meeting.Status.HELD)
    s1, s2, s3 = world.participants
    Attendance.objects.create(meeting=meeting, participant=s1, present=True)
    Attendance.objects.create(meeting=meeting, participant=s2, present=True)
    Attendance.objects.create(meeting=meeting, participant=s3, present=False)
    CasePresentation.objects.create(meeting=meeting, presenter=s1, order=1, title="The silent patient")
    return meeting


@pytest.fixture
def upcoming(world):
    return make_meeting(world.group, timezone.now() + timedelta(days=7), place="Room 101")


# --- Local times and series dates -------------------------------------------


def test_series_dates_pass_over_skipped_dates_and_still_make_n():
    dates = series_dates(first_date=date(2026, 12, 1), count=4, every_weeks=1,
                         skip={date(2026, 12, 22), date(2026, 12, 29)})
    assert dates == [date(2026, 12, 1), date(2026, 12, 8), date(2026, 12, 15), date(2027, 1, 5)]


def test_series_starts_keep_the_local_time_across_the_dst_change():
    starts = series_starts(first_date=date(2026, 10, 13), at=time(17, 0), count=4, every_weeks=1, tz=HELSINKI)
    local = [s.astimezone(HELSINKI) for s in starts]
    assert [(d.date(), d.hour, d.minute) for d in local] == [
        (date(2026, 10, 13), 17, 0), (date(2026, 10, 20), 17, 0), (date(2026, 10, 27), 17, 0),
        (date(2026, 11, 3), 17, 0),
    ]
    assert [s.utcoffset() for s in starts] == [timedelta(0)] * 4  # stored in UTC
    assert [s.hour for s in starts] == [14, 14, 15, 15]  # EEST +3, then EET +2


def test_a_time_skipped_by_the_clocks_going_forward_is_refused():
    with pytest.raises(ValueError, match="does not exist"):
        local_to_utc(date(2026, 3, 29), time(3, 30), HELSINKI)


def test_series_create_service_makes_the_whole_series_in_one_go(world):
    starts = series_starts(first_date=date(2026, 10, 13), at=time(17, 0), count=3, every_weeks=2, tz=HELSINKI,
                           skip=[date(2026, 10, 27)])
    meetings = series_create(group=world.group, starts=starts, duration_minutes=90, place="Room 101",
                             actor=world.leader)
    assert [m.local_start().replace(tzinfo=None) for m in meetings] == [
        helsinki(2026, 10, 13, 17).replace(tzinfo=None),
        helsinki(2026, 11, 10, 17).replace(tzinfo=None),
        helsinki(2026, 11, 24, 17).replace(tzinfo=None),
    ]
    assert [m.number for m in meetings] == [1, 2, 3]
    event = AuditEvent.objects.get()
    assert event.action == "meeting.series_create" and len(event.changes["sessions"]) == 3


def test_a_series_at_a_time_the_clocks_skip_gets_a_clear_message(client, world):
    client.force_login(world.leader)
    response = client.post(reverse("sessions:series_new", args=[world.group.pk]),
                           series(first="2027-03-21", at="03:30", count=3))
    assert "clocks move forward" in response.content.decode()
    assert not Meeting.objects.exists()


# --- One-off sessions -------------------------------------------------------


def test_leader_schedules_a_one_off_session_numbered_after_the_existing_ones(client, world, upcoming):
    client.force_login(world.leader)
    response = client.post(reverse("sessions:meeting_new", args=[world.group.pk]), one_off(place="Seminar room 3"))
    meeting = Meeting.objects.get(group=world.group, number=2)
    assert response.status_code == 302
    assert response["Location"] == reverse("sessions:meeting_detail", args=[meeting.pk])
    assert meeting.starts_at == helsinki(2026, 10, 13, 17, 0)
    assert meeting.duration_minutes == 90 and meeting.place == "Seminar room 3"
    event = AuditEvent.objects.get(action="meeting.create")
    assert event.actor == world.leader and event.course == world.course and event.object_id == str(meeting.pk)


def test_course_admin_may_schedule_a_session(client, world):
    client.force_login(world.admin)
    response = client.post(reverse("sessions:meeting_new", args=[world.group.pk]), one_off())
    assert response.status_code == 302
    assert Meeting.objects.filter(group=world.group, number=1).exists()


def test_new_session_form_offers_the_groups_default_length_and_place(client, world):
    world.group.default_duration_minutes = 120
    world.group.save()
    client.force_login(world.leader)
    response = client.get(reverse("sessions:meeting_new", args=[world.group.pk]))
    assert response.status_code == 200
    assert response.context["form"]["duration_minutes"].value() == 120
    assert response.context["form"]["place"].value() == "Room 101"


def test_an_invalid_session_form_is_shown_again_and_saves_nothing(client, world):
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:meeting_new", args=[world.group.pk]),
                           one_off(day="2026-13-40", minutes=0))
    assert response.status_code == 200
    assert response.context["form"].errors.keys() == {"date", "duration_minutes"}
    assert db_state() == before


# --- Series -----------------------------------------------------------------


def test_leader_schedules_a_weekly_series_across_the_dst_change(client, world):
    client.force_login(world.leader)
    response = client.post(reverse("sessions:series_new", args=[world.group.pk]), series(count=15))
    assert response.status_code == 302
    assert response["Location"] == reverse("sessions:group_detail", args=[world.group.pk])
    meetings = list(world.group.meetings.order_by("starts_at"))
    assert [m.number for m in meetings] == list(range(1, 16))
    local = [m.local_start() for m in meetings]
    assert {(d.hour, d.minute) for d in local} == {(17, 0)}
    assert [d.weekday() for d in local] == [1] * 15  # every Tuesday
    assert local[0].date() == date(2026, 10, 13) and local[-1].date() == date(2027, 1, 19)
    before_change = [d for d in local if d.date() < date(2026, 10, 25)]
    after_change = [d for d in local if d.date() > date(2026, 10, 25)]
    assert {d.utcoffset() for d in before_change} == {timedelta(hours=3)}
    assert {d.utcoffset() for d in after_change} == {timedelta(hours=2)}
    assert {m.duration_minutes for m in meetings} == {90} and {m.place for m in meetings} == {"Room 101"}


def test_a_series_passes_over_skip_dates_and_still_makes_all_its_sessions(client, world):
    client.force_login(world.leader)
    client.post(reverse("sessions:series_new", args=[world.group.pk]),
                series(first="2026-12-01", count=5, skip="2026-12-22, 2026-12-29\n2027-01-05"))
    days = [m.local_start().date() for m in world.group.meetings.order_by("starts_at")]
    assert days == [date(2026, 12, 1), date(2026, 12, 8), date(2026, 12, 15), date(2027, 1, 12), date(2027, 1, 19)]


def test_a_series_every_two_weeks(client, world):
    client.force_login(world.leader)
    client.post(reverse("sessions:series_new", args=[world.group.pk]), series(count=3, every=2))
    days = [m.local_start().date() for m in world.group.meetings.order_by("starts_at")]
    assert days == [date(2026, 10, 13), date(2026, 10, 27), date(2026, 11, 10)]


def test_a_bad_skip_date_gets_a_clear_message_and_nothing_is_saved(client, world):
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:series_new", args=[world.group.pk]),
                           series(skip="2026-12-22\n22.12.2026"))
    assert response.status_code == 200
    [message] = response.context["form"].errors["skip_dates"]
    assert "“22.12.2026” is not a date" in message and "YYYY-MM-DD" in message
    assert db_state() == before


def test_series_numbers_continue_after_the_groups_sessions_and_one_audit_event(client, world, upcoming):
    client.force_login(world.leader)
    client.post(reverse("sessions:series_new", args=[world.group.pk]), series(first="2027-02-02", count=3))
    assert sorted(world.group.meetings.values_list("number", flat=True)) == [1, 2, 3, 4]
    event = AuditEvent.objects.get(action="meeting.series_create")
    assert len(event.changes["sessions"]) == 3
    assert AuditEvent.objects.count() == 1


def test_series_form_defaults_to_15_weekly_sessions(client, world):
    client.force_login(world.leader)
    form = client.get(reverse("sessions:series_new", args=[world.group.pk])).context["form"]
    assert (form["count"].value(), form["every_weeks"].value(), form["duration_minutes"].value()) == (15, 1, 90)


# --- Overlap warning --------------------------------------------------------


def test_same_leader_in_another_group_gets_a_warning_and_nothing_is_saved(client, world):
    Membership.objects.create(user=world.leader, course=world.course, group=world.other_group, role=Role.LEADER)
    make_meeting(world.other_group, helsinki(2026, 10, 13, 18, 0), place="Room 102")
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:meeting_new", args=[world.group.pk]), one_off())
    assert response.status_code == 200
    [row] = response.context["clashes"]
    [item] = row["items"]
    assert item["reasons"] == "same leader"
    assert "Group B · session 1" in item["label"] and "18:00–19:30" in item["label"]
    assert "Schedule anyway" in response.content.decode()
    assert db_state() == before


def test_schedule_anyway_saves_despite_the_clash(client, world):
    Membership.objects.create(user=world.leader, course=world.course, group=world.other_group, role=Role.LEADER)
    make_meeting(world.other_group, helsinki(2026, 10, 13, 18, 0))
    client.force_login(world.leader)
    response = client.post(reverse("sessions:meeting_new", args=[world.group.pk]), one_off(schedule_anyway="on"))
    assert response.status_code == 302
    assert world.group.meetings.count() == 1


def test_same_place_is_a_clash_whatever_the_letter_case(client, world):
    make_meeting(world.other_group, helsinki(2026, 10, 13, 16, 0), place="ROOM 101")  # 16:00–17:30
    client.force_login(world.leader)
    response = client.post(reverse("sessions:meeting_new", args=[world.group.pk]), one_off(place="room  101"))
    assert response.status_code == 200
    assert response.context["clashes"][0]["items"][0]["reasons"] == "same place"


def test_no_clash_with_a_cancelled_session_back_to_back_ones_or_an_empty_place(client, world):
    make_meeting(world.other_group, helsinki(2026, 10, 13, 17, 0), place="Room 101",
                 status=Meeting.Status.CANCELLED, cancel_reason="Strike")
    make_meeting(world.other_group, helsinki(2026, 10, 13, 15, 30), place="Room 101")  # ends 17:00
    make_meeting(world.other_group, helsinki(2026, 10, 13, 17, 0), place="")
    client.force_login(world.leader)
    response = client.post(reverse("sessions:meeting_new", args=[world.group.pk]), one_off())
    assert response.status_code == 302


def test_a_place_in_another_course_is_not_a_clash(client, world):
    make_meeting(world.group2, helsinki(2026, 10, 13, 17, 0), place="Room 101")
    client.force_login(world.leader)
    response = client.post(reverse("sessions:meeting_new", args=[world.group.pk]), one_off())
    assert response.status_code == 302


def test_a_clash_in_a_group_the_user_cannot_see_is_described_without_details(client, world):
    # The leader also leads a group in another course; an admin of this course
    # is warned of the double booking but not told about the other course.
    Membership.objects.create(user=world.leader, course=world.course2, group=world.group2, role=Role.LEADER)
    make_meeting(world.group2, helsinki(2026, 10, 13, 17, 30), place="Secret room")
    client.force_login(world.admin)
    response = client.post(reverse("sessions:meeting_new", args=[world.group.pk]), one_off())
    html = response.content.decode()
    assert response.status_code == 200
    assert "A session of another group" in html
    assert "Group Z" not in html and "Secret room" not in html


def test_series_clashes_are_listed_per_date(client, world):
    make_meeting(world.other_group, helsinki(2026, 10, 20, 17, 0), place="Room 101")
    make_meeting(world.other_group, helsinki(2026, 11, 3, 18, 0), place="room 101")
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:series_new", args=[world.group.pk]), series(count=5))
    assert response.status_code == 200
    assert [row["when"].date() for row in response.context["clashes"]] == [date(2026, 10, 20), date(2026, 11, 3)]
    assert db_state() == before
    response = client.post(reverse("sessions:series_new", args=[world.group.pk]),
                           series(count=5, schedule_anyway="on"))
    assert response.status_code == 302
    assert world.group.meetings.count() == 5


# --- Session page -----------------------------------------------------------


@pytest.mark.parametrize("who", ["admin", "researcher1", "leader", "coleader1"])
def test_everyone_in_the_group_sees_the_session_page(client, world, held, who):
    client.force_login(getattr(world, who))
    response = client.get(reverse("sessions:meeting_detail", args=[held.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert f"session {held.number}" in html
    assert held.local_start().strftime("%H:%M") in html
    assert "The silent patient" in html and "Presented by S1" in html
    assert "2</strong> present, 1 absent" in html


@pytest.mark.parametrize("who, sees_names", [
    ("admin", True), ("leader", True), ("researcher1", False), ("coleader1", False),
])
def test_real_names_only_for_the_admin_and_the_leader(client, world, held, who, sees_names):
    client.force_login(getattr(world, who))
    html = client.get(reverse("sessions:meeting_detail", args=[held.pk])).content.decode()
    assert ("Aino Virtanen" in html) is sees_names
    assert ("Eero Korhonen" in html) is sees_names


@pytest.mark.parametrize("who, sees_buttons", [
    ("admin", True), ("leader", True), ("researcher1", False), ("coleader1", False),
])
def test_only_the_leader_and_admin_get_the_action_buttons(client, world, upcoming, who, sees_buttons):
    client.force_login(getattr(world, who))
    html = client.get(reverse("sessions:meeting_detail", args=[upcoming.pk])).content.decode()
    assert (reverse("sessions:meeting_reschedule", args=[upcoming.pk]) in html) is sees_buttons
    assert (reverse("sessions:meeting_cancel", args=[upcoming.pk]) in html) is sees_buttons


def test_session_page_shows_a_cancelled_session_and_its_reason(client, world):
    meeting = make_meeting(world.group, helsinki(2026, 10, 13, 17), status=Meeting.Status.CANCELLED,
                           cancel_reason="Exam week")
    client.force_login(world.coleader1)
    html = client.get(reverse("sessions:meeting_detail", args=[meeting.pk])).content.decode()
    assert "Cancelled" in html and "Exam week" in html


def test_session_page_query_count_does_not_grow_with_participants(client, world, held, django_assert_num_queries):
    client.force_login(world.leader)
    url = reverse("sessions:meeting_detail", args=[held.pk])
    # session, user, memberships, meeting, attendance, participant count, cases, schedule, notes, readable notes
    with django_assert_num_queries(10):
        assert client.get(url).status_code == 200
    for author in (world.coleader1, world.coleader2):
        FieldNote.objects.create(meeting=held, author=author, status="submitted", submitted_at=timezone.now())
    for i in range(4, 10):
        participant = Participant.objects.create(course=world.course, group=world.group, pseudonym=f"S{i}",
                                                 name=f"Student {i}")
        Attendance.objects.create(meeting=held, participant=participant, present=True)
        CasePresentation.objects.create(meeting=held, presenter=participant, order=i, title=f"Case {i}")
        make_meeting(world.group, timezone.now() + timedelta(days=i))
    with django_assert_num_queries(10):
        assert client.get(url).status_code == 200


# --- Rescheduling -----------------------------------------------------------


def test_leader_reschedules_a_session_with_before_and_after_in_the_audit_log(client, world, upcoming):
    client.force_login(world.leader)
    old_start = upcoming.starts_at
    response = client.post(reverse("sessions:meeting_reschedule", args=[upcoming.pk]),
                           one_off(day="2026-12-03", at="09:15", minutes=60, place="Room 7"))
    assert response.status_code == 302
    upcoming.refresh_from_db()
    assert upcoming.starts_at == helsinki(2026, 12, 3, 9, 15)
    assert (upcoming.duration_minutes, upcoming.place) == (60, "Room 7")
    event = AuditEvent.objects.get(action="meeting.reschedule")
    assert event.changes["starts_at"] == [str(old_start), str(upcoming.starts_at)]
    assert event.changes["duration_minutes"] == [90, 60]
    assert event.changes["place"] == ["Room 101", "Room 7"]


def test_reschedule_form_starts_from_the_sessions_local_time(client, world):
    meeting = make_meeting(world.group, helsinki(2026, 11, 3, 17, 0))
    client.force_login(world.leader)
    response = client.get(reverse("sessions:meeting_reschedule", args=[meeting.pk]))
    form = response.context["form"]
    assert form["date"].value() == date(2026, 11, 3) and form["start_time"].value() == time(17, 0)
    # Browsers' date and time inputs only take ISO values.
    html = response.content.decode()
    assert 'value="2026-11-03"' in html and 'value="17:00"' in html


def test_a_session_does_not_clash_with_itself_when_rescheduled(client, world):
    meeting = make_meeting(world.group, helsinki(2026, 10, 13, 17, 0), place="Room 101")
    client.force_login(world.leader)
    response = client.post(reverse("sessions:meeting_reschedule", args=[meeting.pk]), one_off(at="17:30"))
    assert response.status_code == 302


def test_rescheduling_onto_a_clash_warns(client, world, upcoming):
    make_meeting(world.group, helsinki(2026, 12, 3, 9, 0))
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:meeting_reschedule", args=[upcoming.pk]),
                           one_off(day="2026-12-03", at="10:00", place=""))
    assert response.status_code == 200
    assert response.context["clashes"][0]["items"][0]["reasons"] == "same group"
    assert db_state() == before


def test_a_cancelled_session_cannot_be_rescheduled(client, world):
    meeting = make_meeting(world.group, helsinki(2026, 12, 3, 9), status=Meeting.Status.CANCELLED,
                           cancel_reason="Holiday")
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:meeting_reschedule", args=[meeting.pk]), one_off(), follow=True)
    assert "cannot be rescheduled" in response.content.decode()
    assert db_state() == before


# --- Cancelling -------------------------------------------------------------


def test_leader_cancels_a_session_with_a_reason(client, world, upcoming):
    client.force_login(world.leader)
    assert client.get(reverse("sessions:meeting_cancel", args=[upcoming.pk])).status_code == 200
    response = client.post(reverse("sessions:meeting_cancel", args=[upcoming.pk]), {"reason": "Exam week"})
    assert response.status_code == 302
    upcoming.refresh_from_db()
    assert (upcoming.status, upcoming.cancel_reason) == (Meeting.Status.CANCELLED, "Exam week")
    event = AuditEvent.objects.get(action="meeting.cancel")
    assert event.changes["status"] == ["scheduled", "cancelled"]


def test_cancelling_needs_a_reason(client, world, upcoming):
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:meeting_cancel", args=[upcoming.pk]), {"reason": "   "})
    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    assert db_state() == before


def test_a_held_session_cannot_be_cancelled(client, world, held):
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:meeting_cancel", args=[held.pk]), {"reason": "Oops"}, follow=True)
    assert "cannot be cancelled" in response.content.decode()
    assert db_state() == before


# --- Attendance -------------------------------------------------------------


def test_leader_takes_attendance_and_the_session_is_held(client, world):
    meeting = make_meeting(world.group, timezone.now() - timedelta(minutes=5))
    s1, s2, s3 = world.participants
    client.force_login(world.leader)
    response = client.get(reverse("sessions:attendance", args=[meeting.pk]))
    assert response.status_code == 200 and "Aino Virtanen" in response.content.decode()
    response = client.post(reverse("sessions:attendance", args=[meeting.pk]), {"present": [s1.pk, s3.pk]})
    assert response.status_code == 302
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.HELD
    assert dict(meeting.attendance.values_list("participant__pseudonym", "present")) == {
        "S1": True, "S2": False, "S3": True,
    }
    event = AuditEvent.objects.get(action="attendance.record")
    assert event.changes["status"] == ["scheduled", "held"]


def test_saving_attendance_again_corrects_it(client, world, held):
    s1, s2, s3 = world.participants
    client.force_login(world.admin)
    client.post(reverse("sessions:attendance", args=[held.pk]), {"present": [s3.pk]})
    assert dict(held.attendance.values_list("participant__pseudonym", "present")) == {
        "S1": False, "S2": False, "S3": True,
    }
    assert held.attendance.count() == 3


def test_a_register_with_nobody_present_is_saved(client, world):
    meeting = make_meeting(world.group, timezone.now())
    client.force_login(world.leader)
    assert client.post(reverse("sessions:attendance", args=[meeting.pk])).status_code == 302
    assert list(meeting.attendance.values_list("present", flat=True)) == [False, False, False]


def test_the_register_shows_what_was_recorded(client, world, held):
    client.force_login(world.leader)
    rows = client.get(reverse("sessions:attendance", args=[held.pk])).context["rows"]
    assert [(r["participant"].pseudonym, r["present"]) for r in rows] == [("S1", True), ("S2", True), ("S3", False)]


def test_attendance_for_a_cancelled_session_is_refused(client, world):
    meeting = make_meeting(world.group, timezone.now() - timedelta(hours=1), status=Meeting.Status.CANCELLED,
                           cancel_reason="Snow")
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:attendance", args=[meeting.pk]),
                           {"present": [world.participants[0].pk]}, follow=True)
    assert "was cancelled" in response.content.decode()
    assert db_state() == before


def test_attendance_more_than_30_minutes_before_the_start_is_refused(client, world):
    meeting = make_meeting(world.group, timezone.now() + timedelta(minutes=31))
    client.force_login(world.leader)
    before = db_state()
    response = client.get(reverse("sessions:attendance", args=[meeting.pk]))
    assert response.status_code == 302
    response = client.post(reverse("sessions:attendance", args=[meeting.pk]),
                           {"present": [world.participants[0].pk]}, follow=True)
    assert "from 30 minutes before" in response.content.decode()
    assert db_state() == before


def test_attendance_opens_30_minutes_before_the_start(client, world):
    meeting = make_meeting(world.group, timezone.now() + timedelta(minutes=29))
    client.force_login(world.leader)
    assert client.get(reverse("sessions:attendance", args=[meeting.pk])).status_code == 200


def test_a_participant_of_another_group_cannot_be_marked_present(client, world, upcoming):
    meeting = make_meeting(world.group, timezone.now())
    stranger = Participant.objects.create(course=world.course, group=world.other_group, pseudonym="S9", name="X")
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:attendance", args=[meeting.pk]), {"present": [stranger.pk]})
    assert response.status_code == 200 and response.context["form"].errors
    assert db_state() == before


def test_attendance_query_count_does_not_grow_with_participants(client, world, held, django_assert_num_queries):
    client.force_login(world.leader)
    url = reverse("sessions:attendance", args=[held.pk])
    with django_assert_num_queries(6):
        assert client.get(url).status_code == 200
    for i in range(4, 10):
        Participant.objects.create(course=world.course, group=world.group, pseudonym=f"S{i}", name=f"Student {i}")
    with django_assert_num_queries(6):
        assert client.get(url).status_code == 200


def test_saving_attendance_takes_a_fixed_number_of_queries(client, world, django_assert_num_queries):
    client.force_login(world.leader)
    for i in range(4, 10):
        Participant.objects.create(course=world.course, group=world.group, pseudonym=f"S{i}", name=f"Student {i}")
    meeting = make_meeting(world.group, timezone.now())
    everyone = list(world.group.participants.values_list("pk", flat=True))
    url = reverse("sessions:attendance", args=[meeting.pk])
    # 11, and one to find the session's note sections whose research decision
    # attendance can change (none yet: no notes).
    with django_assert_num_queries(12):
        assert client.post(url, {"present": everyone[:5]}).status_code == 302
    assert meeting.attendance.count() == 9


# --- Case presentations -----------------------------------------------------


def test_leader_adds_a_case_choosing_among_those_present(client, world, held):
    s1, s2, s3 = world.participants
    client.force_login(world.leader)
    response = client.get(reverse("sessions:case_add", args=[held.pk]))
    form = response.context["form"]
    assert list(form.fields["presenter"].queryset) == [s1, s2]  # S3 was absent
    assert form["order"].value() == 2
    assert "S2 – Eero Korhonen" in response.content.decode()
    response = client.post(reverse("sessions:case_add", args=[held.pk]),
                           {"presenter": s2.pk, "order": 2, "title": "A  difficult  consultant"})
    assert response.status_code == 302
    case = held.cases.get(order=2)
    assert (case.presenter, case.title) == (s2, "A difficult consultant")
    assert AuditEvent.objects.filter(action="case.add", object_id=str(case.pk)).exists()


def test_before_attendance_every_participant_can_present(client, world):
    meeting = make_meeting(world.group, timezone.now() - timedelta(minutes=10))
    client.force_login(world.leader)
    form = client.get(reverse("sessions:case_add", args=[meeting.pk])).context["form"]
    assert list(form.fields["presenter"].queryset) == world.participants


def test_an_absent_participant_cannot_be_the_presenter(client, world, held):
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:case_add", args=[held.pk]),
                           {"presenter": world.participants[2].pk, "order": 2, "title": "X"})
    assert response.status_code == 200 and "presenter" in response.context["form"].errors
    assert db_state() == before


def test_two_cases_cannot_share_a_place_in_the_order(client, world, held):
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:case_add", args=[held.pk]),
                           {"presenter": world.participants[1].pk, "order": 1, "title": "Another"})
    assert response.status_code == 200 and "order" in response.context["form"].errors
    assert db_state() == before


def test_cases_cannot_be_added_before_the_session_starts(client, world, upcoming):
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:case_add", args=[upcoming.pk]),
                           {"presenter": world.participants[0].pk, "order": 1, "title": "Too early"}, follow=True)
    assert "once the session has started" in response.content.decode()
    assert db_state() == before


def test_leader_edits_a_case_and_the_change_is_audited(client, world, held):
    case = held.cases.get()
    client.force_login(world.leader)
    form = client.get(reverse("sessions:case_edit", args=[case.pk])).context["form"]
    assert form["title"].value() == "The silent patient"
    response = client.post(reverse("sessions:case_edit", args=[case.pk]),
                           {"presenter": world.participants[1].pk, "order": 1, "title": "The quiet patient"})
    assert response.status_code == 302
    case.refresh_from_db()
    assert (case.presenter, case.title) == (world.participants[1], "The quiet patient")
    event = AuditEvent.objects.get(action="case.edit")
    assert event.changes["title"] == ["The silent patient", "The quiet patient"]
    assert event.changes["presenter"] == [str(world.participants[0].pk), str(world.participants[1].pk)]


def test_leader_deletes_a_case_after_confirming(client, world, held):
    case = held.cases.get()
    client.force_login(world.leader)
    response = client.get(reverse("sessions:case_delete", args=[case.pk]))
    assert response.status_code == 200 and "Delete case 1?" in response.content.decode()
    assert CasePresentation.objects.filter(pk=case.pk).exists()
    response = client.post(reverse("sessions:case_delete", args=[case.pk]))
    assert response.status_code == 302
    assert not CasePresentation.objects.filter(pk=case.pk).exists()
    assert AuditEvent.objects.get(action="case.delete").object_id == str(case.pk)


# --- Who may do what --------------------------------------------------------

# (url name, object the URL is about, methods, leader-only?)
ROUTES = [
    ("sessions:meeting_new", "group", ["GET", "POST"], True),
    ("sessions:series_new", "group", ["GET", "POST"], True),
    ("sessions:meeting_detail", "upcoming", ["GET"], False),
    ("sessions:meeting_reschedule", "upcoming", ["GET", "POST"], True),
    ("sessions:meeting_cancel", "upcoming", ["GET", "POST"], True),
    ("sessions:attendance", "held", ["GET", "POST"], True),
    ("sessions:case_add", "held", ["GET", "POST"], True),
    ("sessions:case_edit", "case", ["GET", "POST"], True),
    ("sessions:case_delete", "case", ["GET", "POST"], True),
]
ROUTE_IDS = [name.split(":")[1] for name, *_ in ROUTES]


def route_url(name, about, world, held, upcoming):
    obj = {"group": world.group, "upcoming": upcoming, "held": held, "case": held.cases.first()}[about]
    return reverse(name, args=[obj.pk])


@pytest.mark.parametrize("name, about, methods, leader_only", ROUTES, ids=ROUTE_IDS)
def test_anonymous_is_sent_to_log_in(client, world, held, upcoming, name, about, methods, leader_only):
    url = route_url(name, about, world, held, upcoming)
    before = db_state()
    for method in methods:
        response = getattr(client, method.lower())(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), method
    assert db_state() == before


@pytest.mark.parametrize("who", ["outsider", "leader2", "admin2"])
@pytest.mark.parametrize("name, about, methods, leader_only", ROUTES, ids=ROUTE_IDS)
def test_outsiders_get_404(client, world, held, upcoming, name, about, methods, leader_only, who):
    url = route_url(name, about, world, held, upcoming)
    client.force_login(getattr(world, who))
    before = db_state()
    for method in methods:
        assert getattr(client, method.lower())(url, {"reason": "x", "present": []}).status_code == 404, method
    assert db_state() == before


@pytest.mark.parametrize("who", ["coleader1", "researcher1", "other_leader"])
@pytest.mark.parametrize(
    "name, about, methods, leader_only", [r for r in ROUTES if r[3]], ids=[i for i, r in zip(ROUTE_IDS, ROUTES) if r[3]]
)
def test_coleaders_researchers_and_other_leaders_get_404_on_leader_actions(
    client, world, held, upcoming, name, about, methods, leader_only, who
):
    url = route_url(name, about, world, held, upcoming)
    client.force_login(getattr(world, who))
    before = db_state()
    for method in methods:
        assert getattr(client, method.lower())(url, {"reason": "x"}).status_code == 404, method
    assert db_state() == before


@pytest.mark.parametrize("name, about, methods, leader_only", ROUTES, ids=ROUTE_IDS)
def test_other_methods_are_refused_with_405(client, world, held, upcoming, name, about, methods, leader_only):
    url = route_url(name, about, world, held, upcoming)
    client.force_login(world.leader)
    before = db_state()
    for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - set(methods):
        assert getattr(client, method.lower())(url).status_code == 405, method
    assert db_state() == before


def test_a_case_that_field_notes_refer_to_is_not_deleted(client, world, held, monkeypatch):
    # Field note sections protect their case (on_delete=PROTECT); simulate one
    # here rather than write a whole note.
    case = held.cases.get()

    def protected(self, *args, **kwargs):
        raise ProtectedError("referenced by a note section", {self})

    monkeypatch.setattr(CasePresentation, "delete", protected)
    client.force_login(world.leader)
    before = db_state()
    response = client.post(reverse("sessions:case_delete", args=[case.pk]), follow=True)
    assert "field notes have a section about it" in response.content.decode()
    assert db_state() == before
