"""Many saves of one note at once, on PostgreSQL: each lands or is refused, none is lost.

50 writer threads (each its own database connection, like 50 browser tabs
open on the same note) save two sections at once, again and again, each based
on the version it last loaded. A reader thread samples the note's version
throughout. Needs PostgreSQL: skipped locally without it, failed in CI.
"""

import os
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from fieldnotes import services
from fieldnotes.models import FieldNote, NoteVersion, SectionRevision
from sessions.models import Meeting

pytestmark = pytest.mark.faults

THREADS = 50
ROUNDS = 4
JOIN_TIMEOUT = 120  # seconds for all writers together; they normally finish in a few


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
    discussion_id = note.sections.get(kind="discussion").pk
    other_id = note.sections.get(kind="other").pk
    landed, refused, errors = [], [], []  # list.append is atomic under the GIL
    per_writer_versions: dict[int, list[int]] = {}
    start = threading.Barrier(THREADS + 1)  # the writers and the reader go together
    writers_done = threading.Event()
    sampled: list[int] = []

    def writer(n):
        seen_versions = per_writer_versions.setdefault(n, [])
        try:
            start.wait(timeout=30)
            for r in range(ROUNDS):
                # Non-ASCII on purpose: text must come back exactly as typed (NFC).
                texts = {discussion_id: f"kirjoittaja {n}, kierros {r}: ääni ja öljy", other_id: f"muuta {n}/{r}"}
                seen = FieldNote.objects.get(pk=note.pk)  # what this "tab" last loaded
                try:
                    saved = services.note_save(note=seen, base_version=seen.version, texts=texts,
                                               actor=world.coleader1)
                except services.NoteConflict as conflict:
                    # The refused writer is told the current version (and gets its own text back
                    # from the page): it never goes backwards.
                    refused.append(texts)
                    seen_versions.append(conflict.note.version)
                else:
                    landed.append((saved.version, texts))
                    seen_versions.append(saved.version)
        except Exception as exc:  # anything else is a bug: report it, don't hide it in a thread
            errors.append(f"writer {n}: {exc!r}")
        finally:
            connections.close_all()

    def reader():
        try:
            start.wait(timeout=30)
            while not writers_done.is_set():
                sampled.append(FieldNote.objects.values_list("version", flat=True).get(pk=note.pk))
                time.sleep(0.002)
        except Exception as exc:
            errors.append(f"reader: {exc!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(THREADS)]
    sampler = threading.Thread(target=reader, daemon=True)
    for t in [*threads, sampler]:
        t.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    writers_done.set()
    sampler.join(timeout=10)

    assert not [t for t in [*threads, sampler] if t.is_alive()], "some threads hung (a lock never released?)"
    assert not errors
    assert len(landed) + len(refused) == THREADS * ROUNDS  # every save has an answer: landed or refused
    assert landed, "at least one save must land"
    assert refused, "the writers must have raced (otherwise this test proves nothing)"

    # Versions only increase: one landed save per version, no gaps, no repeats;
    # each writer saw its versions grow; the reader never saw one go back.
    versions = sorted(v for v, _ in landed)
    assert versions == list(range(1, len(landed) + 1))
    for n, seen_versions in per_writer_versions.items():
        assert seen_versions == sorted(seen_versions), f"writer {n} saw the version go back: {seen_versions}"
    assert sampled, "the reader sampled nothing"
    assert sampled == sorted(sampled), "a reader saw the note's version go back"

    note.refresh_from_db()
    assert note.version == len(landed)
    assert NoteVersion.objects.filter(note=note).count() == len(landed)

    # No text is lost: every landed save is in the history, both its sections in
    # the one version it claimed (never half of one save and half of another);
    # the note holds the last one. A refused text was never written anywhere.
    by_version = dict(landed)
    for section_id in (discussion_id, other_id):
        history = list(
            SectionRevision.objects.filter(section_id=section_id)
            .order_by("revision")
            .values_list("revision", "note_version__version", "text")
        )
        assert history == [
            (i, v, by_version[v][section_id]) for i, v in enumerate(sorted(by_version), start=1)
        ]
        assert note.sections.get(pk=section_id).text == by_version[max(by_version)][section_id]
    refused_texts = {text for texts in refused for text in texts.values()}
    landed_texts = {text for _, texts in landed for text in texts.values()}
    assert not SectionRevision.objects.filter(text__in=refused_texts - landed_texts).exists()
