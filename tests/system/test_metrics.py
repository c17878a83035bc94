"""Prometheus metrics (CONVUTELL_METRICS_ADDR) of the four services: the text
format read back by prometheus_client's parser and checked line by line, and
each metric moving exactly as the store says the work moved."""
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from test_scheduler import put_schedule, schedulers, wait_for  # noqa: F401 (a fixture)
from test_transfer import setup_job

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FINAL_EVENTS = ("run.succeeded", "run.failed", "run.cancelled", "run.timed_out")

# What each service exposes, by family name (the parser drops a counter's _total).
EXPECTED = {
    "api": {"convutell_http_requests": "counter",
            "convutell_http_request_duration_seconds": "histogram",
            "convutell_api_run_reads": "counter"},
    "worker": {"convutell_jobs_consumed": "counter", "convutell_jobs_rejected": "counter",
               "convutell_runs_finished": "counter", "convutell_rows_read": "counter",
               "convutell_rows_written": "counter", "convutell_run_duration_seconds": "histogram",
               "convutell_kafka_consumer_lag": "gauge"},
    "collector": {"convutell_events_applied": "counter",
                  "convutell_event_apply_latency_seconds": "histogram",
                  "convutell_kafka_consumer_lag": "gauge"},
    "scheduler": {"convutell_ticks_fired": "counter", "convutell_tick_lateness_seconds": "histogram",
                  "convutell_kafka_consumer_lag": "gauge"},
}


def check_text(text):
    """What the parser lets pass but the format forbids: a sample before its
    family's HELP and TYPE, histogram buckets not cumulative, +Inf not the count."""
    typed, buckets = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in typed, f"{name} typed twice"
            typed[name] = kind
            continue
        name = line.split("{")[0].split(" ")[0]
        family = next((f for f in typed if name in (f, f + "_total", f + "_bucket", f + "_sum",
                                                    f + "_count")), None)
        assert family, f"sample before its TYPE: {line}"
        if name.endswith("_bucket"):
            labels, value = line.rsplit(" ", 1)
            series = labels.split('le="')[0]
            buckets.setdefault(series, []).append(float(value))
        if name.endswith("_count") and typed[family] == "histogram":
            labels, value = line.rsplit(" ", 1)
            series = labels.replace("_count", "_bucket", 1)
            series = series + "{" if "{" not in series else series[:-1] + ","
            got = buckets[series]
            assert got == sorted(got), f"buckets not cumulative: {series}"
            assert got[-1] == float(value), f"+Inf bucket is not the count: {series}"


def scrape(addr):
    """{(sample name, labels as a sorted tuple): value} and the families' types."""
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == CONTENT_TYPE
        text = resp.read().decode()
    check_text(text)
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def total(samples, name, **labels):
    """The sum of name's samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def lag(addr, group):
    """The consumer group's lag as the process at addr shows it (which must)."""
    samples, _ = scrape(addr)
    key = ("convutell_kafka_consumer_lag", (("group", group),))
    assert key in samples, sorted(samples)
    return samples[key]


def store_events(mongo_db):
    """Events of the session by type, and rows written by final events."""
    counts, rows = {}, 0
    for ev in mongo_db.events.find({}, {"type": 1, "rows_written": 1}):
        counts[ev["type"]] = counts.get(ev["type"], 0) + 1
        if ev["type"] in FINAL_EVENTS and ev.get("rows_written", -1) > 0:
            rows += ev["rows_written"]
    return counts, rows


def test_every_service_serves_its_metrics(services, schedulers):  # noqa: F811
    schedulers("scheduler")
    for name, families in EXPECTED.items():
        _, types = scrape(services.metrics[name])
        for family, kind in families.items():
            assert types.get(family) == kind, (name, family, types)
    addr = services.metrics["api"]
    try:
        urllib.request.urlopen(f"http://{addr}/other", timeout=10)
        raise AssertionError("served a path other than /metrics")
    except urllib.error.HTTPError as e:
        assert (e.code, e.read()) == (404, b"not found: metrics are at /metrics\n")
    req = urllib.request.Request(f"http://{addr}/metrics", data=b"x", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("took a POST")
    except urllib.error.HTTPError as e:
        assert (e.code, e.read()) == (405, b"only GET /metrics\n")


def test_metrics_move_as_the_store_does(api, pg, mongo_db, services, tmp_path):
    _, _, _, _, job = setup_job(api, pg, tmp_path, "accounts_metrics", rows=500)
    worker0, _ = scrape(services.metrics["worker"])
    collector0, _ = scrape(services.metrics["collector"])
    events0, rows0 = store_events(mongo_db)
    api0, _ = scrape(services.metrics["api"])

    runs = []
    for _ in range(3):
        status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
        assert status == 202, run
        runs.append(run["run_id"])
    for run_id in runs:
        assert api.wait_run(run_id)["status"] == "succeeded"
    api1, _ = scrape(services.metrics["api"])
    for run_id in runs:  # exactly six reads of a run between two scrapes
        for _ in range(2):
            assert api.get(f"/api/v1/runs/{run_id}")[0] == 200
    api2, _ = scrape(services.metrics["api"])

    post = {"route": "POST /api/v1/jobs/{}/runs", "status": "202"}
    assert total(api1, "convutell_http_requests_total", **post) - \
        total(api0, "convutell_http_requests_total", **post) == 3
    get = {"route": "GET /api/v1/runs/{}"}
    assert total(api2, "convutell_http_requests_total", status="200", **get) - \
        total(api1, "convutell_http_requests_total", status="200", **get) == 6
    assert total(api2, "convutell_http_request_duration_seconds_count", **get) - \
        total(api1, "convutell_http_request_duration_seconds_count", **get) == 6
    # Each read asks for its run once; an ended run comes from the API's cache
    # while it is fresh (CONVUTELL_CACHE_MS, 2 s): the second read of each at least.
    reads = {where: total(api2, "convutell_api_run_reads_total", **{"from": where}) -
             total(api1, "convutell_api_run_reads_total", **{"from": where})
             for where in ("cache", "store")}
    assert reads["cache"] + reads["store"] == 6 and reads["cache"] >= 3, reads

    # The worker counts an end once its event is acknowledged and the collector
    # once its run moved: both before or just after the API shows the run final.
    def settled():
        worker, _ = scrape(services.metrics["worker"])
        collector, _ = scrape(services.metrics["collector"])
        events, rows = store_events(mongo_db)
        done = {t: events.get(t, 0) - events0.get(t, 0) for t in FINAL_EVENTS}
        counted = {t: total(worker, "convutell_runs_finished_total", status=t[4:]) -
                   total(worker0, "convutell_runs_finished_total", status=t[4:]) for t in FINAL_EVENTS}
        applied = {t: total(collector, "convutell_events_applied_total", type=t) -
                   total(collector0, "convutell_events_applied_total", type=t)
                   for t in FINAL_EVENTS + ("run.started",)}
        stored = dict(done, **{"run.started": events.get("run.started", 0) -
                               events0.get("run.started", 0)})
        if counted != done or applied != stored:
            return None
        return worker, collector, done, rows - rows0

    worker, collector, done, rows = wait_for(settled, 15, "metrics to match the store")
    assert done["run.succeeded"] >= 3
    assert total(worker, "convutell_rows_written_total") - \
        total(worker0, "convutell_rows_written_total") == rows >= 1500
    ended = sum(done.values())
    durations = total(worker, "convutell_run_duration_seconds_count") - \
        total(worker0, "convutell_run_duration_seconds_count")
    assert durations >= ended
    assert total(collector, "convutell_event_apply_latency_seconds_count") > \
        total(collector0, "convutell_event_apply_latency_seconds_count")
    # Nothing left behind on the topic once every run is final.
    wait_for(lambda: lag(services.metrics["worker"], "convutell-workers") == 0, 15,
             "the workers' lag to be 0")


def test_lag_counts_what_a_busy_worker_has_not_fetched(api, services):
    """A worker whose one slot is busy pauses its consumer: job messages
    published meanwhile wait on the topic, and its lag says how many are not
    done (with the one it runs: its offset is committed once the run ends)."""
    services.stop("worker")
    services.start("worker", CONVUTELL_WORKER_CONCURRENCY="1")
    try:
        conn = api.create("/api/v1/connections", {"name": "c", "odbc": "Driver=SQLite3;Database=:memory:"})
        project = api.create("/api/v1/projects", {"name": "lag", "origin_connection_id": conn["id"],
                                                  "destination_connection_id": conn["id"]})
        job = api.create(f"/api/v1/projects/{project['id']}/jobs", {
            "name": "sleepy", "kind": "python",
            "script": "import json, os, time\n"
                      "time.sleep(json.loads(os.environ['CONVUTELL_PARAMETERS']).get('s', 0))\n"})
        status, first, _ = api.post(f"/api/v1/jobs/{job['id']}/runs", {"parameters": {"s": 8}})
        assert status == 202, first
        wait_for(lambda: api.get(f"/api/v1/runs/{first['run_id']}")[1]["status"] == "running",
                 30, "the first run to start")
        time.sleep(2)  # busy for a second: the consumer is paused
        later = [api.post(f"/api/v1/jobs/{job['id']}/runs")[1]["run_id"] for _ in range(4)]
        assert lag(services.metrics["worker"], "convutell-workers") == 5
        for run_id in [first["run_id"]] + later:
            assert api.wait_run(run_id)["status"] == "succeeded"
        wait_for(lambda: lag(services.metrics["worker"], "convutell-workers") == 0, 15,
                 "the workers' lag to be 0")
    finally:
        services.stop("worker")
        services.start("worker")


def test_tick_metrics_count_the_scheduled_runs(api, pg, mongo_db, services, tmp_path,
                                               schedulers):  # noqa: F811
    _, _, _, _, job = setup_job(api, pg, tmp_path, "accounts_metrics_ticks", rows=10)
    schedulers("scheduler")
    put_schedule(api, job, interval_seconds=1)
    wait_for(lambda: mongo_db.runs.count_documents({"job_id": job["id"], "trigger": "schedule",
                                                    "piece": {"$exists": False}}) >= 3,
             30, "three scheduled runs")
    status, _, _ = api.call("DELETE", f"/api/v1/jobs/{job['id']}/schedule")
    assert status == 200
    # Every scheduled run of the job that ran was published by this scheduler
    # (the only one) before the scrape; other jobs' schedules of the session may
    # have fired too.
    time.sleep(2)
    status, page, _ = api.get(f"/api/v1/jobs/{job['id']}/runs?trigger=schedule&status=succeeded")
    assert status == 200 and page["next"] is None, page
    ran = len(page["runs"])
    samples, _ = scrape(services.metrics["scheduler"])
    fired = total(samples, "convutell_ticks_fired_total")
    assert fired >= ran >= 3
    # Written out just before the counter: a tick published in between is in fired only.
    assert fired - 1 <= total(samples, "convutell_tick_lateness_seconds_count") <= fired
