"""Re-decide which note sections are research data, from consent, attendance,
cases, session times and note status, and store it (NoteSection.research_ok).

The app keeps the stored decision current on every change it makes; run this
after restoring a backup made by an older version, after editing those tables
by hand in SQL, or with --check to verify that nothing has drifted.
"""

from django.core.management.base import BaseCommand, CommandError

from fieldnotes import eligibility
from sessions.models import Course


class Command(BaseCommand):
    help = __doc__.split("\n\n")[0]

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true",
                            help="only report sections whose stored decision is out of date; exit 1 if any")

    def handle(self, *args, check: bool = False, **options):
        if check:
            drift = eligibility.differences()
            if drift:
                raise CommandError(f"{len(drift)} section(s) have an out-of-date research decision "
                                   f"(ids {', '.join(map(str, drift[:20]))}{' …' if len(drift) > 20 else ''}); "
                                   "run refresh_research_flags without --check.")
            self.stdout.write("Every section's research decision is up to date.")
            return
        changed = sum(eligibility.refresh_course(course) for course in Course.objects.order_by("pk"))
        self.stdout.write(f"Research decision stored for every section; {changed} changed.")
