"""Import a REFI-QDA project (.qdpx) or codebook (.qdc) into a course."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from analysis.management.commands.export_qdpx import find_course
from analysis.qda import DEFAULT_GROUP, MAX_UNPACKED_BYTES, QdaError, import_qdc, import_qdpx


def find_user(username: str, option: str):
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"{option}: there is no active user “{username}”.")
    return user


class Command(BaseCommand):
    help = (
        "Import a REFI-QDA project (.qdpx) into a course: each text source becomes a submitted field note of a "
        "new session in the group --group (default “Imported”), with its coded selections as shared coded "
        "segments at the same positions, and its codes added to the codebook (matched by name). A .qdc file "
        "adds only its codes. All or nothing: a file that cannot be mapped is refused with the reason."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The .qdpx (or .qdc) file.")
        parser.add_argument("--course", required=True, help="The course: its id or exact name.")
        parser.add_argument("--group", default=DEFAULT_GROUP, help="Group for the imported notes (created if missing).")
        parser.add_argument("--author", help="Username the notes are written by (default: the actor).")
        parser.add_argument("--actor", required=True, help="Username of the person importing (recorded as such).")

    def handle(self, *args, file, course, group=DEFAULT_GROUP, author=None, actor, **options):
        course_obj = find_course(course)
        actor_obj = find_user(actor, "--actor")
        author_obj = find_user(author, "--author") if author else None
        path = Path(file)
        try:
            if path.stat().st_size > MAX_UNPACKED_BYTES:
                raise CommandError(f"“{file}” is larger than {MAX_UNPACKED_BYTES // (1024 * 1024)} MB.")
            data = path.read_bytes()
        except OSError as error:
            raise CommandError(f"Could not read “{file}”: {error.strerror}.") from None
        try:
            if path.suffix.lower() == ".qdc":
                created = import_qdc(course=course_obj, data=data, actor=actor_obj)
                self.stdout.write(self.style.SUCCESS(f"Added {created} codes to the codebook of {course_obj.name}."))
                return
            summary = import_qdpx(course=course_obj, data=data, actor=actor_obj, group_name=group,
                                  author=author_obj)
        except QdaError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(summary.message))
