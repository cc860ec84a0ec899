from django.urls import path

from .views import calendar, courses, dashboard, participants, people, scheduling

app_name = "sessions"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    # Courses and groups
    path("courses/new/", courses.course_new, name="course_new"),
    path("courses/<int:pk>/", courses.course_detail, name="course_detail"),
    path("courses/<int:pk>/edit/", courses.course_edit, name="course_edit"),
    path("courses/<int:pk>/groups/new/", courses.group_new, name="group_new"),
    path("courses/<int:pk>/audit/", courses.audit_log, name="audit_log"),
    path("groups/<int:pk>/", courses.group_detail, name="group_detail"),
    path("groups/<int:pk>/edit/", courses.group_edit, name="group_edit"),
    # People and roles (course admin)
    path("courses/<int:pk>/people/", people.people, name="people"),
    path("courses/<int:pk>/people/add/", people.person_add, name="person_add"),
    path("courses/<int:pk>/roles/<int:membership_pk>/remove/", people.role_remove, name="role_remove"),
    path("courses/<int:pk>/people/<int:user_pk>/roles/add/", people.role_add, name="role_add"),
    path("courses/<int:pk>/people/<int:user_pk>/deactivate/", people.person_deactivate, name="person_deactivate"),
    # Participants and consent
    path("groups/<int:pk>/participants/new/", participants.participant_new, name="participant_new"),
    path("participants/<int:pk>/", participants.participant_detail, name="participant_detail"),
    path("participants/<int:pk>/edit/", participants.participant_edit, name="participant_edit"),
    path("participants/<int:pk>/consent/", participants.consent_record, name="consent_record"),
    path("participants/<int:pk>/withdraw/", participants.consent_withdraw, name="consent_withdraw"),
    path("courses/<int:pk>/consent-forms/", participants.consent_forms, name="consent_forms"),
    path("courses/<int:pk>/consent-forms/new/", participants.consent_form_new, name="consent_form_new"),
    path("consent-forms/<int:pk>/", participants.consent_form_detail, name="consent_form_detail"),
    # Scheduling, attendance, cases
    path("groups/<int:pk>/sessions/new/", scheduling.meeting_new, name="meeting_new"),
    path("groups/<int:pk>/sessions/series/", scheduling.series_new, name="series_new"),
    path("sessions/<int:pk>/", scheduling.meeting_detail, name="meeting_detail"),
    path("sessions/<int:pk>/reschedule/", scheduling.meeting_reschedule, name="meeting_reschedule"),
    path("sessions/<int:pk>/cancel/", scheduling.meeting_cancel, name="meeting_cancel"),
    path("sessions/<int:pk>/attendance/", scheduling.attendance, name="attendance"),
    path("sessions/<int:pk>/cases/add/", scheduling.case_add, name="case_add"),
    path("cases/<int:pk>/edit/", scheduling.case_edit, name="case_edit"),
    path("cases/<int:pk>/delete/", scheduling.case_delete, name="case_delete"),
    # Calendars
    path("groups/<int:pk>/calendar.ics", calendar.group_ics, name="group_ics"),
    path("calendar/", calendar.calendar_settings, name="calendar_settings"),
    path("calendar/revoke/", calendar.calendar_revoke, name="calendar_revoke"),
    path("calendar/feed/<str:token>.ics", calendar.feed_ics, name="feed_ics"),
]
