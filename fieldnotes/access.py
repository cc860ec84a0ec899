"""Who reads and writes which field note.

- The author (a co-leader of the group) writes their own note and reads it.
- The other co-leader reads it once it is submitted *and* they have submitted
  their own for that session: co-leaders write blind to each other.
- The group's leader reads submitted notes of the group.
- Researchers of the course read submitted notes, and of those only the
  research-eligible sections (see NoteSection.objects.research_eligible).
- Nobody reads someone else's draft. Course admins administer; they do not
  read notes (they may import them).
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q
from django.http import Http404, HttpRequest

from sessions.access import get_access, get_meeting_for, groups_for
from sessions.models import Meeting, Role

from .models import FieldNote


def notes_readable(request: HttpRequest):
    user = request.user
    access = get_access(request)
    submitted = Q(status=FieldNote.Status.SUBMITTED)
    own_submitted = FieldNote.objects.filter(meeting=OuterRef("meeting"), author=user, status=FieldNote.Status.SUBMITTED)
    return FieldNote.objects.filter(
        Q(author=user)
        | (submitted & Q(meeting__group__in=groups_for(request, Role.LEADER)))
        | (submitted & Q(meeting__group__course_id__in=access.course_ids(Role.RESEARCHER)))
        | (submitted & Q(meeting__group__in=groups_for(request, Role.COLEADER)) & Exists(own_submitted))
    )


def reader_role(request: HttpRequest, note: FieldNote) -> str:
    """How the user reads this note: 'author', 'leader', 'coleader' or 'researcher'.

    A researcher who also leads the group reads as the leader (whole note).
    """
    if note.author_id == request.user.pk:
        return "author"
    roles = get_access(request).roles_in_group(note.meeting.group)
    for role in (Role.LEADER, Role.COLEADER, Role.RESEARCHER):
        if role in roles:
            return role
    raise Http404("No such note.")  # unreachable when fetched through notes_readable


def get_note_for_reader(request: HttpRequest, pk: int) -> FieldNote:
    try:
        return notes_readable(request).select_related("meeting__group__course", "author").get(pk=pk)
    except FieldNote.DoesNotExist:
        raise Http404("No such note.") from None


def get_note_for_author(request: HttpRequest, pk: int) -> FieldNote:
    """The user's own note, while they are still a co-leader of its group."""
    try:
        return (
            FieldNote.objects.filter(author=request.user, meeting__group__in=groups_for(request, Role.COLEADER))
            .select_related("meeting__group__course", "author")
            .get(pk=pk)
        )
    except FieldNote.DoesNotExist:
        raise Http404("No such note.") from None


def get_meeting_for_writing(request: HttpRequest, pk: int) -> Meeting:
    return get_meeting_for(request, pk, Role.COLEADER)
