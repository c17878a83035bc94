"""Progress reports (with the origin's estimate of the rows to come), the
per-job time limit and cancelling a running transfer: both stops roll the
destination back and end the run with its own status."""
import sqlite3
import time

import pymysql
import pytest

from conftest import MARIADB_ODBC, MARIADB_PORT, PG_ODBC
from test_load_modes import make_job

# 5,000,000 rows streamed from a 1,000,000-row table: long enough to stop midway.
QUERY = ("SELECT s.id, s.label, k.k FROM ctl_src s "
         "CROSS JOIN (VALUES (1), (2), (3), (4), (5)) AS k(k)")


@pytest.fixture(scope="module")
def source(pg_module):
    pg_module.execute("DROP TABLE IF EXISTS ctl_src")
    pg_module.execute("CREATE TABLE ctl_src AS SELECT g AS id, md5(g::text) AS label "
                      "FROM generate_series(1, 1000000) g")
    pg_module.execute("ANALYZE ctl_src")  # the planner's estimate of QUERY: 5,000,000


@pytest.fixture(scope="module")
def pg_module():
    import psycopg
    from conftest import PG_DSN
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        yield conn


def start(api, pg, table, origin=PG_ODBC, query=QUERY, **options):
    pg.execute(f"DROP TABLE IF EXISTS {table}")
    job = make_job(api, origin, PG_ODBC, table, query=query, **options)
    status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    return run["run_id"]


def wait_rows(api, run_id, timeout=60, field="rows_read"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, doc, _ = api.get(f"/api/v1/runs/{run_id}")
        if doc.get(field, 0) > 0 and doc["status"] == "running":
            return doc
        assert doc["status"] in ("queued", "running"), doc
        time.sleep(0.05)
    raise AssertionError(f"no {field} on {run_id}: {doc}")


def expect_estimate(api, run_id, rows):
    """The run shows the origin's estimate while it goes; then it is cancelled."""
    running = wait_rows(api, run_id, field="rows_expected")
    assert running["rows_expected"] == rows, running
    status, body, _ = api.post(f"/api/v1/runs/{run_id}/cancel")
    assert status == 202, body
    assert api.wait_run(run_id, timeout=60)["status"] == "cancelled"


def test_timeout_rolls_back(api, pg, mongo_db, source):
    run_id = start(api, pg, "ctl_timeout", timeout_seconds=1)
    done = api.wait_run(run_id, timeout=60)
    assert done["status"] == "timed_out", done
    assert done["error"]["code"] == "timed_out"
    assert done["error"]["message"] == (
        f"stopped after {done['rows_read']} rows: over the job's limit of 1 s")
    assert 0 < done["rows_read"] < 5_000_000 and done["rows_written"] == 0
    assert pg.execute("SELECT count(*) FROM ctl_timeout").fetchone() == (0,)


def test_cancel_running_transfer(api, pg, mongo_db, source):
    run_id = start(api, pg, "ctl_cancel")
    running = wait_rows(api, run_id, field="rows_expected")
    assert running["rows_per_second"] > 0, running
    # PostgreSQL's planner: 1,000,000 analysed rows times five VALUES.
    assert 4_500_000 <= running["rows_expected"] <= 5_500_000, running
    status, body, _ = api.post(f"/api/v1/runs/{run_id}/cancel")
    assert (status, body) == (202, {"run_id": run_id, "status": "running",
                                    "cancel_requested": True})
    done = api.wait_run(run_id, timeout=60)
    assert done["status"] == "cancelled", done
    assert done["error"] == {"code": "cancelled", "message":
                             f"stopped after {done['rows_read']} rows: cancelled on request"}
    assert pg.execute("SELECT count(*) FROM ctl_cancel").fetchone() == (0,)
    status, body, _ = api.post(f"/api/v1/runs/{run_id}/cancel")
    assert (status, body["error"]) == (409, {
        "code": "run_finished", "message": f"run {run_id} has already finished (cancelled)"})
    progress = list(mongo_db.events.find({"run_id": run_id, "type": "run.progress"})
                    .sort("time", 1))
    reads = [e["rows_read"] for e in progress]
    assert len(reads) >= 1 and reads == sorted(reads) and reads[-1] <= done["rows_read"]
    assert all(e["rows_per_second"] > 0 for e in progress)


def test_estimate_from_sqlite_count(api, pg, tmp_path):
    """SQLite has no planner estimate: the worker counts the query's rows
    aside, on a connection of its own, while the transfer goes on."""
    origin = str(tmp_path / "big.db")
    con = sqlite3.connect(origin)
    con.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, label TEXT)")
    con.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                "WHERE i < 2000000) INSERT INTO big SELECT i, hex(randomblob(16)) FROM n")
    con.commit()
    con.close()
    run_id = start(api, pg, "ctl_sqlite", origin=f"Driver=SQLite3;Database={origin}",
                   query="SELECT id, label FROM big WHERE id % 4 <> 0")
    expect_estimate(api, run_id, 1_500_000)


def test_estimate_from_mariadb_plan(api, pg):
    """MariaDB's planner: EXPLAIN's rows of a one-table plan (exact for Aria's
    full scan)."""
    con = pymysql.connect(host="127.0.0.1", port=MARIADB_PORT, user="convutell",
                          password="convutell", database="convutell", autocommit=True)
    try:
        with con.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS ctl_big")
            cur.execute("CREATE TABLE ctl_big (id INT PRIMARY KEY, label CHAR(32)) ENGINE=Aria")
            cur.execute("INSERT INTO ctl_big SELECT seq, md5(seq) FROM seq_1_to_3000000")
    finally:
        con.close()
    run_id = start(api, pg, "ctl_maria", origin=MARIADB_ODBC, query="SELECT id, label FROM ctl_big")
    expect_estimate(api, run_id, 3_000_000)
