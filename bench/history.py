"""History benchmark: what a page costs as the run store grows. The store is
filled with documents shaped exactly as the services write them (each run as
its record and its start and end pieces, and five events per run: queued, started, a progress report,
a log line, the end) across 1,000 jobs, then the API is asked, at each size:

  GET /runs/{id}, GET /jobs/{id}/runs?limit=50 (a job's newest 50),
  GET /runs/{id}/events

200 times each (random ids, one keep-alive client), p50 and p99, and the
scheduler's tick lateness with 1,000 schedules firing every second for 20 s
in the same store (as bench/scheduler.py measures it). The
collector's rate is measured at each size too: events of 2,000 fresh runs
produced to Kafka, timed until the last is stored, against an unordered
insert_many of the same event documents into a scratch `events` collection of
the same store in the same run, with the indexes the services give `events`
(the baseline the issue names: storing the documents, and nothing else).

    bench/run --history [--sizes 10000,1000000] [--jobs 1000]
"""
import argparse
import datetime
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid

import pymongo

import scheduler
from signin import auth, sign_in

BIN = os.environ["CONVUTELL_BIN"]
KAFKA = os.environ["CONVUTELL_KAFKA_BOOTSTRAP"]
MONGO_URI = os.environ["CONVUTELL_MONGODB_URI"]
HTTP_HOST, HTTP_PORT = "127.0.0.1", 28080
T0 = None  # the time of each job's first run: set by main() so that the newest runs are recent


def stamp(ms):
    t = T0 + datetime.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def run_docs(job_id, project_id, n_before, n):
    """n runs of a job as the services leave them (the API's record, the collector's
    start and end pieces, runs/cv_runfold.h) and their five events each."""
    runs, events = [], []
    for i in range(n_before, n_before + n):
        rid = str(uuid.uuid4())
        base = i * 60_000 + random.randrange(60_000)
        day = stamp(base)[:10]
        started = str(uuid.uuid4())
        ended = str(uuid.uuid4())
        filed = {"run_id": rid, "created_at": stamp(base), "day": day, "job_id": job_id,
                 "project_id": project_id,
                 "buckets": [f"{job_id}@{stamp(base)[:n]}" for n in (16, 15, 13, 10, 7)]}
        runs += [
            dict(filed, _id=rid, trigger="manual", max_attempts=1, attempt=1, status="queued",
                 queued_at=stamp(base)),
            dict(filed, _id=f"{rid}.1.started", piece="started", attempt=1, event_id=started,
                 set={"status": "running", "started_at": stamp(base + 5), "worker": "bench-1",
                      "attempt": 1},
                 entry={"event_id": started, "worker": "bench-1", "started_at": stamp(base + 5)},
                 created={k: v for k, v in dict(filed, trigger="manual", max_attempts=1,
                                                attempt=1).items() if k != "run_id"}),
            dict(filed, _id=f"{rid}.1.ended", piece="ended", attempt=1, event_id=ended,
                 set={"status": "succeeded", "finished_at": stamp(base + 25), "worker": "bench-1",
                      "attempt": 1, "rows_read": 0, "rows_written": 1, "duration_ms": 20,
                      "error": None}),
        ]
        common = {"run_id": rid, "job_id": job_id, "project_id": project_id, "day": day}
        events += [
            dict(common, _id=str(uuid.uuid4()), type="run.queued", time=stamp(base),
                 attempt=1, trigger="manual"),
            dict(common, _id=started, type="run.started", time=stamp(base + 5),
                 worker="bench-1", attempt=1, trigger="manual"),
            dict(common, _id=str(uuid.uuid4()), type="run.progress", time=stamp(base + 10),
                 worker="bench-1", attempt=1, rows_read=0, rows_written=0),
            dict(common, _id=str(uuid.uuid4()), type="run.log", time=stamp(base + 15),
                 worker="bench-1", attempt=1, stream="stdout", line="statement 1: 1 rows"),
            dict(common, _id=ended, type="run.succeeded", time=stamp(base + 25),
                 worker="bench-1", attempt=1, rows_read=0, rows_written=1, duration_ms=20),
        ]
    return runs, events


class Client:
    def __init__(self):
        self.conn = http.client.HTTPConnection(HTTP_HOST, HTTP_PORT, timeout=60)

    def get(self, path):
        try:
            self.conn.request("GET", "/api/v1" + path, headers=auth())
            resp = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            # The server closes a keep-alive connection left idle while filling.
            self.conn.close()
            self.conn = http.client.HTTPConnection(HTTP_HOST, HTTP_PORT, timeout=60)
            self.conn.request("GET", "/api/v1" + path, headers=auth())
            resp = self.conn.getresponse()
        body = resp.read()
        assert resp.status == 200, (path, resp.status, body[:200])
        return json.loads(body)

    def post(self, path, body):
        self.conn.request("POST", "/api/v1" + path, body=json.dumps(body),
                          headers=auth({"Content-Type": "application/json"}))
        resp = self.conn.getresponse()
        return json.loads(resp.read())


def timed(fn, n=200):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    out.sort()
    return out[len(out) // 2], out[min(len(out) - 1, int(0.99 * len(out)))]


def collector_rate(db, job_ids, per_job, project_id, tmp):
    """Events of 2,000 fresh runs through Kafka and the collector, against
    insert_many of the same documents."""
    runs, events = [], []
    for k in range(2000):
        j = job_ids[k % len(job_ids)]
        r, e = run_docs(j, project_id, per_job[j], 1)
        per_job[j] += 1
        runs += r
        events += e
    # The API wrote the runs' records before their jobs ran: off the clock.
    records = [r for r in runs if "piece" not in r]
    db.runs.insert_many(records, ordered=False)
    queued = {r["_id"]: r["queued_at"] for r in records}
    lines = []
    for e in events:
        msg = {"schema": "convutell.event.v1", "event_id": e["_id"], "type": e["type"],
               "time": e["time"], "run_id": e["run_id"], "job_id": e["job_id"],
               "project_id": e["project_id"], "queued_at": queued[e["run_id"]]}
        for k in ("worker", "attempt", "trigger", "rows_read", "rows_written", "duration_ms",
                  "stream", "line"):
            if k in e:
                msg[k] = e[k]
        lines.append(f"{e['run_id']}\t{json.dumps(msg)}")
    path = f"{tmp}/events.txt"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    ids = [e["_id"] for e in events]
    t = time.perf_counter()
    subprocess.run(["kcat", "-b", KAFKA, "-P", "-t", "convutell.events", "-K", "\t", "-l", path],
                   check=True)
    # Polled by _id, one document at a time (FerretDB reads a whole collection
    # for an $in), and one look-up per poll: the last events and runs come at
    # the end, and 70 look-ups every 50 ms would load the store being measured.
    # A run's end is its "ended" piece (runs/cv_runfold.h).
    pending = [("events", i) for i in ids[-50:]] + \
        [("runs", r["_id"]) for r in runs[-60:] if r.get("piece") == "ended"]
    while pending:
        coll, i = pending[0]
        doc = next(iter(db[coll].find({"_id": i}).limit(1)), None)
        if doc is not None:
            pending.pop(0)
        else:
            time.sleep(0.05)
    collector = len(events) / (time.perf_counter() - t)
    # A collection named `events` in a database of its own: the local store
    # gives it the same PostgreSQL indexes as the services' (scripts/store.sql
    # goes by the collection's name), and MongoDB the same indexes, copied.
    raw_db = db.client[db.name + "_raw"]
    raw_db.drop_collection("events")
    scratch = raw_db["events"]
    for name, spec in db.events.index_information().items():
        if name != "_id_":
            scratch.create_index(spec["key"], name=name)
    t = time.perf_counter()
    for i in range(0, len(events), 500):
        scratch.insert_many(events[i:i + 500], ordered=False)
    raw = len(events) / (time.perf_counter() - t)
    db.client.drop_database(raw_db.name)
    return collector, raw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,1000000")
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--schedules", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    # One run a minute per job, the last of them (after the collector's runs
    # at each size) about now: a page of a job's newest runs is a page of
    # recent ones, as in a store in use.
    global T0
    minutes = (max(sizes) + 2000 * len(sizes)) // args.jobs + 1
    T0 = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=minutes)
    tmp = tempfile.mkdtemp(prefix="convutell-history-")
    dbname = "hist_" + uuid.uuid4().hex[:8]
    env = dict(os.environ, CONVUTELL_HTTP_ADDR=f"{HTTP_HOST}:{HTTP_PORT}",
               CONVUTELL_ENV_FILE="/dev/null", CONVUTELL_MONGODB_DB=dbname,
               CONVUTELL_SECRET_KEY=os.urandom(32).hex(), CONVUTELL_LOG_LEVEL="warn")
    sign_in(BIN, env)
    procs = [subprocess.Popen([BIN, name], env=env, stderr=open(f"{tmp}/{name}.log", "a"))
             for name in ("api", "collector")]
    mongo = pymongo.MongoClient(MONGO_URI)
    db = mongo[dbname]
    rows = []
    try:
        c = Client()
        for _ in range(200):
            try:
                c.get("/health")
                break
            except (OSError, AssertionError, http.client.HTTPException):
                c = Client()
                time.sleep(0.1)
        conn = c.post("/connections", {"name": "h", "odbc": "Driver=SQLite3;Database=:memory:"})
        project = c.post("/projects", {"name": "h", "origin_connection_id": conn["id"],
                                       "destination_connection_id": conn["id"]})["id"]
        job_ids = [c.post(f"/projects/{project}/jobs",
                          {"name": f"j{i}", "kind": "sql", "statements": "SELECT 1"})["id"]
                   for i in range(args.jobs)]
        # The jobs were there before their runs.
        db.jobs.update_many({"project_id": project}, {"$set": {"created_at": stamp(-60_000)}})
        per_job = {j: 0 for j in job_ids}
        have = stored_events = 0
        for size in sizes:
            t = time.perf_counter()
            while have < size:
                step = min(size - have, 20 * len(job_ids))
                runs, events = [], []
                for k in range(step):
                    j = job_ids[(have + k) % len(job_ids)]
                    r, e = run_docs(j, project, per_job[j], 1)
                    per_job[j] += 1
                    runs += r
                    events += e
                for i in range(0, len(runs), 1000):
                    db.runs.insert_many(runs[i:i + 1000], ordered=False)
                for i in range(0, len(events), 1000):
                    db.events.insert_many(events[i:i + 1000], ordered=False)
                stored_events += len(events)
                have += step
                print(f"bench: {have:,} runs stored ({time.perf_counter() - t:.0f} s)",
                      file=sys.stderr)
            run_ids = [d["_id"] for j in random.sample(job_ids, 5)
                       for d in db.runs.find({"job_id": j}, {"_id": 1, "piece": 1})
                       if "piece" not in d]
            # Counted by the bench: FerretDB counts a collection by reading it whole
            # (three minutes at five million events).
            row = {"size": size, "events": stored_events}
            row["run"] = timed(lambda: c.get(f"/runs/{random.choice(run_ids)}"))
            row["history"] = timed(lambda: c.get(f"/jobs/{random.choice(job_ids)}/runs?limit=50"))
            row["events_page"] = timed(lambda: c.get(f"/runs/{random.choice(run_ids)}/events"))
            row["collector"], row["raw"] = collector_rate(db, job_ids, per_job, project, tmp)
            have += 2000
            stored_events += 2000 * 5
            sched = scheduler.measure(args.schedules, args.seconds, tmp, db_name=dbname)
            row["ticks"] = (sched["p50"], sched["p99"], sched["missed"])
            have += args.schedules * args.seconds
            stored_events += args.schedules * args.seconds  # their run.queued events
            print(f"bench: at {size:,} runs: {row}", file=sys.stderr)
            rows.append(row)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
        mongo.drop_database(dbname)

    def missed(r):
        return f" ({r['ticks'][2]:,} missed)" if r["ticks"][2] else ""

    print(f"\n| runs in the store | events | GET a run p50 / p99 | a job's newest 50 p50 / p99 "
          "| a run's events p50 / p99 | collector events/s | raw insert_many events/s "
          f"| collector / raw | tick lateness p50 / p99 ({args.schedules:,} schedules) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['size']:,} | {r['events']:,} | {r['run'][0]:.1f} / {r['run'][1]:.1f} ms "
              f"| {r['history'][0]:.1f} / {r['history'][1]:.1f} ms "
              f"| {r['events_page'][0]:.1f} / {r['events_page'][1]:.1f} ms "
              f"| {r['collector']:,.0f} | {r['raw']:,.0f} | {r['collector'] / r['raw']:.2f} "
              f"| {r['ticks'][0]:.0f} / {r['ticks'][1]:.0f} ms{missed(r)} |")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        print(f"\nGrowth from {a['size']:,} to {b['size']:,} runs (p99): GET a run "
              f"{b['run'][1] / a['run'][1]:.2f}x, a job's newest 50 "
              f"{b['history'][1] / a['history'][1]:.2f}x, a run's events "
              f"{b['events_page'][1] / a['events_page'][1]:.2f}x, collector rate "
              f"{b['collector'] / a['collector']:.2f}x, tick lateness "
              f"{b['ticks'][1] / max(a['ticks'][1], 1):.2f}x")


if __name__ == "__main__":
    main()
