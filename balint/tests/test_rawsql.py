"""Prepared reads (`balint.rawsql.Prepared`): the same rows as the SQL run
as it is, one query a call, and still right after a reconnect or a failed
call. On PostgreSQL each statement is planned once per connection."""

import threading

import pytest
from django.db import DatabaseError, connection, connections, transaction

from balint import testing
from balint.rawsql import Prepared, fetch_rows
from sessions.models import Course

pytestmark = pytest.mark.django_db

COURSES = "SELECT id, name FROM balint_sessions_course WHERE name LIKE %s ORDER BY id"


def on_postgresql() -> None:
    testing.require(connection.vendor == "postgresql",
                    "needs PostgreSQL (DATABASE_URL): the statement is prepared there only")


def prepared_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall()}


@pytest.fixture
def courses():
    return [Course.objects.create(name=name) for name in ("Spring 100%", "Autumn", "Spring 50%")]


def test_gives_the_rows_the_sql_gives(courses, django_assert_num_queries):
    read = Prepared("test_courses_rows", COURSES)
    expected = fetch_rows(COURSES, ["Spring%"])
    assert [name for _, name in expected] == ["Spring 100%", "Spring 50%"]
    for _ in range(3):  # the first call prepares, the later ones only execute: one query each
        with django_assert_num_queries(1):
            assert read.rows(["Spring%"]) == expected
    assert read.rows(["Nothing%"]) == []


def test_a_literal_percent_sign_stays_one():
    read = Prepared("test_percent", "SELECT %s || '%%'")
    assert read.rows(["50"]) == [("50%",)]
    assert read.rows(["75"]) == [("75%",)]


def test_wrong_use_is_refused():
    with pytest.raises(ValueError, match="lower-case"):
        Prepared("Courses; DROP", COURSES)
    with pytest.raises(ValueError, match="takes 1 parameters, not 2"):
        Prepared("test_arity", COURSES).rows(["a", "b"])


def test_planned_once_per_connection_and_again_after_a_reconnect(transactional_db):
    on_postgresql()
    courses = [Course.objects.create(name=name) for name in ("Spring", "Autumn")]
    read = Prepared("test_courses_reconnect", COURSES)
    assert read.rows(["Autumn"]) == [(courses[1].pk, "Autumn")]
    assert "balint_test_courses_reconnect" in prepared_names()
    # A new connection (after a restart of PostgreSQL, or CONN_MAX_AGE) has
    # nothing prepared: the read prepares again rather than failing.
    connection.close()
    assert "balint_test_courses_reconnect" not in prepared_names()
    assert read.rows(["Autumn"]) == [(courses[1].pk, "Autumn")]
    assert "balint_test_courses_reconnect" in prepared_names()


def test_threads_each_prepare_on_their_own_connection(transactional_db):
    """Each thread has its own connection (a live server's, a threaded
    worker's): what one thread prepared says nothing about another's."""
    on_postgresql()
    read = Prepared("test_threads", "SELECT %s * 2")
    results, errors = [], []
    turn = [threading.Event() for _ in range(4)]

    def use(first: int, second: int):
        try:
            turn[first].wait(10)
            results.append(read.rows([first]))
            turn[first + 1].set()
            turn[second].wait(10)
            results.append(read.rows([second]))  # after the other thread's calls
            if second + 1 < len(turn):
                turn[second + 1].set()
        except Exception as problem:  # noqa: BLE001 - reported below
            errors.append(problem)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=use, args=(0, 2)), threading.Thread(target=use, args=(1, 3))]
    for thread in threads:
        thread.start()
    turn[0].set()
    for thread in threads:
        thread.join(20)
    assert errors == []
    assert results == [[(0,)], [(2,)], [(4,)], [(6,)]]


def test_a_first_call_that_failed_after_preparing_does_not_prepare_twice():
    on_postgresql()
    read = Prepared("test_divide", "SELECT 10 / %s")
    with pytest.raises(DatabaseError, match="division by zero"), transaction.atomic():
        read.rows([0])  # PREPARE took, EXECUTE failed: whether it took is asked next time
    assert "balint_test_divide" in prepared_names()
    assert read.rows([5]) == [(2,)]
    assert read.rows([2]) == [(5,)]


def test_a_first_call_in_a_failed_transaction_prepares_on_the_next():
    on_postgresql()
    read = Prepared("test_after_abort", "SELECT %s + 1")
    with pytest.raises(DatabaseError), transaction.atomic():
        with pytest.raises(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")
        read.rows([1])  # refused: the transaction is aborted, nothing was prepared
    assert "balint_test_after_abort" not in prepared_names()
    assert read.rows([1]) == [(2,)]
    assert "balint_test_after_abort" in prepared_names()
