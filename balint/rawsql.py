"""Helpers for the few reads written in SQL by hand: the hot ones, where
building the query with the ORM cost more than the database spent answering
it (the coding page, a page of segment search results, the tidy exports'
small tables). Each such read keeps the scoping of the ORM version it
replaces, and says so beside its SQL.

The SQL is written for PostgreSQL and SQLite alike (`make run` uses SQLite):
reserved words quoted, `IN` lists spelled out as placeholders.
"""

from __future__ import annotations

from datetime import datetime, timezone as dt_timezone

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime


def fetch_rows(sql: str, params: list) -> list[tuple]:
    """Every row of `sql` as tuples, through Django's connection (so it counts
    in `django_assert_num_queries` and runs in the request's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def placeholders(values) -> str:
    """"%s, %s, …", one for each of `values`, for an `IN (…)` list."""
    return ", ".join(["%s"] * len(values))


def db_datetime(value) -> datetime:
    """A timestamp read in SQL, as the ORM gives it: aware. SQLite hands raw
    SQL its stored text, or a naive datetime in UTC."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if settings.USE_TZ and timezone.is_naive(value):
        value = timezone.make_aware(value, dt_timezone.utc)
    return value
