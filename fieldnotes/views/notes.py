"""Writing and reading field notes.

The editor is an ordinary form that works without JavaScript (Save, Submit);
static/js/fieldnote.js adds autosave through `note_autosave`, a JSON endpoint
with the same rules. Every save carries the version it was based on.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from balint.decorators import login_required_json
from sessions.access import get_access
from sessions.models import Meeting, Role

from .. import services
from ..access import get_meeting_for_writing, get_note_for_author, get_note_for_reader, reader_role
from ..diff import word_diff
from ..models import MAX_SECTION_CHARS, FieldNote, NoteSection, NoteVersion, SectionRevision
from ..text import normalise

PROMPTS = {
    NoteSection.Kind.CASE: "What was told, the context of the case, and what made the student bring it to the group.",
    NoteSection.Kind.DISCUSSION: "The themes the group discussed, and how the group worked: process, atmosphere, "
    "the leader's interventions.",
    NoteSection.Kind.OTHER: "Anything else worth recording (optional).",
}


# --- Helpers ------------------------------------------------------------------


def _texts_from_post(request, note: FieldNote) -> dict[int, str]:
    return {
        pk: normalise(request.POST[f"section-{pk}"])
        for pk in note.sections.values_list("pk", flat=True)
        if f"section-{pk}" in request.POST
    }


def _base_version(raw) -> int:
    try:
        version = int(raw)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's Infinity
        raise services.NoteError("The form is missing the note's version; reload the page (your text is kept).") from None
    if version < 0:
        raise services.NoteError("The note's version is not valid.")
    return version


def _findings_json(found) -> list[dict]:
    return [
        {"section": section_id, "kind": f.kind, "start": f.start, "end": f.end, "text": f.text,
         "suggestion": f.suggestion, "message": f.message}
        for section_id, hits in found.items()
        for f in hits
    ]


def _sections(note: FieldNote) -> list[NoteSection]:
    return sorted(
        NoteSection.objects.filter(note=note).with_eligibility().select_related("case__presenter"),
        key=lambda s: s.sort_key,
    )


def _editor(request, note: FieldNote, *, texts: dict[int, str] | None = None, conflict: FieldNote | None = None,
            found=None, status=200):
    """The editor page; `texts` are the author's unsaved texts to put back in the boxes."""
    sections = _sections(note)
    texts = texts or {}
    if found is None:
        found = services.unconfirmed_identifiers(note)
    saved_texts = {}
    if conflict is not None:
        saved_texts = dict(conflict.sections.values_list("pk", "text"))
    rows = [
        {
            "section": s,
            "prompt": PROMPTS[s.kind],
            "text": texts.get(s.pk, s.text),
            "saved_text": saved_texts.get(s.pk),
            "findings": found.get(s.pk, []),
        }
        for s in sections
    ]
    return render(
        request,
        "fieldnotes/note_edit.html",
        {
            "note": note,
            "meeting": note.meeting,
            "group": note.meeting.group,
            "course": note.meeting.group.course,
            "rows": rows,
            "version": conflict.version if conflict is not None else note.version,
            "conflict": conflict,
            "found_count": sum(len(v) for v in found.values()),
            "max_chars": MAX_SECTION_CHARS,
            "autosave_url": reverse("fieldnotes:note_autosave", args=[note.pk]),
            "confirm_url": reverse("fieldnotes:identifier_confirm", args=[note.pk]),
        },
        status=status,
    )


# --- Writing ------------------------------------------------------------------


@login_required
@require_GET
def note_write(request, pk):
    """"Write field note" from the dashboard or the session page: open (or create) my note."""
    meeting = get_meeting_for_writing(request, pk)
    if meeting.status == Meeting.Status.CANCELLED:
        messages.error(request, "This session was cancelled; there is no note to write.")
        return redirect("sessions:meeting_detail", pk=meeting.pk)
    if meeting.starts_at > timezone.now():
        messages.info(request, "The note can be written once the session has started.")
        return redirect("sessions:meeting_detail", pk=meeting.pk)
    note = services.note_open(meeting=meeting, author=request.user)
    if note.is_submitted:
        return redirect("fieldnotes:note_detail", pk=note.pk)
    return redirect("fieldnotes:note_edit", pk=note.pk)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def note_edit(request, pk):
    note = get_note_for_author(request, pk)
    if note.is_submitted:
        messages.info(request, "This note has been submitted. To correct it, amend it with a reason.")
        return redirect("fieldnotes:note_detail", pk=note.pk)
    if request.method == "GET":
        services.note_sync_sections(note=note)  # a case added since the note was started gains its section
        return _editor(request, note)
    texts = _texts_from_post(request, note)
    try:
        services.note_save(note=note, base_version=_base_version(request.POST.get("version")), texts=texts,
                           actor=request.user)
    except services.NoteConflict as conflict:
        messages.warning(request, str(conflict))
        return _editor(request, note, texts=texts, conflict=conflict.note, status=409)
    except services.NoteError as error:
        messages.error(request, str(error))
        return _editor(request, note, texts=texts, status=400)
    messages.success(request, "Saved.")
    return redirect("fieldnotes:note_edit", pk=note.pk)


@never_cache
@login_required_json
@require_POST
def note_autosave(request, pk):
    """JSON: {"version": n, "sections": {"<id>": "text"}} -> the new version, or 409 with the saved texts."""
    note = get_note_for_author(request, pk)
    try:
        payload = json.loads(request.body)
    except RequestDataTooBig:
        return JsonResponse({"error": "too_big", "message": "The note is too large to save in one go."}, status=413)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep to parse
        return JsonResponse({"error": "invalid", "message": "The save could not be read; your text is kept."},
                            status=400)
    if not isinstance(payload, dict) or not isinstance(payload.get("sections"), dict):
        return JsonResponse({"error": "invalid", "message": "The save could not be read; your text is kept."},
                            status=400)
    try:
        saved = services.note_save(note=note, base_version=_base_version(payload.get("version")),
                                   texts=payload["sections"], actor=request.user)
    except services.NoteConflict as conflict:
        current = conflict.note
        return JsonResponse(
            {"error": "conflict", "message": str(conflict), "version": current.version,
             "saved_at": current.updated_at.isoformat(),
             "sections": {str(pk): text for pk, text in current.sections.values_list("pk", "text")}},
            status=409,
        )
    except services.NoteLocked as locked:
        return JsonResponse({"error": "locked", "message": str(locked)}, status=409)
    except services.NoteTooLong as error:
        return JsonResponse({"error": "too_long", "message": str(error)}, status=413)
    except services.NoteError as error:
        return JsonResponse({"error": "invalid", "message": str(error)}, status=400)
    return JsonResponse(
        {"version": saved.version, "saved_at": saved.saved_at.isoformat(),
         "findings": _findings_json(services.unconfirmed_identifiers(note))}
    )


@login_required
@require_POST
def note_submit(request, pk):
    note = get_note_for_author(request, pk)
    texts = _texts_from_post(request, note)
    try:
        services.note_submit(note=note, base_version=_base_version(request.POST.get("version")), texts=texts,
                             actor=request.user)
    except services.IdentifiersFound as found:
        messages.warning(request, str(found))
        note.refresh_from_db()
        return _editor(request, note, found=found.findings, status=400)
    except services.NoteConflict as conflict:
        messages.warning(request, str(conflict))
        return _editor(request, note, texts=texts, conflict=conflict.note, status=409)
    except services.NoteLocked as locked:
        messages.info(request, str(locked))
        return redirect("fieldnotes:note_detail", pk=note.pk)
    except services.NoteError as error:
        messages.error(request, str(error))
        return _editor(request, note, texts=texts, status=400)
    messages.success(request, "Note submitted. The other co-leader can read it once they submit theirs.")
    return redirect("fieldnotes:note_detail", pk=note.pk)


@login_required_json(forms_too=True)
@require_POST
def identifier_confirm(request, pk):
    """The author confirms a finding is not an identifier (JSON for the editor, or a plain form)."""
    note = get_note_for_author(request, pk)
    services.identifier_confirm(note=note, text=request.POST.get("text", ""), actor=request.user)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"findings": _findings_json(services.unconfirmed_identifiers(note))})
    messages.success(request, "Noted: that text is not an identifier.")
    return redirect("fieldnotes:note_edit", pk=note.pk)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def note_amend(request, pk):
    note = get_note_for_author(request, pk)
    if not note.is_submitted:
        return redirect("fieldnotes:note_edit", pk=note.pk)
    texts, reason, conflict, status = {}, "", None, 200
    if request.method == "POST":
        texts = _texts_from_post(request, note)
        reason = request.POST.get("reason", "")
        try:
            services.note_amend(note=note, base_version=_base_version(request.POST.get("version")), texts=texts,
                                reason=reason, actor=request.user)
        except services.NoteConflict as error:
            messages.warning(request, str(error))
            conflict, status = error.note, 409
        except services.NoteError as error:
            messages.error(request, str(error))
            status = 400
        else:
            messages.success(request, "Amendment saved, with its reason, in the note's history.")
            return redirect("fieldnotes:note_detail", pk=note.pk)
    saved_texts = dict(conflict.sections.values_list("pk", "text")) if conflict else {}
    rows = [
        {"section": s, "prompt": PROMPTS[s.kind], "text": texts.get(s.pk, s.text), "saved_text": saved_texts.get(s.pk)}
        for s in _sections(note)
    ]
    return render(
        request,
        "fieldnotes/note_amend.html",
        {"note": note, "meeting": note.meeting, "group": note.meeting.group, "course": note.meeting.group.course,
         "rows": rows, "reason": reason, "version": conflict.version if conflict else note.version,
         "conflict": conflict},
        status=status,
    )


# --- Reading ------------------------------------------------------------------


@never_cache
@login_required
@require_GET
def note_detail(request, pk):
    note = get_note_for_reader(request, pk)
    role = reader_role(request, note)
    sections = _sections(note)
    for section in sections:
        section.reason = section.ineligibility_reason() if note.is_submitted else ""
    research_only = role == Role.RESEARCHER
    amendments = note.versions.filter(action=NoteVersion.Action.AMEND).select_related("saved_by")
    return render(
        request,
        "fieldnotes/note_detail.html",
        {
            "note": note,
            "meeting": note.meeting,
            "group": note.meeting.group,
            "course": note.meeting.group.course,
            "sections": sections,
            "role": role,
            "research_only": research_only,
            "amendments": amendments,
            "show_identities": get_access(request).can_see_identities(note.meeting.group),
        },
    )


@never_cache
@login_required
@require_GET
def note_history(request, pk):
    """Every saved version of my note. Only the author: earlier versions are drafts."""
    note = get_note_for_author(request, pk)
    versions = note.versions.select_related("saved_by").order_by("-version")
    return render(request, "fieldnotes/note_history.html", {
        "note": note, "meeting": note.meeting, "group": note.meeting.group, "course": note.meeting.group.course,
        "versions": versions,
    })


@never_cache
@login_required
@require_GET
def note_version(request, pk, version):
    """What one save changed: each changed section against its text before."""
    note = get_note_for_author(request, pk)
    try:
        saved = note.versions.select_related("saved_by").get(version=version)
    except NoteVersion.DoesNotExist:
        raise Http404("No such version.") from None
    changes = []
    for rev in saved.section_revisions.select_related("section__case__presenter").order_by("section_id"):
        before = (
            SectionRevision.objects.filter(section=rev.section, revision__lt=rev.revision)
            .order_by("-revision")
            .values_list("text", flat=True)
            .first()
        ) or ""
        changes.append({"section": rev.section, "parts": word_diff(before, rev.text)})
    return render(request, "fieldnotes/note_version.html", {
        "note": note, "meeting": note.meeting, "group": note.meeting.group, "course": note.meeting.group.course,
        "saved": saved, "changes": changes,
    })
