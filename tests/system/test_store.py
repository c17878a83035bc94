"""The run store: every service creates the indexes its queries need at
start-up, and one table of final statuses decides what may still change."""
import os
import time
import uuid

import pymongo

from conftest import MONGO_URI, Services

# Every index the services' queries need, by collection, written out by hand:
# a query added without its index, or an index dropped, fails here.
EXPECTED = {
    "runs": {"_id_": [("_id", 1)],
             "job_created": [("job_id", 1), ("created_at", -1)],
             "job_status": [("job_id", 1), ("status", 1)]},
    "events": {"_id_": [("_id", 1)], "run_time": [("run_id", 1), ("time", 1)]},
    "notifications": {"_id_": [("_id", 1)],
                      "project_created": [("project_id", 1), ("created_at", -1)]},
    "leases": {"_id_": [("_id", 1)],
               "state_expires": [("state", 1), ("expires_at", 1)],
               "state_released": [("state", 1), ("released_at", 1)]},
    "ticks": {"_id_": [("_id", 1)], "claimer_tick": [("claimer", 1), ("tick_ms", 1)]},
    "schedulers": {"_id_": [("_id", 1)], "beat": [("beat_ms", 1)]},
    "jobs": {"_id_": [("_id", 1)], "next_run": [("schedule.next_run_at", 1)],
             "project": [("project_id", 1)]},
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

