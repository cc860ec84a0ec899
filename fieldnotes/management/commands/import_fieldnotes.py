"""Import a folder of field notes kept as documents by an older course."""

from __future__ import annotations

import re
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from fieldnotes.documents import MAX_BYTES
from fieldnotes.imports import ImportRefused, NoteExists, note_import
from sessions.models import Course, Group

FILE_NAME = re.compile(r"^(?P<number>[0-9]+)_(?P<username>.+)\.(?P<ext>txt|docx|odt)$", re.IGNORECASE)


class _DryRun(Exception):
    """Raised inside the transaction of a dry run, so it is rolled back."""


class Command(BaseCommand):
    help = (
        "Import field notes kept as documents into one group of a course. Each file in FOLDER "
        "(not its subfolders) is one co-leader's note for one session, named "
        "<session number>_<co-leader username>.<txt|docx|odt>, for example 3_coleader1.docx. "
        "Each becomes that co-leader's submitted note, with the whole text in the group-discussion "
        "section. Every file is reported as imported, skipped (already imported from the same file) "
        "or failed with the reason; one failed file does not stop the others, and each file is "
        "imported completely or not at all. The exit status is non-zero when any file failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("folder", help="Folder holding the note files.")
        parser.add_argument("--course", type=int, required=True, help="Id of the course.")
        parser.add_argument("--group", required=True, help="Name of the group in that course, e.g. \"Group A\".")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check every file as if importing it, then save nothing."
        )

    def handle(self, *args, folder, course, group, dry_run=False, **options):
        folder_path = Path(folder)
        if not folder_path.is_dir():
            raise CommandError(f"“{folder}” is not a folder.")
        try:
            course_obj = Course.objects.get(pk=course)
        except Course.DoesNotExist:
            raise CommandError(f"There is no course with id {course}.") from None
        try:
            group_obj = Group.objects.get(course=course_obj, name=group)
        except Group.DoesNotExist:
            names = ", ".join(f"“{g.name}”" for g in course_obj.groups.all()) or "none"
            raise CommandError(f"{course_obj.name} has no group “{group}” (its groups: {names}).") from None

        # Hidden files (.DS_Store, editors' lock files such as .~lock.3_x.odt#) are not notes.
        files = sorted(
            (p for p in folder_path.iterdir() if p.is_file() and not p.name.startswith(".")),
            key=lambda p: p.name,
        )
        if not files:
            raise CommandError(f"“{folder}” holds no files to import.")

        counts = {"imported": 0, "skipped": 0, "failed": 0}
        for path in files:
            outcome, message = self._import_one(path, group_obj, dry_run)
            counts[outcome] += 1
            style = {"imported": self.style.SUCCESS, "skipped": self.style.WARNING, "failed": self.style.ERROR}
            self.stdout.write(style[outcome](f"{path.name}: {message}"))

        verb = "would be imported" if dry_run else "imported"
        summary = f"{counts['imported']} {verb}, {counts['skipped']} skipped, {counts['failed']} failed."
        if dry_run:
            summary += " Dry run: nothing was saved."
        if counts["failed"]:
            raise CommandError(summary)
        self.stdout.write(summary)

    def _import_one(self, path: Path, group: Group, dry_run: bool) -> tuple[str, str]:
        match = FILE_NAME.match(path.name)
        if not match:
            return "failed", "name is not <session number>_<co-leader username>.<txt|docx|odt>"
        number, username = int(match["number"]), match["username"]
        meeting = group.meetings.filter(number=number).select_related("group__course").first()
        if meeting is None:
            return "failed", f"{group.name} has no session {number}"
        author = _user(username)
        if author is None:
            return "failed", f"there is no user “{username}”"
        size = path.stat().st_size
        if size > MAX_BYTES:
            return "failed", f"the file is too large: files up to {MAX_BYTES // (1024 * 1024)} MB can be imported"
        try:
            data = path.read_bytes()
        except OSError as error:
            return "failed", f"the file couldn't be read ({error.strerror or error})"
        try:
            with transaction.atomic():
                note_import(meeting=meeting, author=author, filename=path.name, data=data, actor=None)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            return "imported", f"would be imported as {username}'s note for session {number}"
        except NoteExists as exists:
            if exists.note.imported_from == path.name:
                return "skipped", f"already imported ({username}'s note for session {number})"
            return "failed", str(exists)
        except ImportRefused as refused:
            return "failed", str(refused)
        return "imported", f"imported as {username}'s note for session {number}"


def _user(username: str):
    User = get_user_model()
    user = User.objects.filter(username=username).first()
    if user is None:
        # File systems and people are loose about case; accept it when unambiguous.
        candidates = list(User.objects.filter(username__iexact=username)[:2])
        user = candidates[0] if len(candidates) == 1 else None
    return user
