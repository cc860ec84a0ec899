"""Many saves of one note at once, on PostgreSQL: each lands or is refused, none is lost."""

import os
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from fieldnotes import services
from fieldnotes.models import FieldNote, NoteVersion, SectionRevision
from sessions.models import Meeting

THREADS = 20
ROUNDS = 5


@pytest.fixture
def require_postgresql(transactional_db):
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("CI must run the concurrency test on PostgreSQL (set DATABASE_URL).")
        pytest.skip("Concurrent saves are tested on PostgreSQL (DATABASE_URL=postgres://...); SQLite serialises writes.")


def test_concurrent_saves_each_land_or_are_refused_and_versions_only_increase(require_postgresql, world):
    meeting = Meeting.objects.create(group=world.group, number=1, starts_at=timezone.now() - timedelta(hours=2),
                                     status=Meeting.Status.HELD)
    note = services.note_open(meeting=meeting, author=world.coleader1)
    section_id = note.sections.get(kind="discussion").pk
    landed, refused, errors = [], [], []
    start = threading.Barrier(THREADS)

    def writer(n):
        try:
            start.wait()
            for r in range(ROUNDS):
                text = f"writer {n} round {r}"
                seen = FieldNote.objects.get(pk=note.pk)  # what this "tab" last loaded
                try:
                    saved = services.note_save(note=seen, base_version=seen.version, texts={section_id: text},
                                               actor=world.coleader1)
                except services.NoteConflict:
                    refused.append(text)
                else:
                    landed.append((saved.version, text))
        except Exception as exc:  # anything else is a bug: report it, don't hide it in a thread
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert not errors
    assert len(landed) + len(refused) == THREADS * ROUNDS
    assert landed, "at least one save must land"
    assert refused, "the writers must have raced (otherwise this test proves nothing)"
    versions = sorted(v for v, _ in landed)
    assert versions == list(range(1, len(landed) + 1))  # one landed save per version, no gaps, no repeats
    note.refresh_from_db()
    assert note.version == len(landed)
    assert NoteVersion.objects.filter(note=note).count() == len(landed)
    # Every landed text is in the history, in the order of its version; the
    # note holds the last one. A refused text was never written anywhere.
    by_version = dict(landed)
    history = list(
        SectionRevision.objects.filter(section_id=section_id).order_by("revision").values_list("note_version__version", "text")
    )
    assert history == sorted(by_version.items())
    assert note.sections.get(pk=section_id).text == by_version[max(by_version)]
    assert not SectionRevision.objects.filter(text__in=refused).exists()
