"""Export a course as a REFI-QDA project (.qdpx), or its codebook alone (.qdc)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from analysis.qda import QdaError, export_qdc, export_qdpx
from sessions.models import Course


def find_course(value: str) -> Course:
    """A course by id, or by its exact name."""
    if value.isdigit():
        course = Course.objects.filter(pk=int(value)).first()
    else:
        matches = list(Course.objects.filter(name=value)[:2])
        if len(matches) > 1:
            raise CommandError(f"More than one course is called “{value}”; give its id instead.")
        course = matches[0] if matches else None
    if course is None:
        raise CommandError(f"There is no course “{value}” (give a course id or its exact name).")
    return course


class Command(BaseCommand):
    help = (
        "Write a course's research-eligible field-note text, shared coding, codebook, cases and memos as a "
        "REFI-QDA project (.qdpx) that NVivo, ATLAS.ti, MAXQDA and QualCoder open; with --codebook-only, "
        "write the codebook alone as a .qdc. Text that consent does not allow is never written."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Where to write the .qdpx (or .qdc) file.")
        parser.add_argument("--course", required=True, help="The course: its id or exact name.")
        parser.add_argument("--codebook-only", action="store_true", help="Write only the codebook, as .qdc.")
        parser.add_argument("--no-memos", action="store_true", help="Leave the researchers' memos out.")

    def handle(self, *args, file, course, codebook_only=False, no_memos=False, **options):
        course_obj = find_course(course)
        try:
            data = export_qdc(course_obj) if codebook_only else export_qdpx(course_obj, include_memos=not no_memos)
        except QdaError as error:
            raise CommandError(str(error)) from None
        path = Path(file)
        try:
            path.write_bytes(data)
        except OSError as error:
            raise CommandError(f"Could not write “{file}”: {error.strerror}.") from None
        what = "codebook" if codebook_only else "project"
        self.stdout.write(self.style.SUCCESS(f"Wrote the {what} of {course_obj.name} to {path} ({len(data):,} bytes)."))
