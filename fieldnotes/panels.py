"""The "Field notes" part of a session's page, for whoever is looking."""

from django.utils import timezone

from sessions.access import get_access
from sessions.models import Meeting, Role

from .access import notes_readable
from .models import FieldNote


def meeting_notes_panel(request, meeting: Meeting) -> dict:
    roles = get_access(request).roles_in_group(meeting.group)
    is_coleader = Role.COLEADER in roles
    notes = list(FieldNote.objects.filter(meeting=meeting).select_related("author"))
    readable_ids = set(notes_readable(request).filter(meeting=meeting).values_list("pk", flat=True))
    mine = next((n for n in notes if n.author_id == request.user.pk), None)
    return {
        "is_coleader": is_coleader,
        "can_write": is_coleader and meeting.status != Meeting.Status.CANCELLED and meeting.starts_at <= timezone.now(),
        "mine": mine,
        "readable": [n for n in notes if n.pk in readable_ids and n is not mine],
        # Co-leaders learn that the other's note exists, not what it says.
        "hidden_count": sum(1 for n in notes if n.pk not in readable_ids and n is not mine) if is_coleader else 0,
        "can_import": bool(roles & {Role.LEADER, Role.ADMIN}) and meeting.status != Meeting.Status.CANCELLED,
    }
