"""The walking skeleton end to end: API -> Kafka -> worker (ODBC SQLite ->
PostgreSQL) -> Kafka -> collector -> MongoDB -> API."""
import sqlite3
import time

import psycopg

from conftest import PG_ODBC, kcat, milestones
from datasets import (DEST_DDL, ORIGIN_DDL, QUERY, checksum, make_sqlite_origin, pg_checksum,
                      sqlite_checksum)

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
    # The first project made with it took it as its own.
    assert status == 200 and shown == dict(dst, project_id=project["id"])
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

    # MongoDB holds exactly one run record, its start and its end, and its three events.
    assert mongo_db.runs.count_documents({"_id": run["run_id"]}) == 1
    assert mongo_db.runs.count_documents({"run_id": run["run_id"]}) == 3
    events = list(mongo_db.events.find(milestones(run["run_id"])).sort("time", 1))
    assert [e["type"] for e in events] == ["run.queued", "run.started", "run.succeeded"]
    assert events[2]["rows_written"] == ROWS
    status, listed, _ = api.get(f"/api/v1/runs/{run['run_id']}/events")
    assert status == 200
    assert [e["id"] for e in listed["events"] if e["type"] != "run.progress"] == \
        [e["_id"] for e in events]


def test_failed_transfer_is_recorded(api, pg, mongo_db, tmp_path):
    """A destination table that lacks a column of the query fails the run before
    any row moves, with the reason, and the table stays as it was."""
    origin, src, dst, project, job = setup_job(api, pg, tmp_path, "accounts_fail", rows=50)
    pg.execute("ALTER TABLE accounts_fail DROP COLUMN note")
    pg.execute("INSERT INTO accounts_fail (id) VALUES (-1)")
    status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    done = api.wait_run(run["run_id"])
    assert done["status"] == "failed"
    assert done["error"] == {"code": "destination_schema", "message":
                             'destination table accounts_fail has no column "note" '
                             "(the query's result names it)"}
    assert (done["rows_read"], done["rows_written"]) == (0, 0)
    assert pg.execute("SELECT id FROM accounts_fail").fetchall() == [(-1,)]
    types = sorted(e["type"] for e in mongo_db.events.find(milestones(run["run_id"])))
    assert types == ["run.failed", "run.queued", "run.started"]


def test_job_delivered_twice_loads_once(api, pg, mongo_db, services, tmp_path):
    """A job message delivered again after its run ended (a worker died after
    reporting, before storing its offset; another system sent it twice) finds
    the attempt over in the run's lease and is skipped: nothing is loaded or
    reported twice. (A worker that died after committing but before reporting
    leaves a live lease; the next delivery takes it over when it runs out and
    finds the run in the destination's ledger: test_crash.py.)"""
    origin, src, dst, project, job = setup_job(api, pg, tmp_path, "accounts_twice", rows=2000)
    status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    assert api.wait_run(run["run_id"])["rows_written"] == 2000

    messages = kcat("-C", "-t", "convutell.jobs", "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n")
    mine = [line.split("\t", 1) for line in messages.decode().splitlines()
            if run["run_id"] in line]
    assert len(mine) == 1
    key, payload = mine[0]
    kcat("-P", "-t", "convutell.jobs", "-k", key, data=payload.encode())

    skipped = (f"run {run['run_id']} attempt 1: already ended or moved past; this delivery is "
               "a duplicate and is skipped")
    deadline = time.time() + 60
    while skipped not in services.log("worker"):
        assert time.time() < deadline, services.log("worker")
        time.sleep(0.25)
    types = sorted(e["type"] for e in mongo_db.events.find(milestones(run["run_id"])))
    assert types == ["run.queued", "run.started", "run.succeeded"]
    assert pg_checksum(pg, "accounts_twice") == sqlite_checksum(origin)
    assert pg.execute("SELECT rows_written FROM convutell_ledger WHERE run_id = %s",
                      (run["run_id"],)).fetchall() == [(2000,)]
    status, doc, _ = api.get(f"/api/v1/runs/{run['run_id']}")
    assert (doc["status"], doc["rows_written"]) == ("succeeded", 2000)


def test_sqlite_destination_over_odbc(api, tmp_path):
    """A destination that is not PostgreSQL is loaded with INSERT parameter
    arrays over ODBC; the ledger lives there too."""
    origin = str(tmp_path / "origin.db")
    dest = str(tmp_path / "dest.db")
    make_sqlite_origin(origin, 3000)
    con = sqlite3.connect(dest)
    con.execute(ORIGIN_DDL.replace("accounts", "accounts_copy"))
    con.close()
    src = api.create("/api/v1/connections", {"name": "o", "odbc": f"Driver=SQLite3;Database={origin}"})
    dst = api.create("/api/v1/connections", {"name": "d", "odbc": f"Driver=SQLite3;Database={dest}"})
    project = api.create("/api/v1/projects", {"name": "sqlite to sqlite",
                                              "origin_connection_id": src["id"],
                                              "destination_connection_id": dst["id"]})
    job = api.create(f"/api/v1/projects/{project['id']}/jobs",
                     {"name": "copy", "kind": "sql_transfer", "query": QUERY,
                      "destination_table": "accounts_copy"})
    status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    done = api.wait_run(run["run_id"])
    assert (done["status"], done["rows_written"]) == ("succeeded", 3000), done
    con = sqlite3.connect(dest)
    copied = checksum(con.execute(QUERY.replace("accounts", "accounts_copy")).fetchall())
    ledger = con.execute("SELECT run_id, rows_written FROM convutell_ledger").fetchall()
    con.close()
    assert copied == sqlite_checksum(origin)
    assert ledger == [(run["run_id"], 3000)]
