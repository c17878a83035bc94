"""Outages (make test-faults): the store stopped for a minute and the broker
SIGKILLed during a burst of runs. The API answers 503 while a dependency is
down, in seconds rather than hanging; every run it accepted reaches exactly
one final state, no row is loaded twice, and the services recover by
themselves. Replaying convutell.events from its start into the collector
changes no document count."""
import os
import signal
import subprocess
import threading
import time

import psycopg
import pytest

from conftest import PG_ODBC

pytestmark = pytest.mark.faults

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK = os.path.join(ROOT, "scripts", "stack")
FINAL = ("run.succeeded", "run.failed", "run.cancelled", "run.timed_out")
OUTAGE_SECONDS = 60


def stack(*args, timeout=180):
    return subprocess.run([STACK, *args], check=True, capture_output=True, timeout=timeout,
                          text=True).stdout


def counting_job(api, pg, table):
    """A sql job that adds one row per run: a run loaded twice shows as a row too many."""
    pg.execute(psycopg.sql.SQL("DROP TABLE IF EXISTS {}").format(psycopg.sql.Identifier(table)))
    pg.execute(psycopg.sql.SQL("CREATE TABLE {} (n serial, at timestamptz)").format(
        psycopg.sql.Identifier(table)))
    conn = api.create("/api/v1/connections", {"name": "c", "odbc": PG_ODBC})
    project = api.create("/api/v1/projects", {"name": table, "origin_connection_id": conn["id"],
                                              "destination_connection_id": conn["id"]})
    return api.create(f"/api/v1/projects/{project['id']}/jobs",
                      {"name": table, "kind": "sql",
                       "statements": f"INSERT INTO {table} (at) VALUES (now())"})


def submit(api, job, n, accepted, refused, threads=8):
    def one_thread(count):
        for _ in range(count):
            t = time.monotonic()
            status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
            took = time.monotonic() - t
            if status == 202:
                accepted.append(body["run_id"])
            else:
                refused.append((status, body["error"]["code"], took))
    workers = [threading.Thread(target=one_thread, args=(n // threads,)) for _ in range(threads)]
    for w in workers:
        w.start()
    return workers


def wait_final(mongo_db, run_ids, timeout):
    deadline = time.time() + timeout
    want = set(run_ids)
    while True:
        done = {e["run_id"] for e in mongo_db.events.find(
            {"type": {"$in": list(FINAL)}, "run_id": {"$in": list(want)}}, {"run_id": 1})}
        want -= done
        if not want:
            return
        assert time.time() < deadline, f"{len(want)} runs without a final state"
        time.sleep(1)


def assert_once(mongo_db, pg, table, run_ids):
    """Each run one final event, one success, and one row."""
    finals = {}
    # A late second report of an attempt's end is kept, marked (cv_runs.h): not the run's.
    for e in mongo_db.events.find({"type": {"$in": list(FINAL)},
                                   "run_id": {"$in": list(run_ids)},
                                   "superseded_by": {"$exists": False}}):
        finals.setdefault(e["run_id"], []).append(e["type"])
    assert len(finals) == len(run_ids)
    assert all(types == ["run.succeeded"] for types in finals.values()), \
        [t for t in finals.values() if t != ["run.succeeded"]][:5]
    rows = pg.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(
        psycopg.sql.Identifier(table))).fetchone()[0]
    assert rows == len(run_ids)
    runs = len(mongo_db.runs.distinct("run_id", {"run_id": {"$in": list(run_ids)}}))
    assert runs == len(run_ids)


def test_store_stopped_for_a_minute(api, services, mongo_db, pg):
    job = counting_job(api, pg, "outage_store")
    accepted, refused = [], []
    for t in submit(api, job, 200, accepted, refused):
        t.join()
    assert (len(accepted), refused) == (200, [])

    stack("kill", "ferretdb", "TERM")
    try:
        # While it is down: 503 in seconds, for a write and a read alike.
        t = time.monotonic()
        status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
        assert (status, body["error"]["code"]) == (503, "unavailable"), body
        assert time.monotonic() - t < 8
        status, body, _ = api.get(f"/api/v1/runs/{accepted[0]}")
        assert status == 503, body
        # The health routes answer from the API's probe (a ping a second).
        deadline = time.monotonic() + 10
        while (health := api.get("/api/v1/health"))[0] != 503:
            assert time.monotonic() < deadline, health
            time.sleep(0.2)
        assert health[1]["status"] == "degraded" and health[1]["mongodb"] != "ok", health
        time.sleep(OUTAGE_SECONDS)
    finally:
        stack("start", "ferretdb")

    more = []
    for t in submit(api, job, 200, more, refused):
        t.join()
    assert (len(more), refused) == (200, [])
    wait_final(mongo_db, accepted + more, 300)
    assert_once(mongo_db, pg, "outage_store", accepted + more)
    for name, proc in services.procs.items():
        assert proc.poll() is None, (name, services.log(name)[-2000:])


def test_broker_killed_during_a_burst(api, services, mongo_db, pg):
    """5,000 runs submitted by 8 clients; the broker SIGKILLed two seconds in
    and started again 10 s later. Runs refused meanwhile (503) never run;
    every accepted one runs once."""
    job = counting_job(api, pg, "outage_broker")
    accepted, refused = [], []
    workers = submit(api, job, 5000, accepted, refused)
    time.sleep(2)
    stack("kill", "kafka", "KILL")
    killed = time.monotonic()
    probes = []  # (seconds after the kill, seconds the answer took, status, body)
    try:
        while time.monotonic() - killed < 10:
            t = time.monotonic()
            status, body, _ = api.as_user("").get("/readyz")
            probes.append((t - killed, time.monotonic() - t, status, body))
            time.sleep(0.5)
    finally:
        stack("start", "kafka")
    # Readiness answers from the API's last probe at once, broker or not, and
    # says within seconds that the broker is gone (its pings wait 2 s).
    assert max(took for _, took, _, _ in probes) < 0.5, probes
    down = [(at, body) for at, _, status, body in probes if status == 503]
    assert down and down[0][0] < 6, probes
    assert down[-1][1]["status"] == "not ready" and down[-1][1]["mongodb"] == "ok", down[-1]
    assert down[-1][1]["kafka"] != "ok", down[-1]
    for t in workers:
        t.join()
    deadline = time.monotonic() + 60
    while api.as_user("").get("/readyz")[0] != 200:
        assert time.monotonic() < deadline, api.as_user("").get("/readyz")
        time.sleep(0.5)
    assert len(accepted) + len(refused) == 5000
    assert all((s, c) == (503, "unavailable") for s, c, _ in refused), refused[:5]
    # Bounded by the publish's 10 s and the store's 5 s, not a hang.
    assert max((took for _, _, took in refused), default=0) < 30
    wait_final(mongo_db, accepted, 600)
    time.sleep(5)
    # A run refused with 503 never runs. If its message reached the broker
    # after all (a timeout is not a refusal), its worker ends it as cancelled.
    stored = set(mongo_db.runs.distinct("run_id", {"job_id": job["id"]}))
    extra = stored - set(accepted)
    assert len(extra) <= len(refused)
    for run_id in extra:
        assert api.get(f"/api/v1/runs/{run_id}")[1]["status"] == "cancelled", run_id
    assert_once(mongo_db, pg, "outage_broker", accepted)
    for name, proc in services.procs.items():
        assert proc.poll() is None, (name, services.log(name)[-2000:])
    print(f"broker outage: {len(accepted)} accepted, {len(refused)} refused (longest "
          f"{max((t for _, _, t in refused), default=0):.1f} s), {len(extra)} of them cancelled")


def group_lag(group):
    out = stack("kafka-tool", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                "--bootstrap-server", os.environ["CONVUTELL_KAFKA_BOOTSTRAP"], "--describe",
                "--group", group)
    lags = [line.split()[5] for line in out.splitlines()
            if line.startswith(group) and len(line.split()) > 5]
    return sum(int(x) for x in lags if x.isdigit()), len(lags)


def test_replaying_events_changes_no_count(services, mongo_db):
    collections = ("runs", "events", "notifications", "active_runs", "queued_runs",
                   "rejected_events", "leases")
    # Nothing else moves meanwhile: no worker (a run left going by an earlier test
    # would end during the replay), and every event so far applied.
    assert services.stop("worker") == 0
    deadline = time.time() + 120
    while group_lag("convutell-collector")[0] > 0:
        assert time.time() < deadline
        time.sleep(1)
    before = {c: mongo_db[c].count_documents({}) for c in collections}
    assert before["events"] > 1000
    assert services.stop("collector") == 0
    stack("kafka-tool", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
          "--bootstrap-server", os.environ["CONVUTELL_KAFKA_BOOTSTRAP"], "--reset-offsets",
          "--to-earliest", "--group", "convutell-collector", "--topic", "convutell.events",
          "--execute")
    lag, parts = group_lag("convutell-collector")
    assert parts == 3 and lag > 1000, (lag, parts)
    services.start("collector")
    deadline = time.time() + 300
    while group_lag("convutell-collector")[0] > 0:
        assert time.time() < deadline
        time.sleep(2)
    after = {c: mongo_db[c].count_documents({}) for c in collections}
    services.start("worker")
    assert after == before


def frozen_story(mongo_db, services, odd):
    """What happened to the runs that did not end once in success: their
    events, their lease and each service's log lines naming them."""
    lines = []
    for run_id in list(odd)[:5]:
        lines.append(f"run {run_id}: finals {odd[run_id]}")
        for e in mongo_db.events.find({"run_id": run_id}).sort("_id", 1):
            e.pop("_id", None)
            lines.append(f"  event {e}")
        lines.append(f"  lease {mongo_db.leases.find_one({'_id': run_id})}")
        for name in ("worker", "worker2", "scheduler", "collector"):
            try:
                log = services.log(name)
            except OSError:
                continue
            lines += [f"  {name}: {line}" for line in log.splitlines() if run_id in line]
    return "\n".join([f"{len(odd)} runs did not end once in success"] + lines)


def test_worker_frozen_past_its_lease(api, services, mongo_db, pg):
    """Two workers; one stopped with SIGSTOP for 15 s during a burst of transfer
    runs: past its lease (4 s here) and its group session (6 s). The other
    gets its partitions and takes its attempts over; the frozen one, let go
    again, finds those leases gone and reports nothing of them. Every run
    ends once, and the destination holds each run's rows once."""
    from test_load_modes import make_job
    from conftest import PG_ODBC
    runs_per_job, jobs_n, rows = 60, 8, 20
    pg.execute("DROP TABLE IF EXISTS frozen_src")
    pg.execute("DROP TABLE IF EXISTS frozen_dst")
    pg.execute(f"CREATE TABLE frozen_src AS SELECT g AS id, md5(g::text) AS label "
               f"FROM generate_series(1, {rows}) g")
    # A tenth of a second a run, so that attempts are in flight when it stops.
    jobs = [make_job(api, PG_ODBC, PG_ODBC, "frozen_dst",
                     query="SELECT id, label FROM frozen_src CROSS JOIN pg_sleep(0.1)")
            for _ in range(jobs_n)]
    services.start("worker2", "worker")
    accepted, refused = [], []
    try:
        # Both workers in the group, each with its partitions.
        deadline = time.time() + 60
        while not all("partitions assigned: convutell.jobs" in services.log(w)
                      for w in ("worker", "worker2")):
            assert time.time() < deadline, services.log("worker")
            time.sleep(0.2)
        started = services.log("worker").count(") started")
        threads = []
        for job in jobs:
            threads += submit(api, job, runs_per_job, accepted, refused, threads=1)
        # Frozen while it runs some.
        while services.log("worker").count(") started") < started + 8:
            assert time.time() < deadline, services.log("worker")
            time.sleep(0.05)
        frozen = services.procs["worker"]
        frozen.send_signal(signal.SIGSTOP)
        try:
            time.sleep(15)
        finally:
            frozen.send_signal(signal.SIGCONT)
        for t in threads:
            t.join()
        assert (len(accepted), refused) == (runs_per_job * jobs_n, [])
        wait_final(mongo_db, accepted, 300)
        time.sleep(5)  # a late, second end would show now
    finally:
        assert services.stop("worker2") == 0
    finals = {}
    for e in mongo_db.events.find({"type": {"$in": list(FINAL)}, "run_id": {"$in": accepted}}):
        finals.setdefault(e["run_id"], []).append(e["type"])
    assert len(finals) == len(accepted)
    odd = {r: t for r, t in finals.items() if t != ["run.succeeded"]}
    assert not odd, frozen_story(mongo_db, services, odd)
    assert pg.execute("SELECT count(*) FROM frozen_dst").fetchone() == (len(accepted) * rows,)
    ledger = dict(pg.execute("SELECT run_id, count(*) FROM convutell_ledger "
                             "WHERE run_id = ANY(%s) GROUP BY run_id", (accepted,)).fetchall())
    assert len(ledger) == len(accepted) and set(ledger.values()) == {1}
    # Some attempts were taken over: started twice, by two workers.
    starts = mongo_db.events.count_documents({"type": "run.started", "run_id": {"$in": accepted}})
    assert starts > len(accepted), starts
    assert services.procs["worker"].poll() is None
    print(f"frozen worker: {len(accepted)} runs, {starts - len(accepted)} attempts taken over")
