"""Retention: the scheduler's pruner removes what has outlived its retention,
day by day, and never a run that has not finished, its events, or its lease
(which a finished attempt leaves held, so a lease goes only once its run has
ended)."""
import datetime
import time
import uuid

import pymongo

from conftest import MONGO_URI, Services


def day(days_ago):
    return (datetime.datetime.now(datetime.timezone.utc).date()
            - datetime.timedelta(days=days_ago)).isoformat()


def ids(coll):
    return sorted(d["_id"] for d in coll.find({}, {"_id": 1}))


def test_pruner_keeps_what_is_young_or_still_going(tmp_path):
    client = pymongo.MongoClient(MONGO_URI, serverSelectionTimeoutMS=10000)
    db = client["convutell_ret_" + uuid.uuid4().hex[:8]]
    keep, gone = {}, {}

    def add(coll, doc_id, doc, kept):
        db[coll].insert_one(dict(doc, _id=doc_id))
        (keep if kept else gone).setdefault(coll, []).append(doc_id)

    # Runs: a year (365 days) by default.
    for i in range(3):
        add("runs", f"run-old-{i}", {"status": "succeeded", "day": day(400 + i)}, False)
    add("runs", "run-old-missed", {"status": "missed", "day": day(366)}, False)
    add("runs", "run-old-running", {"status": "running", "day": day(400)}, True)
    add("runs", "run-old-queued", {"status": "queued", "day": day(500)}, True)
    add("runs", "run-364-days", {"status": "failed", "day": day(364)}, True)
    add("runs", "run-today", {"status": "succeeded", "day": day(0)}, True)
    add("runs", "run-retrying", {"status": "retrying", "day": day(0)}, True)
    # Events: 30 days for those of finished runs (or of no run).
    for i in range(4):
        add("events", f"ev-finished-{i}", {"run_id": "run-old-0", "type": "run.log",
                                           "day": day(40 + i)}, False)
    add("events", "ev-no-run", {"type": "job.rejected", "day": day(31)}, False)
    add("events", "ev-unknown-run", {"run_id": "never-recorded", "type": "run.log",
                                     "day": day(45)}, False)
    for i in range(2):
        add("events", f"ev-running-{i}", {"run_id": "run-old-running", "type": "run.log",
                                          "day": day(40)}, True)
    add("events", "ev-29-days", {"run_id": "run-old-0", "type": "run.log", "day": day(29)}, True)
    add("events", "ev-today", {"run_id": "run-today", "type": "run.log", "day": day(0)}, True)
    # Notifications: 90 days.
    add("notifications", "n-old", {"project_id": "p", "day": day(91)}, False)
    add("notifications", "n-young", {"project_id": "p", "day": day(10)}, True)
    # Ticks: a day.
    for i in range(3):
        add("ticks", f"tick-old-{i}", {"claimer": "s", "day": day(2 + i)}, False)
    add("ticks", "tick-today", {"claimer": "s", "day": day(0)}, True)
    # Leases (_id = run id): a day after their claim, and only once the run ended.
    add("leases", "run-364-days", {"state": "held", "day": day(3)}, False)  # ended for good
    add("leases", "lease-done-old", {"state": "done", "day": day(3)}, False)  # no run record
    add("leases", "run-old-running", {"state": "held", "day": day(3)}, True)
    add("leases", "run-old-queued", {"state": "held", "day": day(5)}, True)
    add("leases", "run-retrying", {"state": "retrying", "day": day(3)}, True)
    add("leases", "run-today", {"state": "held", "day": day(0)}, True)
    add("leases", "lease-without-day", {"state": "held"}, True)
    # The SQL console's queries: 30 days once ended, their rows with them.
    add("query_runs", "q-old", {"status": "succeeded", "day": day(31)}, False)
    add("query_runs", "q-old-failed", {"status": "failed", "day": day(40)}, False)
    add("query_runs", "q-old-running", {"status": "running", "day": day(40)}, True)
    add("query_runs", "q-young", {"status": "succeeded", "day": day(29)}, True)
    for q, kept in (("q-old", False), ("q-old-running", True), ("q-young", True)):
        for seq in range(2):
            add("query_rows", f"{q}:{seq}", {"run_id": q, "seq": seq, "rows": []}, kept)
    # Webhook deliveries: 30 days once delivered or failed for good.
    add("webhook_deliveries", "d-delivered", {"status": "delivered", "day": day(31)}, False)
    add("webhook_deliveries", "d-failed", {"status": "failed", "day": day(35)}, False)
    add("webhook_deliveries", "d-pending", {"status": "pending", "day": day(35)}, True)
    add("webhook_deliveries", "d-young", {"status": "delivered", "day": day(1)}, True)
    # Audit records: a year. Idempotency-Key answers: a day (their 24 hours).
    add("audit", "a-old", {"log": "all", "day": day(366)}, False)
    add("audit", "a-young", {"log": "all", "day": day(300)}, True)
    add("idempotency", "i-old", {"user": "u", "day": day(2)}, False)
    add("idempotency", "i-today", {"user": "u", "day": day(0)}, True)

    svc = Services(str(tmp_path), db.name)
    svc.start("scheduler", CONVUTELL_PRUNE_INTERVAL_SECONDS="1")
    try:
        deadline = time.time() + 60
        colls = sorted(set(keep) | set(gone))
        want = {c: sorted(keep.get(c, [])) for c in colls}
        while {c: ids(db[c]) for c in colls} != want and time.time() < deadline:
            time.sleep(0.5)
        assert {c: ids(db[c]) for c in colls} == want, svc.log("scheduler")
        time.sleep(2.5)  # more sweeps change nothing
        assert {c: ids(db[c]) for c in colls} == want
        assert ("pruned 6 events, 4 runs, 1 notifications, 3 ticks, 2 leases, 2 console queries "
                "(with their rows), 2 webhook deliveries, 1 audit records, 1 idempotency answers"
                ) in svc.log("scheduler")
        # Each collection's sweep got as far as the day before its cutoff.
        markers = {m["_id"]: m["through"] for m in db.retention.find()}
        assert markers == {"events": day(31), "runs": day(366), "notifications": day(91),
                           "ticks": day(2), "leases": day(2), "query_runs": day(31),
                           "webhook_deliveries": day(31), "audit": day(366),
                           "idempotency": day(2)}
    finally:
        assert svc.stop("scheduler") == 0
        client.drop_database(db.name)
        client.close()
