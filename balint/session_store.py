"""Database sessions that remember when their row expires, for the idle timeout.

A session ends SESSION_COOKIE_AGE seconds after it was last saved. Saving it
on every request (SESSION_SAVE_EVERY_REQUEST) would make that an idle timeout,
at the cost of a write on every request; instead `IdleSessionRefreshMiddleware`
saves it again only once the stored expiry is a few minutes old, which it can
tell from `stored_expiry` without another query.

Every signed-in request reads its session, so the read is a prepared
statement (`balint.rawsql.Prepared`) rather than an ORM query: building the
query cost more than PostgreSQL spent answering it. It asks what Django's
database backend asks: the row with this key that has not expired.
"""

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.db import connection
from django.utils import timezone

from .rawsql import Prepared, db_datetime

LIVE_SESSION = Prepared(
    "live_session",
    f"SELECT session_data, expire_date FROM {Session._meta.db_table} WHERE session_key = %s AND expire_date > %s",
)


class SessionStore(db.SessionStore):
    #: When the stored row expires, as read with the session; None for a new or unknown session.
    stored_expiry = None

    def _get_session_from_db(self):
        rows = LIVE_SESSION.rows([self.session_key, connection.ops.adapt_datetimefield_value(timezone.now())])
        if not rows:
            self._session_key = None  # as Django's: an unknown or expired key is forgotten
            self.stored_expiry = None
            return None
        data, expires = rows[0]
        self.stored_expiry = db_datetime(expires)
        return Session(session_key=self.session_key, session_data=data, expire_date=self.stored_expiry)

    async def _aget_session_from_db(self):
        row = await super()._aget_session_from_db()
        self.stored_expiry = row.expire_date if row is not None else None
        return row
