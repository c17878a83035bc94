"""What a project's runs say: its log lines across runs (search, time range,
job, pages), its stats per hour or day (checked against the runs' own final
events), the original product's POST /CreateProjects, and CORS."""
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import BIN, PG_ODBC, bearer
from test_http_edges import start_limited
from test_rights import missing, name, person

FINAL = ("run.succeeded", "run.failed", "run.cancelled", "run.timed_out")


@pytest.fixture(scope="module")
def busy(api):
    """A project whose job `ok` ran 5 times and `bad` twice, and a viewer of it."""
    owner, owner_api = person(api, "iown")
    conn = owner_api.create("/api/v1/connections", {"name": "c", "odbc": PG_ODBC})
    project = owner_api.create("/api/v1/projects", {"name": name("busy"),
                                                    "origin_connection_id": conn["id"],
                                                    "destination_connection_id": conn["id"]})
    jobs = {
        "ok": owner_api.create(f"/api/v1/projects/{project['id']}/jobs",
                               {"name": "ok", "kind": "sql",
                                "statements": "CREATE TEMP TABLE t AS SELECT 1 AS x; "
                                              "INSERT INTO t SELECT generate_series(1, 3)"}),
        "bad": owner_api.create(f"/api/v1/projects/{project['id']}/jobs",
                                {"name": "bad", "kind": "sql",
                                 "statements": "SELECT * FROM no_such_table_for_stats"}),
    }
    runs = []
    for key, times in (("ok", 5), ("bad", 2)):
        for _ in range(times):
            status, body, _ = owner_api.post(f"/api/v1/jobs/{jobs[key]['id']}/runs")
            assert status == 202, body
            runs.append(owner_api.wait_run(body["run_id"]))
    viewer, viewer_api = person(api, "iview")
    owner_api.create(f"/api/v1/projects/{project['id']}/members", {"user": viewer,
                                                                   "role": "viewer"})
    return project, jobs, runs, owner_api, viewer_api


def all_pages(client, path):
    items, cursor = [], None
    while True:
        sep = "&" if "?" in path else "?"
        status, page, _ = client.get(path + (f"{sep}cursor={cursor}" if cursor else ""))
        assert status == 200, page
        items += page["logs"]
        cursor = page.get("next")
        if not cursor:
            return items


def test_project_logs_newest_first_filtered_and_paged(busy, mongo_db):
    project, jobs, runs, _, viewer = busy
    base = f"/api/v1/projects/{project['id']}/logs"
    stored = list(mongo_db.events.find({"project_id": project["id"], "type": "run.log"})
                  .sort([("time", -1), ("_id", -1)]))
    assert len(stored) == 10  # two statements each in five runs of `ok`
    lines = all_pages(viewer, base + "?limit=3")
    assert [e["id"] for e in lines] == [e["_id"] for e in stored]
    # The two lines of the last run (one millisecond may hold both).
    assert sorted(e["line"] for e in lines[:2]) == ["statement 1: 1 rows", "statement 2: 3 rows"]
    found = all_pages(viewer, base + "?q=STATEMENT%202")
    assert [e["id"] for e in found] == [e["_id"] for e in stored if "statement 2" in e["line"]]
    assert all_pages(viewer, base + f"?job={jobs['bad']['id']}") == []
    assert len(all_pages(viewer, base + f"?job={jobs['ok']['id']}")) == 10
    # A time range: the lines of the last three runs of `ok`.
    since = stored[5]["time"]
    assert [e["id"] for e in all_pages(viewer, base + f"?since={since}")] == \
        [e["_id"] for e in stored if e["time"] >= since]
    failed = all_pages(viewer, base + "?type=run.failed")
    assert len(failed) == 2 and all(e["error"]["code"] == "statement_failed" for e in failed)
    for query, field in (("since=yesterday", "since"), ("job=x", "job"), ("type=run.lag", "type"),
                         ("stream=stdin", "stream"), ("limit=0", "limit")):
        status, got, _ = viewer.get(f"{base}?{query}")
        assert (status, got["error"]["field"]) == (422, field), (query, got)


def test_project_stats_match_the_runs(busy, mongo_db, api):
    project, jobs, runs, _, viewer = busy
    status, stats, _ = viewer.get(f"/api/v1/projects/{project['id']}/stats?bucket=hour")
    assert status == 200, stats
    ends = {}
    for e in mongo_db.events.find({"project_id": project["id"], "type": {"$in": list(FINAL)}}) \
            .sort("time", 1):
        ends.setdefault(e["run_id"], e)
    durations = sorted(e["duration_ms"] for e in ends.values())

    def rank(p):
        return durations[max(0, -(-len(durations) * p // 100) - 1)]

    assert stats["totals"] == {
        "runs": {"succeeded": 5, "failed": 2, "cancelled": 0, "timed_out": 0}, "total": 7,
        "duration_ms": {"p50": rank(50), "p95": rank(95)},
        "rows_read": sum(max(0, e.get("rows_read", 0)) for e in ends.values()),
        "rows_written": sum(max(0, e.get("rows_written", 0)) for e in ends.values()),
        "failures": {"statement_failed": 2}}
    assert stats["totals"]["rows_written"] == 5 * 4
    assert stats["bucket"] == "hour" and len(stats["buckets"]) in (24, 25)
    assert sum(b["total"] for b in stats["buckets"]) == 7
    assert all(b["start"].endswith(":00:00.000Z") for b in stats["buckets"])
    status, days, _ = viewer.get(f"/api/v1/projects/{project['id']}/stats")
    assert (days["bucket"], len(days["buckets"]), days["totals"]["total"]) in (
        ("day", 7, 7), ("day", 8, 7))
    # A range before the runs holds none of them.
    status, empty, _ = viewer.get(f"/api/v1/projects/{project['id']}/stats?bucket=day&"
                                  "since=2020-01-01T00:00:00Z&until=2020-01-08T00:00:00Z")
    assert (empty["totals"]["total"], len(empty["buckets"])) == (0, 7)
    assert empty["totals"]["duration_ms"] == {"p50": None, "p95": None}
    for query, field in (("bucket=week", "bucket"), ("since=2020-01-01T00:00:00Z", "since"),
                         ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "since"),
                         ("until=soon", "until")):
        status, got, _ = viewer.get(f"/api/v1/projects/{project['id']}/stats?{query}")
        assert (status, got["error"]["field"]) == (422, field), (query, got)
    stranger = person(api, "istr")[1]
    status, got, _ = stranger.get(f"/api/v1/projects/{project['id']}/stats")
    assert (status, got) == (404, missing("project", project["id"]))


def test_project_summary_for_the_list_of_projects(busy, mongo_db, api):
    project, jobs, runs, owner, viewer = busy
    path = f"/api/v1/projects/{project['id']}/summary"
    newest = mongo_db.events.find({"project_id": project["id"], "type": {"$in": list(FINAL)}}) \
        .sort("time", -1).limit(1)[0]
    status, got, _ = viewer.get(path)
    assert (status, got) == (200, {
        "project_id": project["id"], "runs_24h": 7, "failures_24h": 2,
        "last_run": {"id": runs[-1]["id"], "job_id": jobs["bad"]["id"], "status": "failed",
                     "ended_at": newest["time"]},
        "next_run": None})
    # Schedules: the soonest fire of those not paused.
    status, hourly, _ = owner.call("PUT", f"/api/v1/jobs/{jobs['ok']['id']}/schedule",
                                   {"cron": "0 * * * *", "timezone": "UTC"})
    assert status == 200, hourly
    status, paused, _ = owner.call("PUT", f"/api/v1/jobs/{jobs['bad']['id']}/schedule",
                                   {"interval_seconds": 60, "paused": True})
    assert status == 200, paused
    status, got, _ = viewer.get(path)
    assert got["next_run"] == {"job_id": jobs["ok"]["id"], "job": "ok",
                               "at": hourly["next_fire_times"][0]}
    for job in jobs.values():
        assert owner.call("DELETE", f"/api/v1/jobs/{job['id']}/schedule")[0] == 200
    assert viewer.get(path)[1]["next_run"] is None
    stranger = person(api, "isum")[1]
    assert stranger.get(path)[:2] == (404, missing("project", project["id"]))


def test_create_projects_of_the_original_product(api):
    a = api.create("/api/v1/connections", {"name": "a", "odbc": PG_ODBC})
    b = api.create("/api/v1/connections", {"name": "b", "odbc": PG_ODBC})
    body = {"name_project": "legacy", "dt_last_run": "2024-03-01 10:00:00", "fl_active": 0,
            "connection_origin1": a["id"], "connection_origin2": b["id"]}
    for path in ("/CreateProjects", "/api/v1/CreateProjects"):
        status, made, headers = api.post(path, body)
        assert status == 201, made
        assert headers["Location"] == f"/api/v1/projects/{made['id']}"
        got = api.get(f"/api/v1/projects/{made['id']}")[1]
        assert (got["name"], got["active"], got["last_run_at"], got["origin_connection_id"],
                got["destination_connection_id"]) == ("legacy", False, "2024-03-01T10:00:00.000Z",
                                                      a["id"], b["id"])
    cases = [
        (dict(body, name_project=None), "name_project", "name_project: is required"),
        (dict(body, fl_active=2), "fl_active", "fl_active: must be between 0 and 1"),
        (dict(body, dt_last_run="March"), "dt_last_run",
         'dt_last_run: must be a time such as "2026-12-05 10:00:00" or 2026-12-05T10:00:00Z'),
        (dict(body, connection_origin1="nope"), "connection_origin1", None),
        (dict(body, connection_origin2="00000000-0000-4000-8000-000000000000"),
         "connection_origin2", None),
        (dict(body, owner="x"), "owner", "owner: is not a field of a CreateProjects body"),
    ]
    for bad, field, message in cases:
        status, got, _ = api.post("/CreateProjects", {k: v for k, v in bad.items()
                                                      if v is not None})
        assert (status, got["error"]["field"]) == (422, field), (bad, got)
        assert message is None or got["error"]["message"] == message, got
        assert got["error"]["message"].startswith(field + ":"), got
    assert api.as_user("").post("/CreateProjects", body)[0] == 401


@pytest.fixture
def cors_api(services):
    port = start_limited(services, CONVUTELL_CORS_ORIGINS="https://etl.example.com,"
                                                          "http://localhost:5173")
    yield f"http://127.0.0.1:{port}"
    assert services.stop("api-limited") == 0


def raw(url, method="GET", headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def test_cors_only_for_the_origins_configured(cors_api, api):
    pre = {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "PATCH",
           "Access-Control-Request-Headers": "authorization, if-match"}
    status, headers = raw(cors_api + "/api/v1/projects", "OPTIONS", pre)
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert headers["Access-Control-Allow-Methods"] == "GET, HEAD, POST, PUT, PATCH, DELETE"
    assert "If-Match" in headers["Access-Control-Allow-Headers"]
    status, headers = raw(cors_api + "/api/v1/projects", "GET",
                          dict(bearer(), Origin="https://etl.example.com"))
    assert status == 200
    assert (headers["Access-Control-Allow-Origin"], headers["Vary"]) == (
        "https://etl.example.com", "Origin")
    assert "ETag" in headers["Access-Control-Expose-Headers"]
    # Another origin, or the API without CORS: no CORS header, and no preflight.
    for url, origin in ((cors_api, "https://evil.example"), (api.base, "http://localhost:5173")):
        status, headers = raw(url + "/api/v1/projects", "GET", dict(bearer(), Origin=origin))
        assert status == 200 and "Access-Control-Allow-Origin" not in headers
        status, headers = raw(url + "/api/v1/projects", "OPTIONS", dict(pre, Origin=origin))
        assert status == 405 and "Access-Control-Allow-Origin" not in headers


def test_cors_origins_are_checked_at_start(services):
    out = subprocess.run([BIN, "api"], env=dict(services.env,
                                                CONVUTELL_CORS_ORIGINS="etl.example.com"),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "CONVUTELL_CORS_ORIGINS" in out.stderr and "'etl.example.com' is not an origin" \
        in out.stderr, out.stderr
