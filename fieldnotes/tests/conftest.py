from datetime import timedelta

import pytest
from django.utils import timezone

from sessions.models import CasePresentation, Meeting


@pytest.fixture
def held(world):
    """A session held three hours ago in which S1 presented one case."""
    meeting = Meeting.objects.create(
        group=world.group, number=1, starts_at=timezone.now() - timedelta(hours=3), status=Meeting.Status.HELD
    )
    CasePresentation.objects.create(meeting=meeting, presenter=world.participants[0], order=1, title="On call alone")
    return meeting
