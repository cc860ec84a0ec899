from django.urls import path

from .views import imports, notes

app_name = "fieldnotes"

urlpatterns = [
    path("sessions/<int:pk>/note/", notes.note_write, name="note_write"),
    path("sessions/<int:pk>/notes/import/", imports.note_import, name="note_import"),
    path("notes/<int:pk>/", notes.note_detail, name="note_detail"),
    path("notes/<int:pk>/edit/", notes.note_edit, name="note_edit"),
    path("notes/<int:pk>/autosave/", notes.note_autosave, name="note_autosave"),
    path("notes/<int:pk>/submit/", notes.note_submit, name="note_submit"),
    path("notes/<int:pk>/amend/", notes.note_amend, name="note_amend"),
    path("notes/<int:pk>/history/", notes.note_history, name="note_history"),
    path("notes/<int:pk>/versions/<int:version>/", notes.note_version, name="note_version"),
    path("notes/<int:pk>/identifiers/confirm/", notes.identifier_confirm, name="identifier_confirm"),
]
