"""Django's ModelBackend, with the read every signed-in request makes of its
user prepared (`balint.rawsql.Prepared`).

Django's `get_user(request)` loads the session's user through the backend
that signed it in. The ORM spent about 0.3 ms building that query and its
object on each request, twice what PostgreSQL spent answering it; here the
same row is read as a prepared statement and made into the same User
(`Model.from_db`, as the ORM makes it: psycopg2 gives every column's value as
the ORM keeps it). On SQLite, whose raw rows carry timestamps as text, the
ORM reads it. Signing in, permissions and everything else are ModelBackend's.
"""

from django.contrib.auth import backends, get_user_model
from django.db import DEFAULT_DB_ALIAS, connection

from .rawsql import Prepared

User = get_user_model()
_FIELDS = [field.attname for field in User._meta.concrete_fields]
_COLUMNS = ", ".join(f'"{field.column}"' for field in User._meta.concrete_fields)
USER = Prepared("session_user", f'SELECT {_COLUMNS} FROM "{User._meta.db_table}" WHERE "{User._meta.pk.column}" = %s')


class ModelBackend(backends.ModelBackend):
    def get_user(self, user_id):
        if connection.vendor != "postgresql":
            return super().get_user(user_id)
        rows = USER.rows([user_id])
        if not rows:
            return None
        user = User.from_db(DEFAULT_DB_ALIAS, _FIELDS, rows[0])
        return user if self.user_can_authenticate(user) else None
