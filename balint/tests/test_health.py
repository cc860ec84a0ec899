"""/healthz: JSON with the database and broker status; 503 when not usable."""

import socket


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthz_reports_database_and_in_process_tasks(client, db, settings):
    settings.REDIS_URL = ""
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["broker"] == {"ok": True, "detail": "in-process (no broker configured)"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_is_503_when_the_broker_is_unreachable(client, db, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False


def test_healthz_refuses_post(client, db):
    assert client.post("/healthz").status_code == 405
