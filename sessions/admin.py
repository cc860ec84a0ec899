"""Django admin for superusers: every model of the app, with its safeguards.

Participants are listed by pseudonym; consent records and the audit trail can
be read here but not changed, because the app's services are what audit and
freeze them.
"""

from django.contrib import admin

from .models import (
    Attendance,
    AuditEvent,
    CalendarFeed,
    CasePresentation,
    Consent,
    ConsentForm,
    Course,
    Group,
    Meeting,
    Membership,
    Participant,
)


class SuperuserAdmin(admin.ModelAdmin):
    """Only superusers: staff permissions alone never reveal participants' identities."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser


class ReadOnlyAdmin(SuperuserAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Course)
class CourseAdmin(SuperuserAdmin):
    list_display = ["name", "institution", "starts_on", "ends_on", "time_zone"]
    search_fields = ["name", "institution"]


@admin.register(Group)
class GroupAdmin(SuperuserAdmin):
    list_display = ["name", "course", "capacity", "default_place", "default_duration_minutes"]
    list_filter = ["course"]
    search_fields = ["name", "course__name"]


@admin.register(Membership)
class MembershipAdmin(SuperuserAdmin):
    list_display = ["user", "role", "course", "group", "created_at"]
    list_filter = ["role", "course"]
    search_fields = ["user__username", "user__email", "user__last_name"]
    list_select_related = ["user", "course", "group"]
    autocomplete_fields = ["user"]


@admin.register(Participant)
class ParticipantAdmin(SuperuserAdmin):
    # Never the name in a list: lists get screen-shared and printed.
    list_display = ["pseudonym", "group", "course"]
    list_filter = ["course", "group"]
    search_fields = ["pseudonym"]
    list_select_related = ["group", "course"]


@admin.register(ConsentForm)
class ConsentFormAdmin(SuperuserAdmin):
    list_display = ["course", "version", "title", "effective_date", "created_by"]
    list_filter = ["course"]
    list_select_related = ["course", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        # A signed text must not change under its records: edit by making a new version in the app.
        return ["course", "version", "text", "created_by"] if obj else []


@admin.register(Consent)
class ConsentAdmin(ReadOnlyAdmin):
    list_display = ["participant", "decision", "form_version", "decided_at", "method", "withdrawal_scope", "recorded_by"]
    list_filter = ["decision", "method", "participant__course"]
    search_fields = ["participant__pseudonym"]
    list_select_related = ["participant", "recorded_by"]


@admin.register(Meeting)
class MeetingAdmin(SuperuserAdmin):
    list_display = ["group", "number", "starts_at", "duration_minutes", "place", "status"]
    list_filter = ["status", "group__course"]
    list_select_related = ["group"]
    date_hierarchy = "starts_at"


@admin.register(Attendance)
class AttendanceAdmin(SuperuserAdmin):
    list_display = ["meeting", "participant", "present"]
    list_filter = ["present", "meeting__group"]
    list_select_related = ["meeting__group", "participant"]


@admin.register(CasePresentation)
class CasePresentationAdmin(SuperuserAdmin):
    list_display = ["meeting", "order", "title", "presenter"]
    list_select_related = ["meeting__group", "presenter"]
    search_fields = ["title"]


@admin.register(CalendarFeed)
class CalendarFeedAdmin(SuperuserAdmin):
    list_display = ["user", "created_at"]
    exclude = ["token"]  # a secret; revoking in the app replaces it


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_name", "action", "object_type", "object_id", "summary", "course"]
    list_filter = ["action", "object_type", "course"]
    search_fields = ["summary", "actor_name", "object_id"]
    date_hierarchy = "at"
