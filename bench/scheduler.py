"""Scheduler lateness: N schedules firing every second for S seconds.

Lateness is the time a job message reached Kafka (the broker's append time:
bench/run sets convutell.jobs to LogAppendTime) minus the tick it is for. The
schedules are written straight into MongoDB (the API would only add its own
time), one `convutell scheduler` process fires them, and its CPU time over the
window comes from /proc. The baseline in the same run is the same measurement
with a single schedule: what the machine and Kafka cost without load.
Bounded: N x S messages, a fixed window, a timeout on every wait.
BENCH_LOG_LEVEL sets the scheduler's log level (logs in --tmp); BENCH_KEEP=1
keeps each measurement's database and prints its name.
"""
import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid

import pymongo

BIN = os.environ["CONVUTELL_BIN"]
KAFKA = os.environ["CONVUTELL_KAFKA_BOOTSTRAP"]
MONGO_URI = os.environ["CONVUTELL_MONGODB_URI"]
UTC = dt.timezone.utc


def rfc(ms):
    return dt.datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_ms(text):
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def end_offsets():
    """The current end offset of each convutell.jobs partition."""
    out = subprocess.run(["kcat", "-b", KAFKA, "-Q", "-t", "convutell.jobs:0:-1",
                          "-t", "convutell.jobs:1:-1", "-t", "convutell.jobs:2:-1",
                          "-t", "convutell.jobs:3:-1", "-t", "convutell.jobs:4:-1",
                          "-t", "convutell.jobs:5:-1"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    offsets = {}
    for line in out.splitlines():  # "convutell.jobs [3] offset 42"
        m = re.fullmatch(r"\S+ \[(\d+)\] offset (-?\d+)", line.strip())
        if m:
            offsets[int(m.group(1))] = int(m.group(2))
    if len(offsets) != 6:
        raise RuntimeError(f"kcat -Q gave {out!r}")
    return offsets


def statuses(db, job_ids):
    """Run records of the jobs by status, read job by job: an equality the
    store's indexes answer however many other runs it holds."""
    status = {}
    for job in job_ids:
        for r in db.runs.find({"job_id": job, "piece": {"$exists": False}}, {"status": 1}):
            status[r["status"]] = status.get(r["status"], 0) + 1
    return status


def measure(n, seconds, tmp, db_name=None):
    """One measurement; in a fresh database that is dropped afterwards, or in
    db_name (the history bench's store, left as it is apart from the ticks'
    runs and the jobs added here)."""
    keep = db_name is not None or os.environ.get("BENCH_KEEP")
    db_name = db_name or "bench_sched_" + uuid.uuid4().hex[:8]
    client = pymongo.MongoClient(MONGO_URI)
    db = client[db_name]
    env = dict(os.environ, CONVUTELL_MONGODB_DB=db_name, CONVUTELL_ENV_FILE="/dev/null",
               CONVUTELL_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "warn"))
    log = open(os.path.join(tmp, f"scheduler-{n}.log"), "wb")
    # The scheduler starts first: its Kafka producer is connected (and has its
    # idempotence id) before the first tick, as in a running deployment.
    proc = subprocess.Popen([BIN, "scheduler"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(3)
        start = (int(time.time()) + 4) * 1000
        project = str(uuid.uuid4())
        db.projects.insert_one({"_id": project, "name": "bench", "active": True,
                                "origin_connection_id": str(uuid.uuid4()),
                                "destination_connection_id": str(uuid.uuid4())})
        before = end_offsets()
        # One warm-up tick, two seconds before the measured ones, in another
        # project: the producer's first message to convutell.jobs waits for the
        # topic's metadata, once per process.
        warm = str(uuid.uuid4())
        db.projects.insert_one({"_id": warm, "name": "warm-up", "active": True,
                                "origin_connection_id": str(uuid.uuid4()),
                                "destination_connection_id": str(uuid.uuid4())})
        db.jobs.insert_one({
            "_id": str(uuid.uuid4()), "project_id": warm, "name": "warm-up",
            "kind": "sql", "statements": "SELECT 1", "connection": "destination",
            "scheduled": True,
            "schedule": {"interval_seconds": 1, "start_at": rfc(start - 2000),
                         "end_at": rfc(start - 1500), "paused": False, "misfire": "run_once",
                         "misfire_max": 1, "concurrency": "allow", "max_attempts": 1,
                         "backoff_seconds": 60, "anchor_at": rfc(start - 2000),
                         "next_run_at": rfc(start - 2000)}})
        job_ids = [str(uuid.uuid4()) for _ in range(n)]
        db.jobs.insert_many([{
            "_id": job_ids[i], "project_id": project, "name": f"j{i}", "kind": "sql",
            "statements": "SELECT 1", "connection": "destination", "scheduled": True,
            "schedule": {"interval_seconds": 1, "start_at": rfc(start),
                         "end_at": rfc(start + (seconds - 1) * 1000), "paused": False,
                         "misfire": "run_once", "misfire_max": 100, "concurrency": "allow",
                         "max_attempts": 1, "backoff_seconds": 60, "anchor_at": rfc(start),
                         "next_run_at": rfc(start)}} for i in range(n)])
        while time.time() * 1000 < start - 500:
            time.sleep(0.05)
        cpu0, wall0 = cpu_seconds(proc.pid), time.time()
        while time.time() * 1000 < start + seconds * 1000 + 1000:
            time.sleep(0.1)
        cpu = cpu_seconds(proc.pid) - cpu0
        wall = time.time() - wall0
        # A scheduler that fell behind still records every tick (queued or
        # missed); wait a bounded time for the last ones.
        deadline = time.time() + 120
        while sum(statuses(db, job_ids).values()) < n * seconds and time.time() < deadline:
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    lateness, seen, worst = [], set(), {}
    for part, first in before.items():
        out = subprocess.run(["kcat", "-b", KAFKA, "-C", "-t", "convutell.jobs", "-p", str(part),
                              "-o", str(first), "-e", "-q", "-f", "%T %s\n"],
                             capture_output=True, text=True, timeout=120, check=True).stdout
        for line in out.splitlines():
            stamp, payload = line.split(" ", 1)
            message = json.loads(payload)
            if message.get("project_id") == project:
                late = int(stamp) - parse_ms(message["tick_at"])
                lateness.append(late)
                seen.add(message["run_id"])
                k = (parse_ms(message["tick_at"]) - start) // 1000
                worst[k] = max(worst.get(k, 0), late)
    status = statuses(db, job_ids)
    records = sum(status.values())
    if not keep:
        client.drop_database(db_name)
    elif os.environ.get("BENCH_KEEP"):
        print(db_name, file=sys.stderr)
    # Every tick accounted for exactly once: published (one message per run,
    # no copies) or recorded as missed.
    assert len(seen) == len(lateness) == status.get("queued", 0), (len(seen), len(lateness), status)
    assert records == n * seconds, (records, n * seconds, status)
    lateness.sort()
    q = statistics.quantiles(lateness, n=100, method="inclusive") if len(lateness) > 1 else \
        [lateness[0]] * 99
    return {"ticks": n * seconds, "messages": len(lateness), "missed": status.get("missed", 0),
            "p50": q[49], "p99": q[98], "max": lateness[-1], "cpu": cpu / wall,
            "worst_by_tick": [worst.get(k, None) for k in range(seconds)]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedules", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--tmp", default="var/bench-scheduler")
    args = ap.parse_args()
    os.makedirs(args.tmp, exist_ok=True)
    rows = []
    for n in [1] + args.schedules:
        r = measure(n, args.seconds, args.tmp)
        rows.append((n, r))
        print(f"{n} schedules: {r}", file=sys.stderr, flush=True)
    base = rows[0][1]
    print(f"\n`bench/run --scheduler` (schedules firing every second for {args.seconds} s, "
          f"misfire run_once; lateness = broker append time - tick time; baseline: 1 schedule)\n")
    print("| schedules | ticks | published | missed | lateness p50 | p99 | max | "
          "p99 vs baseline | scheduler CPU |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, r in rows:
        ratio = r["p99"] / base["p99"] if base["p99"] > 0 else float("nan")
        print(f"| {n:,} | {r['ticks']:,} | {r['messages']:,} | {r['missed']:,} | "
              f"{r['p50']:.0f} ms | {r['p99']:.0f} ms | {r['max']} ms | {ratio:.1f}x | "
              f"{100 * r['cpu']:.1f}% of a core |")
    print("| Airflow 2 (published) | | | | seconds | | | | |")


if __name__ == "__main__":
    main()
