"""Batched runs (batch_rows + checkpoint_column): each batch commits with its
checkpoint, batches never split rows that share a checkpoint value, and a run
whose worker dies resumes after the last committed batch instead of starting
over, into PostgreSQL (COPY) and MariaDB (LOAD DATA) alike."""
import signal
import sqlite3
import time

import pytest

from conftest import MARIADB_ODBC, PG_ODBC, milestones
from test_load_modes import make_job, run
from test_matrix import Side

SUM = ("SELECT count(*), sum(('x' || substr(md5(row(t.*)::text), 1, 15))::bit(60)::bigint) "
       "FROM {} t")


def test_batches_commit_apart_and_keep_shared_values_together(api, pg):
    """10,500 rows, 7 per checkpoint value, batches of 1,000: every batch is its
    own transaction (its own xmin), holds at least 1,000 rows, and no value is
    split between two batches."""
    pg.execute("DROP TABLE IF EXISTS batch_src")
    pg.execute("DROP TABLE IF EXISTS batch_dst")
    pg.execute("CREATE TABLE batch_src AS SELECT g AS id, g / 7 AS grp, md5(g::text) AS label "
               "FROM generate_series(0, 10499) g")
    job = make_job(api, PG_ODBC, PG_ODBC, "batch_dst", query="SELECT id, grp, label FROM batch_src",
                   batch_rows=1000, checkpoint_column="grp")
    assert (job["batch_rows"], job["checkpoint_column"]) == (1000, "grp")
    done = run(api, job)
    assert (done["status"], done["rows_read"], done["rows_written"]) == (
        "succeeded", 10500, 10500), done
    assert pg.execute(SUM.format("batch_dst")).fetchone() == \
        pg.execute(SUM.format("batch_src")).fetchone()
    batches = pg.execute("SELECT min(grp), max(grp), count(*) FROM batch_dst "
                         "GROUP BY xmin::text ORDER BY 1").fetchall()
    # Cut at the first new value after 1,000 rows: 1,001 rows (0..1000, grp 0..142).
    assert batches[0] == (0, 142, 1001)
    assert len(batches) == 11 and sum(b[2] for b in batches) == 10500
    for (_, hi, n), (lo, _, _) in zip(batches, batches[1:]):
        assert hi < lo and n >= 1000
    assert pg.execute("SELECT count(*) FROM convutell_checkpoint WHERE run_id = %s",
                      (done["id"],)).fetchone() == (0,)
    assert pg.execute("SELECT rows_written FROM convutell_ledger WHERE run_id = %s",
                      (done["id"],)).fetchone() == (10500,)


def test_batches_need_copy_or_load_data(api, tmp_path):
    job = make_job(api, PG_ODBC, f"Driver=SQLite3;Database={tmp_path}/d.db", "never",
                   query="SELECT 1 AS id", batch_rows=1000, checkpoint_column="id")
    done = run(api, job)
    assert (done["status"], done["error"]) == ("failed", {
        "code": "destination_prepare",
        "message": 'batch_rows needs load_method "copy" or "load_data" (a PostgreSQL or '
                   'MariaDB destination)'})


def test_batches_refuse_null_checkpoints(api, pg, tmp_path):
    origin = str(tmp_path / "o.db")
    con = sqlite3.connect(origin)
    con.execute("CREATE TABLE t (id INTEGER, grp INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, None if i == 5 else i) for i in range(3000)])
    con.commit()
    con.close()
    pg.execute("DROP TABLE IF EXISTS batch_null")
    job = make_job(api, f"Driver=SQLite3;Database={origin}", PG_ODBC, "batch_null",
                   query="SELECT id, grp FROM t", batch_rows=1000, checkpoint_column="grp")
    done = run(api, job)
    assert (done["status"], done["error"]) == ("failed", {
        "code": "origin_fetch",
        "message": "checkpoint column grp is NULL in a row; batches need a value in every row"})
    assert pg.execute("SELECT count(*) FROM batch_null").fetchone() == (0,)


@pytest.mark.parametrize("dest", ["postgres", "mariadb"])
def test_killed_batched_run_resumes(api, pg, services, mongo_db, tmp_path, dest):
    rows = 1_000_000
    src_table, dst_table = "resume_src", f"resume_dst_{dest}"
    pg.execute(f"DROP TABLE IF EXISTS {src_table}")
    pg.execute(f"CREATE TABLE {src_table} AS SELECT g AS id, md5(g::text) AS label "
               f"FROM generate_series(1, {rows}) g")
    dst = Side(dest, tmp_path)
    dst.drop(dst_table)
    job = make_job(api, PG_ODBC, dst.odbc, dst_table, query=f"SELECT id, label FROM {src_table}",
                   batch_rows=100_000, checkpoint_column="id")
    status, queued, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    run_id = queued["run_id"]

    def committed():
        try:
            got = dst.execute("SELECT max(batch) FROM convutell_checkpoint WHERE run_id = %s",
                              (run_id,))
        except Exception:  # the worker has not created the table yet
            return 0
        return got[0][0] or 0

    deadline = time.time() + 120
    while committed() < 2:  # two batches in: kill it mid-run
        assert time.time() < deadline, "no batch committed"
        time.sleep(0.02)
    proc = services.procs.pop("worker")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    batches = committed()
    kept = dst.execute(f"SELECT count(*), min(id), max(id) FROM {dst_table}")[0]
    assert kept[0] >= 200_000 and kept[0] % 100_000 == 0 and kept[1:] == (1, kept[0]), kept
    assert batches == kept[0] // 100_000
    services.start("worker")

    done = api.wait_run(run_id, timeout=240)
    assert (done["status"], done["rows_written"]) == ("succeeded", rows), done
    assert done["rows_read"] == rows - kept[0], done  # the resumed attempt read only the rest
    got = dst.execute(f"SELECT count(*), count(DISTINCT id), sum(id) FROM {dst_table}")[0]
    assert tuple(int(v) for v in got) == (rows, rows, rows * (rows + 1) // 2)
    # The labels too: the first 32 bits of each one's md5, summed, on both sides.
    pg_sum = "sum(('x' || substr(md5(label), 1, 8))::bit(32)::bigint)"
    label_sum = {"postgres": pg_sum, "mariadb": "sum(conv(substr(md5(label), 1, 8), 16, 10))"}
    assert int(dst.execute(f"SELECT {label_sum[dest]} FROM {dst_table}")[0][0]) == \
        pg.execute(f"SELECT {pg_sum} FROM {src_table}").fetchone()[0]
    assert dst.execute("SELECT count(*) FROM convutell_checkpoint WHERE run_id = %s",
                       (run_id,))[0][0] == 0
    events = [e["type"] for e in mongo_db.events.find(milestones(run_id)).sort("time", 1)]
    assert events == ["run.queued", "run.started", "run.started", "run.succeeded"]
    assert f"run {run_id} resumed after {kept[0]} rows committed by earlier attempts" in \
        services.log("worker")
