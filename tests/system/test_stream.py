"""A run followed live: GET /runs/{id}/stream as Server-Sent Events, from the
real worker's progress and log lines to the run's end, after which the
stream ends; resumed with Last-Event-ID; at most CONVUTELL_STREAMS at once."""
import http.client
import json
import time

from conftest import HTTP_PORT, PG_ODBC, bearer
from test_http_edges import start_limited
from test_load_modes import make_job


def read_stream(port, run_id, headers=None, timeout=60):
    """Every event of the stream until it ends: (id, type, data) each."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", f"/api/v1/runs/{run_id}/stream", headers=dict(bearer(), **(headers or {})))
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    assert resp.headers["Content-Type"] == "text/event-stream"
    events, current = [], {}
    started = time.time()
    for raw in resp:
        line = raw.decode().rstrip("\n")
        if not line:
            if current:
                events.append((current.get("id"), current["event"], json.loads(current["data"])))
            current = {}
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        current[key] = value
        assert time.time() - started < timeout
    conn.close()
    return events


def test_a_transfer_streams_progress_and_ends(api, pg):
    pg.execute("DROP TABLE IF EXISTS streamed")
    job = make_job(api, PG_ODBC, PG_ODBC, "streamed",
                   query="SELECT g AS id, md5(g::text) AS label FROM generate_series(1, 20000) g "
                         "WHERE g % 1000 <> 0 OR pg_sleep(0.1) IS NOT NULL")
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202, body
    events = read_stream(HTTP_PORT, body["run_id"])
    kinds = [kind for _, kind, _ in events]
    statuses = [data["status"] for _, kind, data in events if kind == "run"]
    assert statuses[0] in ("queued", "running") and statuses[-1] == "succeeded", statuses
    assert statuses == sorted(set(statuses), key=statuses.index)  # each change once
    progress = [data["rows_read"] for _, kind, data in events if kind == "progress"]
    assert progress and progress == sorted(progress) and progress[-1] <= 20000, progress
    assert "run.started" in [data["type"] for _, kind, data in events if kind == "event"]
    assert kinds[-1] == "end" and events[-1][2] == {"status": "succeeded"}
    assert pg.execute("SELECT count(*) FROM streamed").fetchone() == (20000,)
    # Every stored event of the run came once, in order, with its id.
    stored = [(e["id"], e["type"]) for e in api.get(
        f"/api/v1/runs/{body['run_id']}/events?limit=1000")[1]["events"]]
    assert [(i, d["type"]) for i, kind, d in events if i] == stored
    # Resumed after the second event: the rest only.
    again = read_stream(HTTP_PORT, body["run_id"], {"Last-Event-ID": stored[1][0]})
    assert [i for i, _, _ in again if i] == [i for i, _ in stored[2:]]
    assert again[-1][1] == "end"
    pg.execute("DROP TABLE streamed")


def test_streams_are_bounded(api, services):
    port = start_limited(services, CONVUTELL_STREAMS="1")
    try:
        job = api.create(f"/api/v1/projects/{make_job(api, PG_ODBC, PG_ODBC, 'x')['project_id']}"
                         "/jobs", {"name": "slow", "kind": "sql", "statements": "SELECT pg_sleep(3)"})
        status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
        first = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        first.request("GET", f"/api/v1/runs/{body['run_id']}/stream", headers=bearer())
        assert first.getresponse().status == 200
        second = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        second.request("GET", f"/api/v1/runs/{body['run_id']}/stream", headers=bearer())
        refused = second.getresponse()
        assert (refused.status, refused.headers["Retry-After"]) == (503, "5")
        assert json.loads(refused.read())["error"]["message"].startswith(
            "this API has 1 run streams open, its limit (CONVUTELL_STREAMS)")
        first.close()
        api.wait_run(body["run_id"])
        deadline = time.time() + 10
        while True:  # the first stream's slot is free once its connection is gone
            events = None
            try:
                events = read_stream(port, body["run_id"], timeout=10)
            except AssertionError:
                assert time.time() < deadline
                time.sleep(0.2)
            if events:
                break
        assert events[-1] == (None, "end", {"status": "succeeded"})
    finally:
        assert services.stop("api-limited") == 0
