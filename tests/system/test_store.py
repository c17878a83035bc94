"""The run store: every service creates the indexes its queries need at
start-up, and one table of final statuses decides what may still change."""
import os
import threading
import time
import uuid

import pymongo

from conftest import MONGO_URI, RECORD, Services, run_views

# Every index the services' queries need, by collection, written out by hand:
# a query added without its index, or an index dropped, fails here.
EXPECTED = {
    "runs": {"_id_": [("_id", 1)],
             "job_created": [("job_id", 1), ("created_at", -1), ("_id", -1)],
             "run": [("run_id", 1)], "buckets": [("buckets", 1)], "day": [("day", 1)]},
    "active_runs": {"_id_": [("_id", 1)], "job": [("job_id", 1)]},
    "queued_runs": {"_id_": [("_id", 1)], "job": [("job_id", 1)]},
    "events": {"_id_": [("_id", 1)], "run_time": [("run_id", 1), ("time", 1), ("_id", 1)],
               "project_type_time": [("project_id", 1), ("type", 1), ("time", 1), ("_id", 1)],
               "day": [("day", 1)]},
    "notifications": {"_id_": [("_id", 1)],
                      "project_created": [("project_id", 1), ("created_at", -1), ("_id", -1)],
                      "buckets": [("buckets", 1)], "day": [("day", 1)]},
    "leases": {"_id_": [("_id", 1)],
               "state_released": [("state", 1), ("released_at", 1)], "day": [("day", 1)]},
    "ticks": {"_id_": [("_id", 1)], "claimer_tick": [("claimer", 1), ("tick_ms", 1)],
              "day": [("day", 1)]},
    "schedulers": {"_id_": [("_id", 1)], "beat": [("beat_ms", 1)]},
    "jobs": {"_id_": [("_id", 1)], "scheduled": [("scheduled", 1)],
             "project": [("project_id", 1)],
             "project_created": [("project_id", 1), ("created_at", 1), ("_id", 1)]},
    "projects": {"_id_": [("_id", 1)], "origin": [("origin_connection_id", 1)],
                 "destination": [("destination_connection_id", 1)],
                 "member_created": [("members.user", 1), ("created_at", 1), ("_id", 1)]},
    "connections": {"_id_": [("_id", 1)],
                    "project_created": [("project_id", 1), ("created_at", 1), ("_id", 1)]},
    "tokens": {"_id_": [("_id", 1)], "user": [("user", 1)]},
    "saved_queries": {"_id_": [("_id", 1)],
                      "project_created": [("project_id", 1), ("created_at", 1), ("_id", 1)]},
    "webhooks": {"_id_": [("_id", 1)],
                 "project_created": [("project_id", 1), ("created_at", 1), ("_id", 1)]},
    "webhook_deliveries": {"_id_": [("_id", 1)],
                           "webhook_created": [("webhook_id", 1), ("created_at", -1),
                                               ("_id", -1)],
                           "status_next": [("status", 1), ("next_at", 1)],
                           "day": [("day", 1)]},
    "audit": {"_id_": [("_id", 1)], "log_at": [("log", 1), ("at", -1), ("_id", -1)],
              "project_at": [("project_id", 1), ("at", -1), ("_id", -1)], "day": [("day", 1)]},
    "query_runs": {"_id_": [("_id", 1)], "day": [("day", 1)]},
    "query_rows": {"_id_": [("_id", 1)], "run": [("run_id", 1)]},
    "idempotency": {"_id_": [("_id", 1)], "day": [("day", 1)]},
}


def indexes(db):
    found = {}
    for coll in EXPECTED:
        found[coll] = {ix["name"]: [(k, int(v)) for k, v in ix["key"].items()]
                       for ix in db[coll].list_indexes()}
    return found


def test_each_service_creates_every_index_at_start(tmp_path):
    client = pymongo.MongoClient(MONGO_URI, serverSelectionTimeoutMS=10000)
    try:
        for service in ("collector", "scheduler"):
            db = client["convutell_ix_" + uuid.uuid4().hex[:8]]
            svc = Services(str(tmp_path), db.name)
            svc.start(service)
            try:
                deadline = time.time() + 30
                while indexes(db) != EXPECTED and time.time() < deadline:
                    time.sleep(0.2)
                assert indexes(db) == EXPECTED, svc.log(service)
                # A second start on the same database changes nothing and says nothing.
                svc.start("second", cmd=service)
                time.sleep(2)
                assert indexes(db) == EXPECTED
                assert "indexes not created" not in svc.log("second")
            finally:
                codes = {name: svc.stop(name) for name in list(svc.procs)}
                client.drop_database(db.name)
            assert codes == {service: 0, "second": 0}
    finally:
        client.close()


def test_a_tick_that_never_ran_cannot_be_cancelled(api, mongo_db):
    # The API once kept its own list of final statuses without missed and
    # skipped, and accepted a cancel of a tick that had not run.
    for status in ("missed", "skipped"):
        run_id = str(uuid.uuid4())
        mongo_db.runs.insert_one({"_id": run_id, "job_id": str(uuid.uuid4()),
                                  "status": status, "attempt": 1,
                                  "created_at": "2026-12-01T00:00:00.000Z"})
        code, body, _ = api.post(f"/api/v1/runs/{run_id}/cancel")
        assert (code, body) == (409, {"error": {
            "code": "run_finished", "message": f"run {run_id} has already finished ({status})"}})
        assert "cancel_requested" not in mongo_db.runs.find_one({"_id": run_id})


def make_job(api):
    conn = api.create("/api/v1/connections", {"name": "c", "odbc": "Driver=SQLite3;Database=:memory:"})
    project = api.create("/api/v1/projects", {
        "name": "pages", "origin_connection_id": conn["id"],
        "destination_connection_id": conn["id"], "active": True})
    return api.create(f"/api/v1/projects/{project['id']}/jobs", {
        "name": "j", "kind": "sql_transfer", "query": "SELECT 1", "destination_table": "t"})


def read_pages(api, path, limit):
    items, cursor, pages = [], None, 0
    while True:
        query = f"?limit={limit}" + (f"&after={cursor}" if cursor else "")
        code, body, _ = api.get(path + query)
        assert code == 200, body
        key = next(k for k in body if k != "next")
        assert len(body[key]) <= limit
        items += body[key]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            return items, pages
        assert len(body[key]) == limit


def test_run_history_pages_by_cursor(api, mongo_db):
    job = make_job(api)
    # 11 runs, four of them sharing a creation time: _id breaks the tie.
    times = ["2026-12-01T00:00:0%d.000Z" % (i % 7) for i in range(11)]
    runs = [{"_id": str(uuid.uuid4()), "job_id": job["id"], "status": "succeeded",
             "attempt": 1, "created_at": t} for t in times]
    mongo_db.runs.insert_many(runs)
    newest_first = sorted(runs, key=lambda r: (r["created_at"], r["_id"]), reverse=True)
    path = f"/api/v1/jobs/{job['id']}/runs"

    code, body, _ = api.get(path)
    assert code == 200 and body["next"] is None
    assert [r["id"] for r in body["runs"]] == [r["_id"] for r in newest_first]
    for limit, want_pages in ((3, 4), (1, 11), (11, 1), (10, 2)):
        items, pages = read_pages(api, path, limit)
        assert [r["id"] for r in items] == [r["_id"] for r in newest_first], limit
        assert pages == want_pages

    # A run recorded between two pages is neither repeated nor skipped by the
    # pages after it: it is newer than the cursor, so it belongs to page one.
    code, first, _ = api.get(path + "?limit=4")
    mongo_db.runs.insert_one({"_id": str(uuid.uuid4()), "job_id": job["id"], "status": "queued",
                              "attempt": 1, "created_at": "2026-12-02T00:00:00.000Z"})
    code, second, _ = api.get(path + f"?limit=4&after={first['next']}")
    assert [r["id"] for r in first["runs"] + second["runs"]] == \
        [r["_id"] for r in newest_first[:8]]


def stamp(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1000)) + ".%03dZ" % (t % 1000)


def buckets(job_id, created):
    """The time buckets of a run, as cv_bucket.h defines them: the job and a
    prefix of the creation time, from the minute to the month."""
    return [f"{job_id}@{created[:n]}" for n in (16, 15, 13, 10, 7)]


def test_run_history_walks_time_buckets(api, mongo_db):
    # A job's runs as a long-lived, irregular job leaves them: a burst in the
    # last two minutes, a steady stretch, daily runs, monthly ones after a
    # gap, one time shared by four runs, and three older runs from before
    # runs carried buckets. Every page size reads the same list, in order,
    # whether the page fills from one minute or from months back.
    job = make_job(api)
    now = int(time.time() * 1000)
    day = 86_400_000
    mongo_db.jobs.update_one({"_id": job["id"]}, {"$set": {"created_at": stamp(now - 500 * day)}})
    times = [now - 1000 * i for i in range(120)]                    # a burst, 60 a minute
    times += [now - 200_000 - 420_000 * i for i in range(40)]       # every 7 minutes
    times += [now - 2 * day - day * i for i in range(10)]           # daily
    times += [now - 95 * day - 30 * day * i for i in range(5)]      # monthly, after a gap
    times += [now - 50 * day] * 4                                   # a tie
    runs = []
    for t in times:
        created = stamp(t)
        runs.append({"_id": str(uuid.uuid4()), "job_id": job["id"], "status": "succeeded",
                     "attempt": 1, "created_at": created, "buckets": buckets(job["id"], created)})
    for t in (now - 300 * day, now - 301 * day, now - 302 * day):
        runs.append({"_id": str(uuid.uuid4()), "job_id": job["id"], "status": "succeeded",
                     "attempt": 1, "created_at": stamp(t)})
    # Another job's runs in the same minutes are not this job's.
    other = str(uuid.uuid4())
    mongo_db.runs.insert_many(runs + [
        {"_id": str(uuid.uuid4()), "job_id": other, "status": "succeeded", "attempt": 1,
         "created_at": stamp(now - 1000 * i), "buckets": buckets(other, stamp(now - 1000 * i))}
        for i in range(30)])
    want = [r["_id"] for r in sorted(runs, key=lambda r: (r["created_at"], r["_id"]),
                                     reverse=True)]
    path = f"/api/v1/jobs/{job['id']}/runs"
    for limit in (500, 50, 61, 7, 1):
        items, pages = read_pages(api, path, limit)
        assert [r["id"] for r in items] == want, limit
        assert pages == (len(want) + limit - 1) // limit

    # A run queued through the API carries its buckets and heads the list.
    code, body, _ = api.post(path)
    assert code == 202, body
    stored = list(mongo_db.runs.find({"_id": body["run_id"]}).limit(1))[0]
    assert stored["buckets"] == buckets(job["id"], stored["created_at"])
    code, page, _ = api.get(path + "?limit=2")
    assert [r["id"] for r in page["runs"]] == [body["run_id"], want[0]]
    assert "buckets" not in page["runs"][0] and "buckets" not in page["runs"][1]


def test_event_pages_oldest_first(api, mongo_db):
    job = make_job(api)
    run_id = str(uuid.uuid4())
    mongo_db.runs.insert_one({"_id": run_id, "job_id": job["id"], "status": "running",
                              "attempt": 1, "created_at": "2026-12-01T00:00:00.000Z"})
    events = [{"_id": str(uuid.uuid4()), "type": "run.log", "run_id": run_id,
               "time": "2026-12-01T00:00:%02d.000Z" % (i // 2), "stream": "stdout",
               "line": str(i)} for i in range(9)]
    mongo_db.events.insert_many(events)
    items, pages = read_pages(api, f"/api/v1/runs/{run_id}/events", 2)
    assert [e["id"] for e in items] == \
        [e["_id"] for e in sorted(events, key=lambda e: (e["time"], e["_id"]))]
    assert pages == 5


def test_bad_page_arguments_are_422(api):
    job = make_job(api)
    path = f"/api/v1/jobs/{job['id']}/runs"
    for query, field, message in (
            ("?limit=0", "limit", "limit: must be a whole number from 1 to 500"),
            ("?limit=501", "limit", "limit: must be a whole number from 1 to 500"),
            ("?limit=ten", "limit", "limit: must be a whole number from 1 to 500"),
            ("?limit=", "limit", "limit: must be a whole number from 1 to 500"),
            ("?after=yesterday", "after",
             "after: is not a cursor of this list (pass back the 'next' of a page)"),
            ("?after=2026-12-01T00:00:00.000Z_", "after",
             "after: is not a cursor of this list (pass back the 'next' of a page)"),
            ("?after=2026-13-01T00:00:00.000Z_abc", "after",
             "after: is not a cursor of this list (pass back the 'next' of a page)"),
            ("?after=2026-12-01T00:00:00.000Z_a%22b", "after",
             "after: is not a cursor of this list (pass back the 'next' of a page)")):
        code, body, _ = api.get(path + query)
        assert (code, body) == (422, {"error": {"code": "invalid_field", "field": field,
                                                "message": message}}), query
    code, body, _ = api.get(f"/api/v1/runs/{uuid.uuid4()}/events?limit=1001")
    assert (code, body["error"]["message"]) == (422, "limit: must be a whole number from 1 to 1000")


def test_concurrent_runs_each_recorded_once_and_one_at_a_time_per_job(api, mongo_db):
    """80 runs of 4 jobs POSTed by 16 threads at once: the API groups their
    records into shared inserts and the worker runs several at once. Every
    run is recorded once, succeeds once, and runs of one job never overlap."""
    conn = api.create("/api/v1/connections",
                      {"name": "mem", "odbc": "Driver=SQLite3;Database=:memory:"})
    project = api.create("/api/v1/projects", {
        "name": "many", "origin_connection_id": conn["id"],
        "destination_connection_id": conn["id"]})
    jobs = [api.create(f"/api/v1/projects/{project['id']}/jobs",
                       {"name": f"j{i}", "kind": "sql", "statements": "SELECT 1"})["id"]
            for i in range(4)]
    answers, lock = [], threading.Lock()

    def post(k):
        for i in range(5):
            status, body, _ = api.post(f"/api/v1/jobs/{jobs[(k + i) % 4]}/runs")
            with lock:
                answers.append((status, body))
    threads = [threading.Thread(target=post, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s for s, _ in answers] == [202] * 80, answers
    run_ids = {b["run_id"] for _, b in answers}
    assert len(run_ids) == 80
    done = [api.wait_run(r) for r in sorted(run_ids)]
    assert [d["status"] for d in done] == ["succeeded"] * 80
    assert mongo_db.runs.count_documents(dict({"job_id": {"$in": jobs}}, **RECORD)) == 80
    assert mongo_db.runs.count_documents({"job_id": {"$in": jobs}}) == 3 * 80
    for kind in ("run.queued", "run.started", "run.succeeded"):
        assert mongo_db.events.count_documents({"job_id": {"$in": jobs}, "type": kind}) == 80
    for job in jobs:
        runs = sorted(run_views(api, mongo_db, {"job_id": job}), key=lambda r: r["started_at"])
        assert len(runs) == 20
        for before, after in zip(runs, runs[1:]):
            assert after["started_at"] >= before["finished_at"], (before, after)
