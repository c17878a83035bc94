"""Progress reports, the per-job time limit and cancelling a running transfer:
both stops roll the destination back and end the run with its own status."""
import time

import pytest

from conftest import PG_ODBC
from test_load_modes import make_job

# 5,000,000 rows streamed from a 1,000,000-row table: long enough to stop midway.
QUERY = ("SELECT s.id, s.label, k.k FROM ctl_src s "
         "CROSS JOIN (VALUES (1), (2), (3), (4), (5)) AS k(k)")


@pytest.fixture(scope="module")
def source(pg_module):
    pg_module.execute("DROP TABLE IF EXISTS ctl_src")
    pg_module.execute("CREATE TABLE ctl_src AS SELECT g AS id, md5(g::text) AS label "
                      "FROM generate_series(1, 1000000) g")


@pytest.fixture(scope="module")
def pg_module():
    import psycopg
    from conftest import PG_DSN
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        yield conn


def start(api, pg, table, **options):
    pg.execute(f"DROP TABLE IF EXISTS {table}")
    job = make_job(api, PG_ODBC, PG_ODBC, table, query=QUERY, **options)
    status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    return run["run_id"]


def wait_rows(api, run_id, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, doc, _ = api.get(f"/api/v1/runs/{run_id}")
        if doc.get("rows_read", 0) > 0 and doc["status"] == "running":
            return doc
        time.sleep(0.05)
    raise AssertionError(f"no progress on {run_id}: {doc}")


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
    running = wait_rows(api, run_id)
    assert running["rows_per_second"] > 0, running
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
