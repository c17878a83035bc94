"""The worker killed with SIGKILL in the middle of a 1,000,000-row transfer,
three times in a row: Kafka redelivers the job, the destination rolled back each
half-done load, and after the retries it holds exactly the origin's rows, once.
The run's record shows every attempt."""
import signal
import time

ROWS = 1_000_000
SUM = ("SELECT count(*), sum(('x' || substr(md5(row(t.*)::text), 1, 15))::bit(60)::bigint) "
       "FROM {} t")


def copy_backends(pg):
    """Server pids of the sessions copying into crash_dst right now."""
    return {r[0] for r in pg.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'convutell-worker' "
        "AND state = 'active' AND query LIKE 'COPY \"crash_dst\"%'").fetchall()}


def test_worker_killed_three_times(api, pg, services, mongo_db):
    from test_load_modes import make_job
    from conftest import PG_ODBC, milestones

    pg.execute("DROP TABLE IF EXISTS crash_src")
    pg.execute("DROP TABLE IF EXISTS crash_dst")
    pg.execute("CREATE TABLE crash_src AS SELECT g AS id, md5(g::text) AS label, "
               "(g * 0.01)::numeric(12,2) AS amount, now()::timestamp(3) AS at "
               f"FROM generate_series(1, {ROWS}) g")
    job = make_job(api, PG_ODBC, PG_ODBC, "crash_dst",
                   query="SELECT id, label, amount, at FROM crash_src")
    status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202

    seen = set()
    for kill in range(3):
        deadline = time.time() + 120
        # A killed worker's session lingers until the server notices: wait for a new one.
        while not copy_backends(pg) - seen:
            assert time.time() < deadline, f"no COPY seen before kill {kill + 1}"
            time.sleep(0.05)
        seen |= copy_backends(pg)
        time.sleep(0.3)  # let some rows in
        proc = services.procs.pop("worker")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        # Nothing of the killed attempt is visible: its transaction died with it.
        assert pg.execute("SELECT count(*) FROM crash_dst").fetchone() == (0,)
        services.start("worker")

    done = api.wait_run(run["run_id"], timeout=240)
    assert (done["status"], done["rows_written"]) == ("succeeded", ROWS), done
    assert pg.execute(SUM.format("crash_dst")).fetchone() == \
        pg.execute(SUM.format("crash_src")).fetchone()
    assert pg.execute("SELECT count(*) FROM convutell_ledger WHERE run_id = %s",
                      (run["run_id"],)).fetchone() == (1,)
    events = list(mongo_db.events.find(milestones(run["run_id"])).sort("time", 1))
    assert [e["type"] for e in events] == ["run.queued"] + ["run.started"] * 4 + ["run.succeeded"]
    starts = [e["_id"] for e in events if e["type"] == "run.started"]
    status, doc, _ = api.get(f"/api/v1/runs/{run['run_id']}")
    # One entry per attempt: its first start (the take-overs of the same attempt are
    # the events above).
    assert [a["event_id"] for a in doc["attempts"]] == starts[:1], doc
