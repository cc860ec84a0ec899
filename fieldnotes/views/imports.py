"""Importing an existing note from a document, for a group's leader or a course admin."""

from __future__ import annotations

import math

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Layout
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from sessions.access import get_meeting_for
from sessions.models import Meeting, Role

from ..documents import MAX_BYTES
from ..imports import ImportRefused, coleaders_of, display_name, import_refusal, note_import as import_service

ACCEPT = ".txt,.docx,.odt,text/plain,application/vnd.openxmlformats-officedocument.wordprocessingml.document," \
         "application/vnd.oasis.opendocument.text"


class CoLeaderChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, user) -> str:
        return user.get_full_name() or user.get_username()


class NoteImportForm(forms.Form):
    coleader = CoLeaderChoiceField(
        queryset=None, label="Co-leader", empty_label="Choose the co-leader who wrote the note",
        help_text="The note becomes this co-leader's submitted note for the session.",
    )
    file = forms.FileField(
        label="Document",
        help_text=f"A .txt, .docx or .odt file, at most {MAX_BYTES // (1024 * 1024)} MB.",
        widget=forms.FileInput(attrs={"accept": ACCEPT}),
    )

    def __init__(self, *args, meeting: Meeting, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["coleader"].queryset = coleaders_of(meeting)
        self.helper = FormHelper()
        self.helper.form_tag = False
        self.helper.disable_csrf = True
        self.helper.layout = Layout("coleader", "file")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        # Checked before anything is read, so a huge upload is never loaded.
        if upload.size > MAX_BYTES:
            raise forms.ValidationError(
                f"“{display_name(upload.name)}” is {math.ceil(upload.size * 10 / (1024 * 1024)) / 10} MB, "
                f"which is too large: files up to {MAX_BYTES // (1024 * 1024)} MB can be imported."
            )
        return upload


@login_required
@require_http_methods(["GET", "POST"])
def note_import(request, pk):
    meeting = get_meeting_for(request, pk, Role.LEADER, Role.ADMIN)
    refusal = import_refusal(meeting)
    posted = request.method == "POST"
    form = NoteImportForm(request.POST if posted else None, request.FILES if posted else None, meeting=meeting)
    if posted and not refusal and form.is_valid():
        author, upload = form.cleaned_data["coleader"], form.cleaned_data["file"]
        try:
            note = import_service(
                meeting=meeting, author=author, filename=upload.name, data=upload.read(), actor=request.user
            )
        except ImportRefused as refused:
            form.add_error(None, str(refused))
        else:
            who = author.get_full_name() or author.get_username()
            messages.success(
                request, f"Imported “{note.imported_from}” as {who}'s field note for session {meeting.number}."
            )
            return redirect("sessions:meeting_detail", pk=meeting.pk)
    return render(
        request,
        "fieldnotes/note_import.html",
        {"form": form, "meeting": meeting, "group": meeting.group, "course": meeting.group.course,
         "refusal": refusal},
        status=400 if posted else 200,
    )
