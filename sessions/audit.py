"""Recording changes: every write service calls `record` inside its transaction."""

from __future__ import annotations

from typing import Any

from django.db import models

from .models import AuditEvent, Course


def record(
    *,
    actor,
    action: str,
    obj: models.Model,
    summary: str,
    course: Course | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        course=course,
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_name=actor.get_username() if actor is not None and actor.is_authenticated else "system",
        action=action,
        object_type=obj._meta.model_name,
        object_id=str(obj.pk or ""),
        summary=summary[:300],
        changes=changes or {},
    )


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """Field-by-field changes as {field: [old, new]}, JSON-friendly."""
    return {
        key: [_plain(before.get(key)), _plain(after.get(key))]
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def snapshot(obj: models.Model, fields: list[str]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in fields}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, models.Model):
        return str(value.pk)
    return str(value)
