"""The web interface (issue 16): the API serves the page's build (api/cv_web.h)
with its headers, and a real Chromium takes the page through a person's journey
(web/test/journey.mjs: playwright-core driving Debian's chromium), after which
the store holds exactly what the journey did."""
import gzip
import os
import re
import sqlite3
import subprocess
import urllib.error
import urllib.request

from conftest import BIN, HTTP_PORT, PG_ODBC
from test_load_modes import make_job
from test_people import make_user

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = f"http://127.0.0.1:{HTTP_PORT}"
WEB_DIR = os.path.join(os.path.dirname(BIN), "web")
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
          "form-action 'self'; frame-ancestors 'none'")
BUDGET = 150 * 1024


def fetch(path, method="GET", headers=None):
    req = urllib.request.Request(BASE + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_the_page_and_its_assets_are_served_with_their_headers(services):
    status, headers, page = fetch("/")
    assert status == 200
    with open(os.path.join(WEB_DIR, "index.html"), "rb") as f:
        assert page == f.read()
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["Content-Security-Policy"] == POLICY
    assert (headers["X-Frame-Options"], headers["X-Content-Type-Options"],
            headers["Referrer-Policy"]) == ("DENY", "nosniff", "same-origin")
    assets = re.findall(rb'(?:src|href)="(/assets/[^"]+)"', page)
    assert sorted(a.rsplit(b".", 1)[1] for a in assets) == [b"css", b"js", b"svg"], assets
    js_gzipped = 0
    for asset in assets:
        name = asset.decode()
        assert re.fullmatch(r"/assets/(app|icon)\.[A-Za-z0-9]{8}\.(js|css|svg)", name), name
        status, headers, plain = fetch(name)
        assert status == 200 and headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert "Content-Encoding" not in headers and headers["Vary"] == "Accept-Encoding"
        status, headers, packed = fetch(name, headers={"Accept-Encoding": "gzip, br"})
        assert (status, headers["Content-Encoding"]) == (200, "gzip")
        assert gzip.decompress(packed) == plain
        if name.endswith(".js"):
            js_gzipped += len(packed)
            assert headers["Content-Type"] == "text/javascript; charset=utf-8"
        status, headers, again = fetch(name, headers={"Accept-Encoding": "gzip;q=0"})
        assert (status, again, headers.get("Content-Encoding")) == (200, plain, None)
    assert 0 < js_gzipped <= BUDGET, js_gzipped
    assert fetch("/index.html")[2] == page
    status, headers, body = fetch("/assets/app.00000000.js")
    assert (status, body) == (404, b'{"error":{"code":"not_found","message":'
                                   b'"no file /assets/app.00000000.js in the web interface"}}')
    assert fetch("/assets/../index.html")[0] == 404
    status, headers, body = fetch("/", method="POST")
    assert (status, headers["Allow"]) == (405, "GET, HEAD")


def test_a_person_takes_the_page_through_a_journey(api, services, pg, tmp_path):
    make_user(api, "webadmin", admin=True, password="webadmin-password-1")
    sqlite = tmp_path / "origin.db"
    with sqlite3.connect(sqlite) as db:
        db.execute("CREATE TABLE fruit (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO fruit VALUES (?, ?)", [(1, "apple"), (2, "pear"), (3, "fig")])
    table = f"web_fruit_{os.getpid()}"
    long_run = start_long_run(api, pg)
    shots = os.path.join(ROOT, "build", "web-shots")
    env = dict(os.environ, CV_WEB_BASE=BASE, CV_WEB_ADMIN="webadmin",
               CV_WEB_ADMIN_PASSWORD="webadmin-password-1",
               CV_WEB_USER="webby", CV_WEB_PASSWORD="webby-password-1",
               CV_WEB_SQLITE=str(sqlite), CV_WEB_PG=PG_ODBC, CV_WEB_SHOTS=shots,
               CV_WEB_MEMBER="webmate", CV_WEB_TABLE=table, CV_WEB_LONG_RUN=long_run)
    done = subprocess.run(["node", os.path.join(ROOT, "web", "test", "journey.mjs")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    # The long run, cancelled from its page while its bar showed the time left,
    # and the destination rolled back.
    status, run, _ = api.get(f"/api/v1/runs/{long_run}")
    assert (run["status"], run["error"]["code"], run["rows_written"]) == ("cancelled", "cancelled", 0)
    assert 0 < run["rows_read"] < run["rows_expected"]
    assert pg.execute("SELECT count(*) FROM web_long").fetchone() == (0,)
    # What the journey left: the two users the administrator made, both active;
    status, users, _ = api.get("/api/v1/users")
    assert [(u["name"], u.get("display_name"), u["disabled"], u["admin"], u["created_by"])
            for u in users["items"] if u["name"].startswith("web")] == [
        ("webadmin", "webadmin", False, True, "admin"),
        ("webby", "Webby Webster", False, False, "webadmin"),
        ("webmate", "webmate", False, False, "webadmin")]
    # one project, renamed and inactive, with its two
    # ends and the connection added on its page, shared with webmate as viewer;
    # the other deleted; the token it made revoked.
    webby = api.as_user(login_token(api))
    status, page, _ = webby.get("/api/v1/projects")
    assert status == 200
    assert [(p["name"], p["active"]) for p in page["projects"]] == [("web kept", False)]
    project = page["projects"][0]
    ends = [webby.get(f"/api/v1/connections/{project[k]}")[1]
            for k in ("origin_connection_id", "destination_connection_id")]
    assert [(c["name"], c["odbc"].split(";")[0]) for c in ends] == \
        [("web keep origin", "Driver=SQLite3"), ("web keep destination", "Driver=PostgreSQL Unicode")]
    status, conns, _ = webby.get(f"/api/v1/projects/{project['id']}/connections")
    assert sorted((c["name"], c["odbc"].split(";")[0]) for c in conns["connections"]) == [
        ("web extra", "Driver=SQLite3"), ("web keep destination", "Driver=PostgreSQL Unicode"),
        ("web keep origin", "Driver=SQLite3")]
    status, hooks, _ = webby.get(f"/api/v1/projects/{project['id']}/webhooks")
    assert [(h["url"], h["events"], h["active"]) for h in hooks["webhooks"]] == [
        ("http://127.0.0.1:9/convutell-hook", ["run.failed", "run.timed_out"], False)]
    status, members, _ = webby.get(f"/api/v1/projects/{project['id']}/members")
    assert sorted((m["user"], m["role"]) for m in members["items"]) == [("webby", "owner"),
                                                                        ("webmate", "viewer")]
    status, tokens, _ = webby.get("/api/v1/tokens")
    assert [t["name"] for t in tokens["items"] if t["name"] == "web ci"] == []
    # The transfer copied the three rows, the SQL job changed two of them.
    with pg.cursor() as cur:
        cur.execute(f"SELECT id, name FROM {table} ORDER BY id")
        assert cur.fetchall() == [(2, "PEAR"), (3, "FIG")]
    # Four jobs; the one that failed was the one notification, read in the inbox.
    jobs = {j["name"]: j for j in webby.get(f"/api/v1/projects/{project['id']}/jobs")[1]["jobs"]}
    assert sorted(jobs) == ["broken", "fruit copy", "fruit rows", "tidy"]
    assert (jobs["fruit rows"]["kind"], jobs["fruit rows"]["destination_table"]) == (
        "sql_transfer", f"{table}_again")
    copy = jobs["fruit copy"]
    assert (copy["version"], copy["mode"], copy.get("load_method", "auto"), copy["transform"].splitlines()[0],
            "batch_rows" in copy, "key" in copy) == (2, "replace", "auto", "import json, sys",
                                                     False, False)
    sched = jobs["fruit copy"]["schedule"]
    assert (sched["cron"], sched["timezone"], sched["max_attempts"], sched["concurrency"]) == (
        "0 3 * * *", "Europe/Zurich", 3, "forbid")
    runs = {name: webby.get(f"/api/v1/jobs/{j['id']}/runs")[1]["runs"] for name, j in jobs.items()}
    assert {name: [r["status"] for r in rs] for name, rs in runs.items()} == {
        "broken": ["failed"], "fruit copy": ["succeeded"], "fruit rows": [], "tidy": ["succeeded"]}
    status, inbox, _ = webby.get("/api/v1/notifications")
    assert [(n["id"], n["status"], n["read"]) for n in inbox["notifications"]] == [
        (runs["broken"][0]["id"], "failed", True)]
    for size in ("laptop", "phone"):
        for name in ("signin", "admin", "projects", "projects-summary", "project", "project-viewer",
                     "job-edit", "job", "run", "run-log", "run-progress", "inbox", "dashboard",
                     "console",
                     "projects-confirm", "tokens"):
            assert os.path.getsize(os.path.join(shots, f"{name}-{size}.png")) > 1000
        assert os.path.getsize(os.path.join(shots, f"{name}-dark.png")) > 1000


def start_long_run(api, pg):
    """A transfer of 100,000,000 rows (PostgreSQL's planner knows how many),
    bounded to two minutes in case the page never cancels it."""
    pg.execute("DROP TABLE IF EXISTS web_long_src")
    pg.execute("DROP TABLE IF EXISTS web_long")
    pg.execute("CREATE TABLE web_long_src AS SELECT g AS id FROM generate_series(1, 1000000) g")
    pg.execute("ANALYZE web_long_src")
    job = make_job(api, PG_ODBC, PG_ODBC, "web_long", timeout_seconds=120,
                   query="SELECT s.id, k.k FROM web_long_src s CROSS JOIN generate_series(1, 100) k(k)")
    status, run, _ = api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202, run
    return run["run_id"]


def login_token(api):
    status, doc, _ = api.as_user("").post("/api/v1/sessions", {"name": "webby",
                                                               "password": "webby-password-1"})
    assert status == 201, doc
    return doc["token"]
