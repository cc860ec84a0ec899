"""Helpers for the few reads written in SQL by hand: the hot ones, where
building the query with the ORM cost more than the database spent answering
it (the coding page, a page of segment search results, the tidy exports'
small tables). Each such read keeps the scoping of the ORM version it
replaces, and says so beside its SQL.

The SQL is written for PostgreSQL and SQLite alike (`make run` uses SQLite):
reserved words quoted, `IN` lists spelled out as placeholders.

The reads every page view runs are `Prepared`: PostgreSQL plans them once per
connection instead of on every request, which was most of their cost.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timezone as dt_timezone

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime


def fetch_rows(sql: str, params: list) -> list[tuple]:
    """Every row of `sql` as tuples, through Django's connection (so it counts
    in `django_assert_num_queries` and runs in the request's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class Prepared:
    """A read PostgreSQL plans once per connection (a server-side prepared
    statement) rather than on every call.

    Planning a join of five tables took PostgreSQL about 1.1 ms of the 1.3 ms
    the coding page's section read cost; executing the plan takes 0.2 ms
    (`bench/coding_page.py`). Connections persist across requests
    (CONN_MAX_AGE), so a statement is planned once per connection (each
    thread has its own), and again after a reconnect.

    The first call on a connection sends `PREPARE name AS …; EXECUTE name(…)`
    in one round trip, later calls `EXECUTE name(…)`: one query each, as
    `django_assert_num_queries` counts them. Prepared statements outlive
    rolled-back transactions, so what was prepared stays known; after a
    failed first call, whether the PREPARE took is asked of
    `pg_prepared_statements`. On other databases the SQL runs as it is.

    `sql` uses `%s` placeholders, every one a parameter (write a literal % as
    %%), and must not change between calls: a changed statement needs a new
    name. A connection pooler in transaction mode (PgBouncer) would break
    this; docs/deploy.md says so.
    """

    def __init__(self, name: str, sql: str):
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"statement name {name!r}: lower-case letters, digits and _ only")
        self.name = f"balint_{name}"
        self.sql = sql
        numbers = itertools.count(1)
        # %s becomes $1, $2, …; %% stays, for psycopg2 to turn into % as it does in `sql`.
        self.body = re.sub(r"%[%s]", lambda m: m[0] if m[0] == "%%" else f"${next(numbers)}", sql)
        self.arity = next(numbers) - 1

    def rows(self, params: list) -> list[tuple]:
        if len(params) != self.arity:
            raise ValueError(f"{self.name} takes {self.arity} parameters, not {len(params)}")
        if connection.vendor != "postgresql":
            return fetch_rows(self.sql, params)
        known = _prepared_here()
        execute = f"EXECUTE {self.name} ({placeholders(params)})"
        with connection.cursor() as cursor:
            if known.get(self.name, False) is None:  # a first call failed: did its PREPARE take?
                cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = %s", [self.name])
                known[self.name] = cursor.fetchone()[0] == 1
            if known.get(self.name):
                cursor.execute(execute, params)
            else:
                known[self.name] = None
                cursor.execute(f"PREPARE {self.name} AS {self.body}; {execute}", params)
                known[self.name] = True
            return cursor.fetchall()


def _prepared_here() -> dict[str, bool | None]:
    """What is prepared on this thread's database connection, by name: True,
    False, or None when unknown. Kept on this thread's connection wrapper
    (`django.db.connection` is a proxy that all threads share) beside the
    DB-API connection it is about, so a reconnect starts afresh."""
    wrapper = connections[DEFAULT_DB_ALIAS]
    wrapper.ensure_connection()
    raw, known = wrapper.__dict__.get("_balint_prepared", (None, None))
    if raw is not wrapper.connection:
        known = {}
        wrapper.__dict__["_balint_prepared"] = (wrapper.connection, known)
    return known


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
