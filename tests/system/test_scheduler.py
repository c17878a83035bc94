"""The scheduler (`convutell scheduler`): exactly one run per tick with two
schedulers side by side, ticks missed while the scheduler was killed handled by
the misfire policy and recorded, retries with growing delays and a notification
only after the last attempt, runs taken back from a killed worker after their
lease, and a job that outlasts max.poll.interval.ms without a second execution."""
import datetime as dt
import json
import signal
import time
import uuid

import pytest

from conftest import PG_ODBC, RECORD, kcat, run_status, run_views
from test_sql_jobs import sql_job

UTC = dt.timezone.utc


def when(text):
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def rfc(ms):
    return dt.datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture()
def schedulers(services):
    """Starts scheduler processes by name; stops the ones still running after the test."""
    started = []

    def start(name="scheduler", ready=True):
        services.start(name, cmd="scheduler")
        started.append(name)
        if ready:  # in the retry topic's consumer group, so retries are served at once
            wait_for(lambda: "partitions assigned" in services.log(name), 30, f"{name} ready")
        return services.procs[name]

    yield start
    for name in started:
        if name in services.procs:
            assert services.stop(name) == 0, services.log(name)


def start_worker(services, name="worker", **env):
    """Starts a worker and waits until it consumes (and so handles SIGTERM)."""
    before = services.log(name).count("consuming convutell.jobs") if _has_log(services, name) \
        else 0
    services.start(name, cmd="worker", **env)
    wait_for(lambda: services.log(name).count("consuming convutell.jobs") > before, 30,
             f"{name} to start")


def _has_log(services, name):
    try:
        services.log(name)
        return True
    except FileNotFoundError:
        return False


def python_job(api, script):
    src = api.create("/api/v1/connections", {"name": "o", "odbc": PG_ODBC})
    project = api.create("/api/v1/projects", {"name": "retries", "origin_connection_id": src["id"],
                                              "destination_connection_id": src["id"]})
    return api.create(f"/api/v1/projects/{project['id']}/jobs",
                      {"name": "py", "kind": "python", "script": script}), project


def put_schedule(api, job, **schedule):
    status, body, _ = api.call("PUT", f"/api/v1/jobs/{job['id']}/schedule", schedule)
    assert status == 200, body
    return body


def first_tick(lead=4):
    """A whole second `lead` seconds from now, in ms."""
    return (int(time.time()) + lead) * 1000


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def tick_records(api, mongo_db, job):
    return run_views(api, mongo_db, {"job_id": job["id"], "trigger": "schedule"}, sort="tick_at")


def all_final(api, mongo_db, job, count):
    runs = tick_records(api, mongo_db, job)
    final = ("succeeded", "failed", "missed", "skipped")
    return len(runs) == count and all(r["status"] in final for r in runs) and runs


def test_two_schedulers_sixty_ticks_sixty_runs(api, pg, mongo_db, services, schedulers):
    pg.execute("DROP TABLE IF EXISTS sched_two")
    pg.execute("CREATE TABLE sched_two (n serial, at timestamptz)")
    job = sql_job(api, "INSERT INTO sched_two (at) VALUES (clock_timestamp())")
    start = first_tick(5)
    ticks = [rfc(start + k * 1000) for k in range(60)]
    body = put_schedule(api, job, interval_seconds=1, start_at=rfc(start),
                        end_at=rfc(start + 59_000))
    assert body["next_fire_times"] == ticks[:5]
    schedulers("scheduler-a")
    schedulers("scheduler-b")

    runs = wait_for(lambda: all_final(api, mongo_db, job, 60), 120, "60 finished runs")
    assert [r["tick_at"] for r in runs] == ticks
    assert {r["status"] for r in runs} == {"succeeded"}, [r for r in runs
                                                         if r["status"] != "succeeded"]
    assert len({r["id"] for r in runs}) == 60
    # Each run executed once: one start, one row each.
    assert mongo_db.events.count_documents(
        {"run_id": {"$in": [r["id"] for r in runs]}, "type": "run.started"}) == 60
    assert pg.execute("SELECT count(*) FROM sched_two").fetchone() == (60,)
    # Nothing more after end_at; the cursor says so.
    time.sleep(1.5)
    assert mongo_db.runs.count_documents(dict({"job_id": job["id"]}, **RECORD)) == 60
    ended = mongo_db.jobs.find_one({"_id": job["id"]})
    assert (ended["schedule"]["next_run_at"], ended["scheduled"]) == (None, False)


def test_schedule_stored_by_an_earlier_version_still_fires(api, mongo_db, services,
                                                           schedulers):
    """Jobs are loaded by their top-level 'scheduled' flag; a schedule stored before
    the flag existed is flagged by the next scheduler that starts, and fires."""
    job = sql_job(api, "SELECT 1")
    start = (int(time.time()) + 6) * 1000
    status, body, _ = api.call("PUT", f"/api/v1/jobs/{job['id']}/schedule", {
        "interval_seconds": 1, "start_at": rfc(start), "end_at": rfc(start + 2000)})
    assert status == 200, body
    mongo_db.jobs.update_one({"_id": job["id"]}, {"$unset": {"scheduled": ""}})
    other = sql_job(api, "SELECT 1")  # no schedule: not flagged
    schedulers("scheduler-new")
    runs = wait_for(lambda: (lambda rs: rs if len(rs) == 3 else None)(
        list(mongo_db.runs.find(dict({"job_id": job["id"]}, **RECORD)))), 30, "three ticks")
    assert sorted(r["tick_at"] for r in runs) == [rfc(start + i * 1000) for i in range(3)]
    assert "flagged" in services.log("scheduler-new")
    assert "scheduled" not in mongo_db.jobs.find_one({"_id": other["id"]})


def test_many_schedules_due_at_once(api, pg, mongo_db, services, schedulers):
    """150 schedules on the same two ticks: 300 runs, each executed once. (FerretDB
    deadlocked when one scan updated the 150 cursors in a single command.)"""
    pg.execute("DROP TABLE IF EXISTS sched_many")
    pg.execute("CREATE TABLE sched_many (job text, at timestamptz)")
    first = sql_job(api, "INSERT INTO sched_many VALUES ('0', clock_timestamp())")
    jobs = [first] + [api.create(f"/api/v1/projects/{first['project_id']}/jobs", {
        "name": f"many-{i}", "kind": "sql",
        "statements": f"INSERT INTO sched_many VALUES ('{i}', clock_timestamp())"})
        for i in range(1, 150)]
    start = first_tick(8)
    for job in jobs:
        put_schedule(api, job, interval_seconds=1, start_at=rfc(start), end_at=rfc(start + 1000))
    schedulers("scheduler")

    ids = [j["id"] for j in jobs]
    final = ("succeeded", "failed", "missed", "skipped")
    wait_for(lambda: mongo_db.runs.count_documents(
        {"job_id": {"$in": ids}, "piece": "ended"}) == 300, 120, "300 finished runs")
    runs = run_views(api, mongo_db, {"job_id": {"$in": ids}})
    assert {r["status"] for r in runs} <= set(final)
    assert sorted((r["job_id"], r["tick_at"], r["status"]) for r in runs) == sorted(
        (i, rfc(start + k * 1000), "succeeded") for i in ids for k in (0, 1))
    assert pg.execute("SELECT count(*), count(DISTINCT job) FROM sched_many").fetchone() == (
        300, 150)
    assert mongo_db.events.count_documents(
        {"run_id": {"$in": [r["id"] for r in runs]}, "type": "run.started"}) == 300
    # The ends are written back one job at a time, in the gaps between ticks.
    wait_for(lambda: mongo_db.jobs.count_documents(
        {"_id": {"$in": ids}, "schedule.next_run_at": None}) == 150, 60, "150 schedules ended")


def test_unreadable_schedule_stopped_once(api, mongo_db, services, schedulers):
    """A schedule edited by hand into something invalid is stopped with the
    reason stored, and reported once rather than on every scan."""
    job, _ = python_job(api, "print('never')\n")
    start = first_tick(2)
    put_schedule(api, job, interval_seconds=1, start_at=rfc(start))
    mongo_db.jobs.update_one({"_id": job["id"]},
                             {"$set": {"schedule.end_at": rfc(start - 60_000)}})
    schedulers("scheduler")
    stored = wait_for(lambda: (mongo_db.jobs.find_one({"_id": job["id"]})["schedule"]
                               .get("error")), 30, "the schedule stopped")
    assert stored == "stored schedule unreadable: end_at: must be after start_at"
    assert mongo_db.jobs.find_one({"_id": job["id"]})["schedule"]["next_run_at"] is None
    time.sleep(max(0, start / 1000 + 2 - time.time()))  # past a few would-be ticks
    assert services.log("scheduler").count(f"job {job['id']}: ") == 1
    assert mongo_db.runs.count_documents({"job_id": job["id"]}) == 0
    # Setting it again through the API clears the error and starts it.
    body = put_schedule(api, job, interval_seconds=3600)
    assert "error" not in mongo_db.jobs.find_one({"_id": job["id"]})["schedule"], body


def test_scheduler_killed_and_restarted(api, pg, mongo_db, services, schedulers):
    pg.execute("DROP TABLE IF EXISTS sched_kill")
    pg.execute("CREATE TABLE sched_kill (policy text)")
    jobs = {}
    start = first_tick(4)
    for policy in ("run_all", "skip", "run_once"):
        jobs[policy] = sql_job(api, f"INSERT INTO sched_kill VALUES ('{policy}')")
        put_schedule(api, jobs[policy], interval_seconds=1, start_at=rfc(start),
                     end_at=rfc(start + 11_000), misfire=policy)
    proc = schedulers("scheduler")
    # Kill it after its third tick, keep it down for four seconds.
    while time.time() * 1000 < start + 2_300:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    services.procs.pop("scheduler")
    time.sleep(4)
    schedulers("scheduler")

    ticks = [rfc(start + k * 1000) for k in range(12)]
    for policy, job in jobs.items():
        runs = wait_for(lambda: all_final(api, mongo_db, job, 12), 60, f"12 ticks of {policy}")
        assert [r["tick_at"] for r in runs] == ticks, policy  # every tick once, in order
        ran = [r for r in runs if r["status"] == "succeeded"]
        missed = [r for r in runs if r["status"] == "missed"]
        assert len(ran) + len(missed) == 12, runs
        executed = pg.execute("SELECT count(*) FROM sched_kill WHERE policy = %s",
                              (policy,)).fetchone()[0]
        assert executed == len(ran), policy
        if policy == "run_all":
            assert missed == []
        else:
            # The ticks during the four seconds down (at least three) are on record.
            assert len(missed) >= 3, [(r["tick_at"], r["status"]) for r in runs]
            assert all(r["reason"].startswith(f"misfire policy {policy}") for r in missed)
        if policy == "run_once":
            # One catch-up run stands for each group of missed ticks.
            catch_up = {r["reason"].rsplit("run ", 1)[1].split()[0] for r in missed}
            assert catch_up <= {r["id"] for r in ran}


def test_fails_twice_then_succeeds(api, mongo_db, services, schedulers):
    schedulers("scheduler")
    job, project = python_job(api, "import os, sys\n"
                                   "attempt = int(os.environ['CONVUTELL_ATTEMPT'])\n"
                                   "print('attempt', attempt)\n"
                                   "sys.exit(0 if attempt >= 3 else 4)\n")
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs",
                               {"max_attempts": 3, "backoff_seconds": 1})
    assert status == 202, body
    done = api.wait_run(body["run_id"], timeout=60)
    assert (done["status"], done["attempt"], done["trigger"]) == ("succeeded", 3, "manual"), done
    events = list(mongo_db.events.find({"run_id": done["id"]}).sort("time", 1))
    starts = [e for e in events if e["type"] == "run.started"]
    assert [e["attempt"] for e in starts] == [1, 2, 3]
    assert [e["attempt"] for e in events if e["type"] == "run.retrying"] == [1, 2]
    # Delays of 1 s and 2 s, each within 20% jitter, counted from the failure;
    # no attempt started before it was due.
    retries = [e for e in events if e["type"] == "run.retrying"]
    delays = [(when(e["next_attempt_at"]) - when(e["time"])).total_seconds() for e in retries]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4, delays
    for retry, start in zip(retries, starts[1:]):
        assert when(start["time"]) >= when(retry["next_attempt_at"]), (retry, start)
    assert mongo_db.notifications.count_documents({"run_id": done["id"]}) == 0

    # Failing every time: three attempts, then one notification for the project.
    job, project = python_job(api, "import sys\nsys.exit(4)\n")
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs",
                               {"max_attempts": 3, "backoff_seconds": 1})
    done = api.wait_run(body["run_id"], timeout=60)
    assert (done["status"], done["attempt"], done["error"]["code"]) == (
        "failed", 3, "script_failed"), done
    time.sleep(1)
    notes = list(mongo_db.notifications.find({"project_id": project["id"]}))
    assert [(n["run_id"], n["attempts"], n["error"]["code"]) for n in notes] == [
        (done["id"], 3, "script_failed")]
    # The project's list finds it by its time buckets, which the answer leaves out.
    note = notes[0]
    assert note["buckets"] == [f"{project['id']}@{note['created_at'][:n]}"
                               for n in (16, 15, 13, 10, 7)]
    code, page, _ = api.get(f"/api/v1/projects/{project['id']}/notifications")
    assert code == 200 and page["next"] is None, page
    assert [(n["id"], n["run_id"], n["status"]) for n in page["notifications"]] == [
        (done["id"], done["id"], "failed")]
    assert "buckets" not in page["notifications"][0]


def test_worker_killed_run_resumed_after_lease(api, pg, mongo_db, services):
    """SIGKILL: Kafka hands the job to the next worker, which waits until the dead
    worker's lease runs out, takes the attempt over and finishes it once."""
    pg.execute("DROP TABLE IF EXISTS lease_once")
    pg.execute("CREATE TABLE lease_once (at timestamptz)")
    job = sql_job(api, "SELECT pg_sleep(3); INSERT INTO lease_once VALUES (clock_timestamp())")
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    run_id = body["run_id"]
    wait_for(lambda: run_status(api, run_id) == "running", 30, "start")
    time.sleep(1)
    proc = services.procs.pop("worker")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    killed_at = time.time()
    start_worker(services)

    done = api.wait_run(run_id, timeout=90)
    assert (done["status"], done["attempt"]) == ("succeeded", 1), done
    assert pg.execute("SELECT count(*) FROM lease_once").fetchone() == (1,)
    events = list(mongo_db.events.find({"run_id": run_id}).sort("time", 1))
    types = [e["type"] for e in events]
    assert (types.count("run.started"), types.count("run.succeeded")) == (2, 1), types
    restart = when(events[types.index("run.started", types.index("run.started") + 1)]["time"])
    # Not before the lease (4 s in the tests, renewed every second) ran out.
    assert restart.timestamp() >= killed_at + 2, (restart, killed_at)


def test_stalled_worker_run_taken_back(api, mongo_db, services, schedulers):
    """SIGSTOP: a worker that stops renewing its lease (and leaves the Kafka group)
    loses the run; the scheduler retries it, and when the stalled worker wakes up
    it stops its attempt and reports nothing, so the run succeeds once."""
    schedulers("scheduler")
    job, project = python_job(api, "import time\ntime.sleep(6)\nprint('slept')\n")
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs",
                               {"max_attempts": 2, "backoff_seconds": 1})
    run_id = body["run_id"]
    wait_for(lambda: run_status(api, run_id) == "running", 30, "start")
    proc = services.procs["worker"]
    proc.send_signal(signal.SIGSTOP)
    try:
        lease = wait_for(lambda: mongo_db.leases.find_one(
            {"_id": run_id, "state": "retrying", "retry_sent": True}), 60, "the lease taken back")
        assert lease["attempt"] == 1
    finally:
        proc.send_signal(signal.SIGCONT)
    done = api.wait_run(run_id, timeout=90)
    assert (done["status"], done["attempt"]) == ("succeeded", 2), done
    events = list(mongo_db.events.find({"run_id": run_id}).sort("time", 1))
    assert [e["attempt"] for e in events if e["type"] == "run.started"] == [1, 2]
    retrying = [e for e in events if e["type"] == "run.retrying"]
    assert [(e["attempt"], e["worker"], e["error"]["code"]) for e in retrying] == [
        (1, "scheduler", "lease_expired")]
    assert [e["attempt"] for e in events if e["type"] in (
        "run.succeeded", "run.failed", "run.cancelled")] == [2]
    log = services.log("worker")
    assert f"run {run_id} attempt 1: the lease was lost; stopping" in log
    assert f"run {run_id} attempt 1: the lease ran out and the run was taken over" in log
    assert mongo_db.notifications.count_documents({"run_id": run_id}) == 0


def test_long_job_keeps_its_partition(api, mongo_db, services):
    """With max.poll.interval.ms at 6 s, a 12-second job neither loses its
    partition nor runs twice: the worker keeps polling with it paused."""
    services.stop("worker")
    start_worker(services, "slow-worker", CONVUTELL_KAFKA_MAX_POLL_INTERVAL_MS="6000")
    try:
        job, _ = python_job(api, "import time\ntime.sleep(12)\nprint('done')\n")
        status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
        done = api.wait_run(body["run_id"], timeout=90)
        assert done["status"] == "succeeded", done
        time.sleep(2)
        assert mongo_db.events.count_documents(
            {"run_id": done["id"], "type": "run.started"}) == 1
        log = services.log("slow-worker")
        assert "poll interval" not in log and "partitions revoked" not in log, log
    finally:
        assert services.stop("slow-worker") == 0
        start_worker(services)


def test_runs_from_other_systems_are_external(api, mongo_db, services):
    job = sql_job(api, "SELECT 1")
    run_id = str(uuid.uuid4())
    message = {"schema": "convutell.job.v2", "run_id": run_id, "job_id": job["id"],
               "project_id": job["project_id"], "attempt": 1,
               "queued_at": rfc(time.time() * 1000)}
    kcat("-P", "-t", "convutell.jobs", "-k", job["id"], data=json.dumps(message).encode())
    done = api.wait_run(run_id, timeout=60)
    assert (done["status"], done["trigger"], done["attempt"]) == ("succeeded", "external", 1)


def test_forbid_skips_ticks_while_a_run_is_queued_or_running(api, pg, mongo_db, services,
                                                              schedulers):
    """A forbid schedule's run is in `queued_runs` from its tick and in
    `active_runs` once started (the lease sweep walks only those); ticks while
    it is either are skipped, and both collections forget it at its end."""
    pg.execute("DROP TABLE IF EXISTS sched_forbid")
    pg.execute("CREATE TABLE sched_forbid (at timestamptz)")
    job = sql_job(api, "INSERT INTO sched_forbid VALUES (clock_timestamp()); "
                       "SELECT pg_sleep(2.5)")
    start = first_tick(4)
    put_schedule(api, job, interval_seconds=1, start_at=rfc(start), end_at=rfc(start + 7_000),
                 concurrency="forbid")
    schedulers()
    mine = {"job_id": job["id"]}
    wait_for(lambda: mongo_db.queued_runs.count_documents(mine) == 1, 30, "a queued run")
    wait_for(lambda: mongo_db.active_runs.count_documents(mine) == 1, 30, "a started run")

    runs = wait_for(lambda: all_final(api, mongo_db, job, 8), 60, "8 ticks recorded")
    assert [r["tick_at"] for r in runs] == [rfc(start + k * 1000) for k in range(8)]
    done = [r for r in runs if r["status"] == "succeeded"]
    skipped = [r for r in runs if r["status"] == "skipped"]
    assert len(done) + len(skipped) == 8, runs
    # Each skip names the run that was going: one of those that ran.
    going = {f"concurrency forbid: an earlier run was still going (run {r['id']})" for r in done}
    assert {r["reason"] for r in skipped} <= going, (skipped, going)
    # The first tick runs; the next two fall within its 2.5 s; a later one runs again.
    assert runs[0]["status"] == "succeeded" and runs[1]["status"] == runs[2]["status"] == "skipped"
    assert len(done) >= 2
    # Never two at once.
    spans = sorted((when(r["started_at"]), when(r["finished_at"])) for r in done)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans
    assert pg.execute("SELECT count(*) FROM sched_forbid").fetchone() == (len(done),)
    assert mongo_db.queued_runs.count_documents(mine) == 0
    assert mongo_db.active_runs.count_documents(mine) == 0


def test_attempt_that_kills_its_workers_is_taken_over_three_times_then_failed(
        api, pg, mongo_db, services, schedulers):
    """A poison job: every worker that runs its attempt dies. Three workers
    take it over after their predecessor's lease ran out; the next one leaves
    it to the scheduler's sweep, which fails the run (no attempts left), and
    the worker skips the message and goes on."""
    job = sql_job(api, "SELECT pg_sleep(60)")
    status, body, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    run_id = body["run_id"]
    for n in (1, 2, 3, 4):
        wait_for(lambda: mongo_db.events.count_documents(
            {"run_id": run_id, "type": "run.started"}) >= n, 60, f"the attempt run by worker {n}")
        proc = services.procs.pop("worker")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
        start_worker(services)
    wait_for(lambda: "taken over 3 times already: left to the scheduler" in
             services.log("worker"), 60, "the fifth worker to leave it")
    schedulers("scheduler")
    done = api.wait_run(run_id, timeout=90)
    assert (done["status"], done["error"]["code"]) == ("failed", "lease_expired"), done
    lease = mongo_db.leases.find_one({"_id": run_id})
    assert (lease["attempt"], lease["takeovers"]) == (1, 3), lease
    starts = mongo_db.events.count_documents({"run_id": run_id, "type": "run.started"})
    assert starts == 4
    # The worker let the message go and runs the next job.
    again = api.post(f"/api/v1/jobs/{sql_job(api, 'SELECT 1')['id']}/runs")[1]
    assert api.wait_run(again["run_id"])["status"] == "succeeded"
