"""The walking skeleton end to end: API -> Kafka -> worker (ODBC SQLite ->
PostgreSQL) -> Kafka -> collector -> MongoDB -> API."""
import psycopg

from conftest import PG_ODBC
from datasets import DEST_DDL, QUERY, make_sqlite_origin, pg_checksum, sqlite_checksum

ROWS = 10_000


def setup_job(api, pg, tmp_path, table, rows=ROWS):
    origin = str(tmp_path / "origin.db")
    make_sqlite_origin(origin, rows)
    pg.execute(psycopg.sql.SQL("DROP TABLE IF EXISTS {}").format(psycopg.sql.Identifier(table)))
    pg.execute(DEST_DDL.format(table=table))
    src = api.create("/api/v1/connections", {"name": "origin sqlite",
                                              "odbc": f"Driver=SQLite3;Database={origin}"})
    dst = api.create("/api/v1/connections", {"name": "dest pg", "odbc": PG_ODBC})
    project = api.create("/api/v1/projects", {"name": "skeleton", "active": True,
                                              "origin_connection_id": src["id"],
                                              "destination_connection_id": dst["id"]})
    job = api.create(f"/api/v1/projects/{project['id']}/jobs",
                     {"name": "copy accounts", "kind": "sql_transfer", "query": QUERY,
                      "destination_table": table})
    return origin, src, dst, project, job


def test_sql_transfer_end_to_end(api, pg, mongo_db, tmp_path):
    origin, src, dst, project, job = setup_job(api, pg, tmp_path, "accounts_copy")

    # Passwords are stored for the worker but never shown back.
    assert dst["odbc"].endswith("UID=convutell;PWD=********")
    status, shown, _ = api.get(f"/api/v1/connections/{dst['id']}")
    assert status == 200 and shown == dst
    stored = mongo_db.connections.find_one({"_id": dst["id"]})
    assert stored["odbc_sealed"].startswith("v1:")
    assert "PWD=convutell" not in str(stored)  # sealed at rest, not just hidden

    status, run, headers = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202, run
    assert run["status"] == "queued" and run["job_id"] == job["id"]
    assert headers["Location"] == f"/api/v1/runs/{run['run_id']}"

    done = api.wait_run(run["run_id"])
    assert done["status"] == "succeeded", done
    assert done["rows_read"] == ROWS and done["rows_written"] == ROWS
    assert done["error"] is None
    for key in ("queued_at", "started_at", "finished_at"):
        assert done[key].endswith("Z"), (key, done)
    assert done["queued_at"] <= done["started_at"] <= done["finished_at"]

    # Every row and every column arrived unchanged.
    expected = sqlite_checksum(origin)
    assert expected[0] == ROWS
    assert pg_checksum(pg, "accounts_copy") == expected

    # MongoDB holds exactly one run record and its three events.
    assert mongo_db.runs.count_documents({"_id": run["run_id"]}) == 1
    events = list(mongo_db.events.find({"run_id": run["run_id"]}).sort("time", 1))
    assert [e["type"] for e in events] == ["run.queued", "run.started", "run.succeeded"]
    assert events[2]["rows_written"] == ROWS
    status, listed, _ = api.get(f"/api/v1/runs/{run['run_id']}/events")
    assert status == 200
    assert [e["id"] for e in listed["events"]] == [e["_id"] for e in events]


def test_failed_transfer_is_recorded(api, pg, mongo_db, tmp_path):
    """A destination table that does not exist fails the run with the database's
    reason, and nothing is half-written anywhere."""
    origin, src, dst, project, job = setup_job(api, pg, tmp_path, "accounts_fail", rows=50)
    pg.execute("DROP TABLE accounts_fail")
    status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    done = api.wait_run(run["run_id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "destination_prepare"
    assert "accounts_fail" in done["error"]["message"]
    assert done["rows_written"] == 0
    assert "42P01" in done["error"]["message"]  # PostgreSQL's undefined_table
    types = sorted(e["type"] for e in mongo_db.events.find({"run_id": run["run_id"]}))
    assert types == ["run.failed", "run.queued", "run.started"]
