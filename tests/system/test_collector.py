"""The collector's batches: every event of 100 finished runs (succeeded and
failed) replayed twice changes no document, and a late start does not move a
finished run back. A run is stored insert-only (runs/cv_runfold.h): its record
and one document per start and end, which GET /runs/{id} folds."""
import json
import time
import uuid

from conftest import kcat

RUNS_OK, RUNS_FAILED = 90, 10
PARTITIONS = 3  # convutell.events


def make_sql_job(api, tmp_path, statements):
    db = tmp_path / f"noop-{uuid.uuid4().hex[:6]}.db"
    conn = api.create("/api/v1/connections", {"name": "noop", "odbc": f"Driver=SQLite3;Database={db}"})
    project = api.create("/api/v1/projects", {
        "name": "batches", "origin_connection_id": conn["id"],
        "destination_connection_id": conn["id"], "active": True})
    return api.create(f"/api/v1/projects/{project['id']}/jobs",
                      {"name": "noop", "kind": "sql", "statements": statements})


def wait_for(predicate, timeout=120):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.25)


def sentinels(mongo_db):
    """Starts of fresh runs on each partition of convutell.events, waited for
    until their runs have moved (their start pieces are stored), in two
    rounds. The collector stores a batch's events before it moves the batch's
    runs, and moves runs batch by batch in order, but within a batch it stores
    the pieces before it updates active_runs: a first round may share a batch
    with the last events before it. The second round is produced once the
    first is stored, so it comes in a later batch, and once its pieces are
    there everything produced before the first round is applied whole."""
    for _ in range(2):
        pieces = []
        for p in range(PARTITIONS):
            rid = str(uuid.uuid4())
            ev = {"schema": "convutell.event.v1", "event_id": str(uuid.uuid4()),
                  "type": "run.started", "time": "2026-12-01T00:00:00.000Z", "run_id": rid,
                  "attempt": 1, "worker": "sentinel"}
            kcat("-P", "-t", "convutell.events", "-p", str(p), data=json.dumps(ev).encode())
            pieces.append(f"{rid}.1.started")
        wait_for(lambda: mongo_db.runs.count_documents({"_id": {"$in": pieces}}) == PARTITIONS)


def views(api, run_ids):
    """Every run as GET /runs/{id} shows it."""
    out = {}
    for rid in run_ids:
        status, doc, _ = api.get(f"/api/v1/runs/{rid}")
        assert status == 200, (status, doc)
        out[rid] = doc
    return out


def test_replayed_batches_change_nothing(api, mongo_db, tmp_path):
    ok = make_sql_job(api, tmp_path, "SELECT 1")
    bad = make_sql_job(api, tmp_path, "SELECT * FROM no_such_table")
    run_ids = [api.post(f"/api/v1/jobs/{ok['id']}/runs")[1]["run_id"] for _ in range(RUNS_OK)]
    run_ids += [api.post(f"/api/v1/jobs/{bad['id']}/runs")[1]["run_id"]
                for _ in range(RUNS_FAILED)]
    final = {"run_id": {"$in": run_ids}}
    wait_for(lambda: mongo_db.runs.count_documents(dict(final, piece="ended")) == len(run_ids))
    sentinels(mongo_db)
    runs = views(api, run_ids)
    assert sorted(r["status"] for r in runs.values()) == \
        ["failed"] * RUNS_FAILED + ["succeeded"] * RUNS_OK
    # Each run is its record, its start and its end, and nothing of it is active.
    stored = mongo_db.runs.count_documents(final)
    assert stored == 3 * len(run_ids)
    assert mongo_db.active_runs.count_documents({"_id": {"$in": run_ids}}) == 0
    events = mongo_db.events.count_documents(final)
    notes = mongo_db.notifications.count_documents(final)
    assert notes == RUNS_FAILED
    # queued, started and the end, at least, for every run
    assert events >= 3 * len(run_ids)

    # Every event these runs produced, exactly as the topic holds it, twice more.
    wanted = set(run_ids)
    lines = kcat("-C", "-t", "convutell.events", "-o", "beginning", "-e", "-q",
                 "-f", "%k\t%s\n").decode().splitlines()
    replay = [line for line in lines if line.split("\t", 1)[0] in wanted]
    assert len(replay) == events
    data = ("\n".join(replay) + "\n").encode()
    kcat("-P", "-t", "convutell.events", "-K", "\t", data=data + data)
    sentinels(mongo_db)
    assert mongo_db.events.count_documents(final) == events
    assert mongo_db.notifications.count_documents(final) == notes
    assert mongo_db.runs.count_documents(final) == stored
    assert mongo_db.active_runs.count_documents({"_id": {"$in": run_ids}}) == 0
    assert views(api, run_ids) == runs

    # Late starts of a finished run, with event ids of their own: one of the
    # attempt that ended (the same start, stored once) and one of a later
    # attempt (stored, but a final run is never left). Both are kept as events,
    # and the run stays as it is.
    late_run = run_ids[0]
    for attempt in (1, 2):
        late = {"schema": "convutell.event.v1", "event_id": str(uuid.uuid4()),
                "type": "run.started", "time": "2026-12-01T00:00:00.000Z", "run_id": late_run,
                "attempt": attempt, "worker": "late"}
        kcat("-P", "-t", "convutell.events", "-k", late_run, data=json.dumps(late).encode())
    sentinels(mongo_db)
    assert mongo_db.events.count_documents(final) == events + 2
    assert mongo_db.runs.count_documents(final) == stored + 1
    assert views(api, [late_run]) == {late_run: runs[late_run]}

    # A late second end of an attempt that ended (a worker cut off from the network
    # reports an attempt another worker took over): kept, marked with the end that
    # counts, and the run, its notifications and its events' view are as they were.
    late_run, bad_run = run_ids[1], run_ids[-1]
    for run_id, kind in ((late_run, "run.failed"), (bad_run, "run.succeeded")):
        counted = mongo_db.events.find_one({"run_id": run_id, "type": {"$in": [
            "run.succeeded", "run.failed"]}})
        late = {"schema": "convutell.event.v1", "event_id": str(uuid.uuid4()), "type": kind,
                "time": "2026-12-01T00:00:01.000Z", "run_id": run_id, "attempt": 1,
                "worker": "cut-off", "duration_ms": 5}
        if kind == "run.failed":
            late["error"] = {"code": "connection_lost", "message": "cut off"}
        kcat("-P", "-t", "convutell.events", "-k", run_id, data=json.dumps(late).encode())
        sentinels(mongo_db)
        stored = mongo_db.events.find_one({"_id": late["event_id"]})
        assert stored["superseded_by"] == counted["_id"], stored
        assert views(api, [run_id]) == {run_id: runs[run_id]}
    assert mongo_db.notifications.count_documents(final) == notes
    # The same when both ends come in one produce (likely one batch of the collector):
    # a run from another system, started and ended by worker a, then ended by b.
    run_id = str(uuid.uuid4())
    evs = [{"schema": "convutell.event.v1", "event_id": str(uuid.uuid4()), "type": kind,
            "time": f"2026-12-01T00:00:0{i}.000Z", "run_id": run_id, "attempt": 1,
            "worker": worker} for i, (kind, worker) in enumerate(
                (("run.started", "a"), ("run.succeeded", "a"), ("run.failed", "b")))]
    evs[2]["error"] = {"code": "connection_lost", "message": "cut off"}
    kcat("-P", "-t", "convutell.events", "-K", "\t",
         data="".join(f"{run_id}\t{json.dumps(e)}\n" for e in evs).encode())
    sentinels(mongo_db)
    assert mongo_db.events.find_one({"_id": evs[2]["event_id"]})["superseded_by"] == \
        evs[1]["event_id"]
    assert "superseded_by" not in mongo_db.events.find_one({"_id": evs[1]["event_id"]})
    assert api.get(f"/api/v1/runs/{run_id}")[1]["status"] == "succeeded"
    assert mongo_db.notifications.count_documents({"run_id": run_id}) == 0
    status, listed, _ = api.get(f"/api/v1/runs/{late_run}/events?type=run.failed")
    assert status == 200 and [e["superseded_by"] for e in listed["events"]] == [
        mongo_db.events.find_one({"run_id": late_run, "type": "run.succeeded"})["_id"]], listed
