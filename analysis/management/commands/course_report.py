"""Build a course's report and exports now, in this process, and write the files.

    manage.py course_report <course id> --out DIR [--kinds report,data,qdpx,qdc] [--include-memos]

The same code the background worker runs (`analysis.jobs.build`), from one
snapshot of the data; nothing is stored in the database and no broker is
needed. Prints each file written and the data hash.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from analysis import jobs
from analysis.models import Report
from sessions.models import Course


class Command(BaseCommand):
    help = "Build a course's report and exports synchronously and write them to a directory."

    def add_arguments(self, parser):
        parser.add_argument("course", type=int, help="the course's id")
        parser.add_argument("--out", required=True, type=Path, help="directory to write the files to")
        parser.add_argument(
            "--kinds", default=",".join(Report.Kind.values),
            help=f"comma-separated, from {', '.join(Report.Kind.values)} (default: all)",
        )
        parser.add_argument("--include-memos", action="store_true", help="put the memos in the summary report")

    def handle(self, *args, course, out, kinds, include_memos, **options):
        try:
            course = Course.objects.get(pk=course)
        except Course.DoesNotExist:
            raise CommandError(f"No course with id {course}.") from None
        try:
            kinds = jobs.normalise_kinds(k.strip() for k in kinds.split(",") if k.strip())
        except jobs.ReportError as error:
            raise CommandError(str(error)) from None
        if out.exists() and not out.is_dir():
            raise CommandError(f"{out} exists and is not a directory.")

        verbosity = options["verbosity"]

        def progress(percent: int, stage: str) -> None:
            if verbosity >= 2:
                self.stderr.write(f"{percent:3d}% {stage}")

        try:
            built = jobs.build(Report(course=course, kinds=kinds, include_memos=include_memos), progress)
        except jobs.ReportError as error:
            raise CommandError(str(error)) from None
        out.mkdir(parents=True, exist_ok=True)
        try:
            # By name, each file read back from the spool as it is written:
            # sorting the items would hold every file's bytes at once.
            for name in sorted(built.files):
                content = built.files[name]
                path = out / name
                path.write_bytes(content)
                self.stdout.write(f"{path}  {len(content)} bytes")
        finally:
            built.files.close()
        self.stdout.write(f"data hash {built.data_hash}")
