"""The native paths around ODBC: the per-job load method, LOAD DATA LOCAL INFILE
refusing what MariaDB would only warn about, a redelivered run into MariaDB,
and stopping an origin query that is slow before its first row."""
import re
import subprocess
import time

import pytest

from conftest import MARIADB_ODBC, MARIADB_PORT, PG_ODBC, PG_PORT, deliver_again, milestones
from test_load_modes import make_job, run
from test_matrix import Side
from test_sql_jobs import sql_job


def test_load_method_is_validated(api, tmp_path):
    src = api.create("/api/v1/connections", {"name": "o", "odbc": PG_ODBC})
    project = api.create("/api/v1/projects", {"name": "m", "origin_connection_id": src["id"],
                                              "destination_connection_id": src["id"]})
    status, body, _ = api.post(f"/api/v1/projects/{project['id']}/jobs", {
        "name": "j", "kind": "sql_transfer", "query": "SELECT 1 AS a",
        "destination_table": "t", "load_method": "bulk"})
    assert (status, body) == (422, {"error": {
        "code": "invalid_field", "field": "load_method",
        "message": 'load_method: must be "auto", "copy", "insert" or "load_data", not "bulk"'}})


@pytest.mark.parametrize("method,dest,message", [
    ("copy", "mariadb", 'load_method "copy" needs a PostgreSQL destination (psqlODBC driver)'),
    ("load_data", "sqlite",
     'load_method "load_data" needs a MariaDB destination (MariaDB ODBC driver)'),
])
def test_load_method_must_fit_the_destination(api, tmp_path, method, dest, message):
    dst = Side(dest, tmp_path)
    job = make_job(api, PG_ODBC, dst.odbc, "never_created", query="SELECT 1 AS a",
                   load_method=method)
    done = run(api, job)
    assert (done["status"], done["error"]) == (
        "failed", {"code": "destination_prepare", "message": message}), done


@pytest.mark.parametrize("bad_row,first_warning", [
    ("(1, 'abc')", "Warning 1366: Incorrect integer value: 'abc' for column"),
    ("(1, '123456789012')", "Warning 1264: Out of range value for column"),
    ("(7, '5')", "Warning 1062: Duplicate entry '7' for key 'PRIMARY'"),
])
def test_load_data_fails_where_mariadb_would_only_warn(api, tmp_path, bad_row, first_warning):
    """LOAD DATA LOCAL makes errors warnings and skips rows; Convutell turns
    each warning back into a failed run, and the table keeps what it had."""
    dst = Side("mariadb", tmp_path)
    dst.drop("strict_out")
    dst.execute("CREATE TABLE strict_out (id int PRIMARY KEY, n int)")
    dst.execute("INSERT INTO strict_out VALUES (7, 70), (8, 80)")
    job = make_job(api, PG_ODBC, MARIADB_ODBC, "strict_out",
                   query=f"SELECT * FROM (VALUES (2, '2'), {bad_row}) AS q(id, n)")
    done = run(api, job)
    assert (done["status"], done["error"]["code"]) == ("failed", "destination_insert"), done
    assert first_warning in done["error"]["message"], done
    assert done["error"]["message"].startswith("1 warning(s)"), done
    assert dst.execute("SELECT id, n FROM strict_out ORDER BY id") == ((7, 70), (8, 80))
    assert dst.execute("SELECT count(*) FROM convutell_ledger WHERE run_id = %s",
                       (done["id"],)) == ((0,),)


def test_job_delivered_twice_into_mariadb_loads_once(api, mongo_db, services, tmp_path):
    src, dst = Side("postgres", tmp_path), Side("mariadb", tmp_path)
    src.execute("DROP TABLE IF EXISTS twice_src")
    src.execute("CREATE TABLE twice_src AS SELECT g AS id, md5(g::text) AS label "
                "FROM generate_series(1, 5000) g")
    dst.drop("twice_out")
    job = make_job(api, PG_ODBC, MARIADB_ODBC, "twice_out", query="SELECT * FROM twice_src")
    status, queued, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    run_id = queued["run_id"]
    assert api.wait_run(run_id)["rows_written"] == 5000

    deliver_again(services, run_id)
    types = sorted(e["type"] for e in mongo_db.events.find(milestones(run_id)))
    assert types == ["run.queued", "run.started", "run.succeeded"]
    got = dst.execute("SELECT id, label FROM twice_out ORDER BY id")
    assert list(got) == src.execute("SELECT id, label FROM twice_src ORDER BY id")
    assert dst.execute("SELECT rows_written FROM convutell_ledger WHERE run_id = %s",
                       (run_id,)) == ((5000,),)


SLOW = {
    "postgres": "SELECT g AS n FROM generate_series(1, 3) g WHERE pg_sleep(60) IS NOT NULL",
    "mariadb": "SELECT 1 AS n FROM DUAL WHERE SLEEP(60) = 0",
}


@pytest.mark.parametrize("origin", ["postgres", "mariadb"])
def test_slow_first_row_times_out(api, tmp_path, origin):
    """The origin's query runs on the reader thread: the time limit stops it
    even though no row (and so no progress call after a block) ever came."""
    Side("postgres", tmp_path).execute("DROP TABLE IF EXISTS slow_out")
    job = make_job(api, Side(origin, tmp_path).odbc, PG_ODBC, "slow_out", query=SLOW[origin],
                   timeout_seconds=2)
    started = time.time()
    done = run(api, job)
    assert (done["status"], done["error"]) == ("timed_out", {
        "code": "timed_out", "message": "stopped after 0 rows: over the job's limit of 2 s"})
    assert time.time() - started < 15


def test_slow_first_row_cancelled(api, tmp_path):
    dst = Side("mariadb", tmp_path)
    dst.drop("slow_cancel_out")
    job = make_job(api, PG_ODBC, MARIADB_ODBC, "slow_cancel_out", query=SLOW["postgres"])
    status, queued, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    api.wait_running(queued["run_id"])
    asked = time.time()
    status, _, _ = api.post(f"/api/v1/runs/{queued['run_id']}/cancel")
    assert status == 202
    done = api.wait_run(queued["run_id"], timeout=30)
    assert (done["status"], done["error"]) == ("cancelled", {
        "code": "cancelled", "message": "stopped after 0 rows: cancelled on request"})
    assert time.time() - asked < 10


def worker_sockets(services, port):
    """The worker's TCP connections to 127.0.0.1:port, as `ss` shows them with
    their timers: {local port: keepalive timer text or None}."""
    pid = services.procs["worker"].pid
    out = subprocess.run(["ss", "-tnopH", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    found = {}
    for line in out.splitlines():
        if f"pid={pid}," not in line:
            continue
        timer = re.search(r"timer:\(keepalive,([0-9.]+)(ms|sec|min)", line)
        found[line.split()[2]] = timer and float(timer[1]) * {"ms": 0.001, "sec": 1,
                                                               "min": 60}[timer[2]]
    return found


def test_database_sockets_give_up_on_a_silent_server(api, services, tmp_path):
    """A worker's connections to PostgreSQL (libpq and psqlODBC) and to MariaDB
    (libmariadb and its ODBC driver) probe an idle server within 30 s
    (lib/cv_tcp.h): a host that vanished ends a job's connection in seconds,
    not hours."""
    dst = Side("mariadb", tmp_path)
    dst.drop("keepalive_out")
    job = make_job(api, PG_ODBC, MARIADB_ODBC, "keepalive_out",
                   query="SELECT 1 AS id FROM pg_sleep(6)")
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202, body
    api.wait_running(body["run_id"])
    time.sleep(2)
    pg_socks = worker_sockets(services, PG_PORT)
    maria_socks = worker_sockets(services, MARIADB_PORT)
    print(f"worker sockets: postgresql {pg_socks}, mariadb {maria_socks}")
    assert pg_socks and all(t is not None and t <= 30 for t in pg_socks.values()), pg_socks
    assert len(maria_socks) >= 2 and all(t is not None and t <= 30
                                         for t in maria_socks.values()), maria_socks
    assert api.wait_run(body["run_id"])["status"] == "succeeded"
    assert dst.execute("SELECT id FROM keepalive_out") == ((1,),)

    # A sql job's statements go through psqlODBC; its connection is kept for
    # the next job (or was kept from an earlier one), and probes as libpq's do.
    done = run(api, sql_job(api, "SELECT 1"))
    assert done["status"] == "succeeded", done
    kept = worker_sockets(services, PG_PORT)
    print(f"worker sockets after a sql job: postgresql {kept}")
    assert kept and all(t is not None and t <= 30 for t in kept.values()), kept
