"""bench/run --hostile: what hostile input costs, on the bench stack.

1. Slow clients. 1,000 GET /api/v1/health from 127.0.0.2, one at a time,
   alone (the baseline) and while 2,000 connections from 127.0.0.1 trickle a
   byte of a request line every 2 s: p50 and p99, and how many of the 2,000
   the API kept open.
2. Hostile messages. One worker, warmed up, drains N messages of 13 hostile
   kinds written to convutell.jobs: rejections per second, from the first
   message written until the last one is in convutell.jobs.dlq.
3. Worker memory. Its RSS after everything above (hostile messages and valid
   runs, then 3 s idle) and after 100,000 more hostile messages (3 s idle).
4. Valid runs beside rejects. 200 runs of a `sql` job through the API, from
   the first POST to the last final status, alone and while the worker drains
   20,000 hostile messages.
5. With --per-kind N: N messages of each kind alone, drained per second, and
   the CPU each process spent meanwhile (which kind costs what).
Bounded: fixed counts, a timeout on every wait.
"""
import argparse
import datetime
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from signin import auth, sign_in

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ["CONVUTELL_BIN"]
KAFKA = os.environ["CONVUTELL_KAFKA_BOOTSTRAP"]
HTTP_PORT = 28080


def kcat(*args, data=None, timeout=300):
    return subprocess.run(["kcat", "-b", KAFKA, *args], input=data, capture_output=True,
                          check=True, timeout=timeout).stdout


def dlq_end():
    out = kcat("-Q", "-t", "convutell.jobs.dlq:0:-1").decode()
    return int(re.search(r"offset (-?\d+)", out)[1])


def call(method, path, body=None, source="127.0.0.1"):
    c = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=30,
                                   source_address=(source, 0))
    c.request(method, "/api/v1" + path, body=json.dumps(body) if body is not None else None,
              headers=auth({"Content-Type": "application/json"}))
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data or b"null")


KIND_NAMES = ["not JSON", "a JSON array", "an unknown schema", "an unknown field",
              "job.v1 with a definition", "a bad run id", "a made-up job id",
              "another project's job", "a parameter key $where", "64 KiB of x", "attempt 0",
              "a NUL in the schema", "a forged log line"]


def hostile(n, job, project, kind=None):
    """n messages of 13 kinds, one a line (none holds a newline)."""
    def v2(**kw):
        return json.dumps(dict({"schema": "convutell.job.v2", "run_id": str(uuid.uuid4()),
                                "job_id": job, "project_id": project, "attempt": 1,
                                "queued_at": "2026-12-04T00:00:00Z"}, **kw))
    kinds = [
        lambda: "not json {",
        lambda: "[1,2,3]",
        lambda: '{"schema":"convutell.job.v3"}',
        lambda: v2(password="hunter2"),
        lambda: json.dumps({"schema": "convutell.job.v1", "run_id": str(uuid.uuid4()),
                            "job_id": job, "project_id": project, "kind": "sql", "attempt": 1,
                            "queued_at": "2026-12-04T00:00:00Z",
                            "sql": {"connection_id": job, "statements": "DROP TABLE x"}}),
        lambda: v2(run_id="not-a-uuid"),
        lambda: v2(job_id=str(uuid.uuid4())),        # no such job: a store look-up each
        lambda: v2(project_id=str(uuid.uuid4())),    # another project's job
        lambda: v2(parameters={"$where": "1"}),
        lambda: "x" * 65536,
        lambda: v2(attempt=0),
        lambda: '{"schema":"convutell.job.v2\\u0000","run_id":1}',
        lambda: '{"schema":"x\\n2026-12-04 ERROR forged\\u001b[2J"}',
    ]
    only = [int(k) for k in os.environ.get("CV_HOSTILE_KINDS", "").split(",") if k]
    kinds = [kinds[k] for k in only] if only else kinds
    if kind is not None:
        kinds = [kinds[kind]]
    return "\n".join(kinds[i % len(kinds)]() for i in range(n)).encode() + b"\n"


def produce(lines):
    kcat("-P", "-t", "convutell.jobs", "-l", "-X", "message.max.bytes=1000000",
         "-X", "linger.ms=20", "/dev/stdin", data=lines)


def wait_dlq(target, timeout):
    deadline = time.time() + timeout
    while dlq_end() < target:
        if time.time() > deadline:
            raise SystemExit(f"the dead-letter topic stopped at {dlq_end()} of {target}")
        time.sleep(0.05)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read())[1])


def stack_pids():
    """The bench stack's services that run, by name (scripts/stack status)."""
    out = subprocess.run([f"{ROOT}/scripts/stack", "status"], capture_output=True,
                         text=True).stdout
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+running\s+pid (\d+)", out, re.M)}


def cpu_seconds(roots):
    """CPU seconds used so far by each named process with its descendants
    (those that ended count once their parent reaped them), and by this
    bench with the kcat processes it ran."""
    table, kids = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(d)] = (int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]))
        kids.setdefault(int(fields[1]), []).append(int(d))
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, pid in roots.items():
        if pid not in table:
            continue
        total, todo = table[pid][1], [pid]
        while todo:
            p = todo.pop()
            total += table[p][0]
            todo.extend(kids.get(p, []))
        used[name] = total / tick
    t = os.times()
    used["bench (python, kcat)"] = t.user + t.system + t.children_user + t.children_system
    return used


def cpu_split(before, after, wall):
    """'name 1.2 s (45 %)' for each process, busiest first: the share of one core over wall s."""
    spent = sorted(((after[k] - before[k], k) for k in after if k in before), reverse=True)
    return ", ".join(f"{k} {s:.1f} s ({100 * s / wall:.0f} %)" for s, k in spent if s >= 0.05)


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def latencies(n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = call("GET", "/health", source="127.0.0.2")
        out.append((time.perf_counter() - t) * 1000)
        assert status == 200
    return out


def slow_clients(count, requests):
    base = latencies(requests)
    socks, stop = [], threading.Event()
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", HTTP_PORT))
        socks.append(s)
    time.sleep(1)

    def trickle():
        while not stop.is_set():
            for s in socks:
                try:
                    s.send(b"G")
                except OSError:
                    pass
            stop.wait(2)

    t = threading.Thread(target=trickle)
    t.start()
    time.sleep(1)
    loaded = latencies(requests)
    kept = 0
    for s in socks:  # still open: a read would block rather than see the close
        try:
            kept += s.recv(1) is None
        except BlockingIOError:
            kept += 1
        except OSError:
            pass
    stop.set()
    t.join()
    for s in socks:
        s.close()
    return base, loaded, kept


def runs_through_api(job, n):
    """Seconds until the API reads every run final, and until the last of
    them ended in its worker (its finished_at): the difference is the way
    from the worker's end event to the store."""
    t, wall = time.perf_counter(), time.time()
    ids, last_end = [], wall
    for _ in range(n):
        status, body = call("POST", f"/jobs/{job}/runs")
        assert status == 202, body
        ids.append(body["run_id"])
    deadline = time.time() + 600
    for rid in ids:
        while (run := call("GET", f"/runs/{rid}")[1]).get("status") not in ("succeeded", "failed"):
            if time.time() > deadline:
                raise SystemExit(f"run {rid} did not end")
            time.sleep(0.02)
        ended = datetime.datetime.fromisoformat(run["finished_at"].replace("Z", "+00:00"))
        last_end = max(last_end, ended.timestamp())
    return time.perf_counter() - t, last_end - wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--rss-messages", type=int, default=100000)
    ap.add_argument("--slow", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--per-kind", type=int, default=0)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="convutell-hostile-")
    env = dict(os.environ, CONVUTELL_HTTP_ADDR=f"127.0.0.1:{HTTP_PORT}",
               CONVUTELL_ENV_FILE="/dev/null", CONVUTELL_MONGODB_DB="hostile_" + uuid.uuid4().hex[:8],
               CONVUTELL_SECRET_KEY=os.urandom(32).hex(), CONVUTELL_LOG_LEVEL="error")
    sign_in(BIN, env)
    procs = {name: subprocess.Popen([BIN, name], env=env,
                                    stderr=open(f"{tmp}/{name}.log", "a"))
             for name in ("api", "collector", "worker")}
    rows = []
    try:
        for _ in range(300):
            try:
                if call("GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        _, conn = call("POST", "/connections", {"name": "h",
                                                "odbc": "Driver=SQLite3;Database=:memory:"})
        _, project = call("POST", "/projects", {"name": "h", "origin_connection_id": conn["id"],
                                                "destination_connection_id": conn["id"]})
        _, job = call("POST", f"/projects/{project['id']}/jobs",
                      {"name": "j", "kind": "sql", "statements": "SELECT 1"})

        base, loaded, kept = slow_clients(args.slow, args.requests)
        rows.append(("GET /health p50 ms, alone / beside %d slow connections" % args.slow,
                     f"{statistics.median(base):.2f}", f"{statistics.median(loaded):.2f}"))
        rows.append(("GET /health p99 ms, alone / beside %d slow connections" % args.slow,
                     f"{percentile(base, 99):.2f}", f"{percentile(loaded, 99):.2f}"))
        rows.append(("slow connections the API kept open", "", str(kept)))

        worker = procs["worker"].pid
        roots = dict(stack_pids(), **{name: p.pid for name, p in procs.items()})
        start = dlq_end()
        produce(hostile(1000, job["id"], project["id"]))  # warm-up: caches, connections
        wait_dlq(start + 1000, 300)
        cpu = cpu_seconds(roots)
        solo, solo_worker = runs_through_api(job["id"], args.runs)
        cpu_solo = cpu_split(cpu, cpu_seconds(roots), solo)

        lines = hostile(args.messages, job["id"], project["id"])
        start = dlq_end()
        t, cpu = time.perf_counter(), cpu_seconds(roots)
        produce(lines)
        wait_dlq(start + args.messages, 600)
        took = time.perf_counter() - t
        cpu_drain = cpu_split(cpu, cpu_seconds(roots), took)
        rows.append((f"hostile messages drained per second, one worker ({args.messages})", "",
                     f"{args.messages / took:.0f}"))

        start = dlq_end()
        cpu = cpu_seconds(roots)
        feeder = threading.Thread(target=produce, args=(lines,))
        feeder.start()
        beside, beside_worker = runs_through_api(job["id"], args.runs)
        cpu_beside = cpu_split(cpu, cpu_seconds(roots), beside)
        feeder.join()
        wait_dlq(start + args.messages, 600)
        rows.append((f"{args.runs} valid runs, seconds: alone / beside {args.messages} rejects",
                     f"{solo:.2f}", f"{beside:.2f}"))
        rows.append(("the same, until the last ended in the worker (finished_at)",
                     f"{solo_worker:.2f}", f"{beside_worker:.2f}"))

        per_kind = []
        for kind in range(len(KIND_NAMES) if args.per_kind else 0):
            start, cpu, t = dlq_end(), cpu_seconds(roots), time.perf_counter()
            produce(hostile(args.per_kind, job["id"], project["id"], kind))
            wait_dlq(start + args.per_kind, 600)
            spent = time.perf_counter() - t
            per_kind.append((kind, args.per_kind / spent,
                             cpu_split(cpu, cpu_seconds(roots), spent)))

        # Measured once the worker has run jobs too (threads, the ODBC driver
        # loaded, connections kept) and has been idle long enough to trim.
        time.sleep(3)
        rss_before = rss_kib(worker)
        left = args.rss_messages
        start = dlq_end()
        total = left
        while left > 0:
            step = min(left, 20000)
            produce(hostile(step, job["id"], project["id"]))
            left -= step
        wait_dlq(start + total, 1200)
        time.sleep(3)
        rss_after = rss_kib(worker)
        rows.append((f"worker RSS MiB: warmed up / after {args.rss_messages} hostile more",
                     f"{rss_before / 1024:.1f}", f"{rss_after / 1024:.1f}"))
        for name, p in procs.items():
            if p.poll() is not None:
                raise SystemExit(f"{name} exited ({p.returncode}); see {tmp}/{name}.log")
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    print("| measure | baseline | result |")
    print("| --- | --- | --- |")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    if per_kind:
        print()
        print(f"| kind ({args.per_kind} each) | drained /s | CPU meanwhile |")
        print("| --- | ---: | --- |")
        for kind, rate, split in per_kind:
            print(f"| {KIND_NAMES[kind]} | {rate:.0f} | {split} |")
    print()
    print(f"CPU while {args.runs} valid runs ran alone ({solo:.2f} s): {cpu_solo}")
    print(f"CPU while {args.messages} rejects drained ({took:.2f} s): {cpu_drain}")
    print(f"CPU while {args.runs} valid runs ran beside rejects ({beside:.2f} s): {cpu_beside}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
