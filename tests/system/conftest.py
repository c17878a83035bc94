"""Fixtures for the system tests: real convutell processes against the real
stack that scripts/run-system started (Kafka, FerretDB, PostgreSQL).

Each test session uses its own MongoDB database, so document counts are exact.
"""
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import psycopg
import pymongo
import pytest
from jsonschema import Draft202012Validator

BIN = os.environ["CONVUTELL_BIN"]
KAFKA = os.environ["CONVUTELL_KAFKA_BOOTSTRAP"]
MONGO_URI = os.environ["CONVUTELL_MONGODB_URI"]
PG_PORT = int(os.environ["CV_PG_PORT"])
HTTP_PORT = int(os.environ["CONVUTELL_TEST_HTTP_PORT"])
PG_DSN = f"host=127.0.0.1 port={PG_PORT} user=convutell password=convutell dbname=convutell"
PG_ODBC = (f"Driver=PostgreSQL Unicode;Server=127.0.0.1;Port={PG_PORT};"
           "Database=convutell;UID=convutell;PWD=convutell")
MARIADB_PORT = int(os.environ["CV_MARIADB_PORT"])
MARIADB_ODBC = os.environ["CONVUTELL_MARIADB_ODBC"]


FINAL = ("succeeded", "failed", "cancelled", "timed_out")


# A password no answer, log, document or message may ever show (test_secrets.py
# gives it to a database role and uses it; every API answer of the session is
# checked for it as it arrives, and every service log when the session ends).
CANARY = "cv-canary-" + uuid.uuid4().hex
LEAKS = []


# The administrator every test session signs in as (made by `convutell admin
# create-user` before the API starts) and their API token.
ADMIN = "admin"
TOKEN = {}


def bearer(token=None):
    """The Authorization header of token (the session's administrator by default)."""
    return {"Authorization": "Bearer " + (token or TOKEN["admin"])}


class OpenApiCheck:
    """Every answer the tests get, checked against the API's own OpenAPI
    document (GET /api/v1/openapi.json): the operation of its method and path
    must list its status (or its class, 4XX/5XX), its content type, and the
    body must match that response's schema. What does not is kept in
    `problems` with the test that met it; the session fails on any."""

    def __init__(self, doc):
        self.doc = doc
        self.problems = []
        self.validators = {}
        self.paths = []
        for template, item in doc["paths"].items():
            parts = [("[^/]+" if p.startswith("{") else re.escape(p)) for p in template.split("/")]
            self.paths.append((re.compile("^" + "/".join(parts) + "$"), template, item))

    def resolve(self, node):
        while "$ref" in node:
            target = self.doc
            for part in node["$ref"][2:].split("/"):
                target = target[part]
            node = target
        return node

    def validator(self, schema):
        key = json.dumps(schema, sort_keys=True)
        if key not in self.validators:
            self.validators[key] = Draft202012Validator(dict(schema, components=self.doc["components"]))
        return self.validators[key]

    def match(self, body, schema):
        """The first way body fails schema, or None."""
        err = next(iter(self.validator(schema).iter_errors(body)), None)
        if err is None:
            return None
        where = "/".join(str(p) for p in err.absolute_path) or "the body"
        return f"{where}: {err.message[:300]}"

    def check(self, method, path, status, headers, body, raw):
        problem = self.problem(method.lower(), path.split("?")[0], status, headers, body, raw)
        if problem:
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
            self.problems.append(f"{test}: {method} {path} -> {status}: {problem}")

    def problem(self, method, path, status, headers, body, raw):
        found = [(t, item) for rx, t, item in self.paths if rx.match(path)]
        error = self.resolve({"$ref": "#/components/schemas/Error"})
        if not found or method not in found[0][1]:
            if method in ("head", "options"):
                return None
            # No route, or not this method: 404 or 405 with the error body.
            if status not in (404, 405):
                return f"{status} for a route the document does not list"
            return self.match(body, error)
        op = found[0][1][method]
        responses = op["responses"]
        key = next((k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None)
        if key is None:
            return f"status {status} is not among {sorted(responses)} of {method.upper()} {found[0][0]}"
        response = self.resolve(responses[key])
        content = response.get("content")
        if not content:
            return None if not raw else f"a body where the document has none: {raw[:100]!r}"
        ctype = headers.get("Content-Type", "").split(";")[0].strip()
        if ctype not in content:
            return f"content type {ctype!r}, not one of {sorted(content)}"
        if ctype != "application/json":
            return None
        return self.match(body, content[ctype]["schema"])


# The check of answers against the OpenAPI document, once the API answers.
OPENAPI = []


class Api:
    """A tiny JSON client for the API under test, signed in with `token`
    (None: the session's administrator; "" sends no Authorization)."""

    def __init__(self, base, token=None):
        self.base = base
        self.token = token

    def call(self, method, path, body=None, raw=None, headers=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = dict(headers or {})
        if self.token != "" and "Authorization" not in headers:
            headers.update(bearer(self.token))
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw, got = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as e:
            status, raw, got = e.code, e.read(), dict(e.headers)
        if CANARY.encode() in raw or CANARY in json.dumps(got):
            LEAKS.append(f"{method} {path}")
        if raw and not got.get("Content-Type", "").startswith("application/json"):
            doc = raw.decode()  # CSV, JSON Lines, event streams
        else:
            doc = json.loads(raw or b"null")
        if OPENAPI:
            OPENAPI[0].check(method, path, status, got, doc, raw)
        return status, doc, got

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def as_user(self, token):
        """The same client signed in with another token ("" for none)."""
        return Api(self.base, token)

    def create(self, path, body):
        status, doc, _ = self.post(path, body)
        assert status == 201, (status, doc)
        return doc

    def wait_running(self, run_id, timeout=30):
        """Waits until the run is running (polled every 50 ms)."""
        deadline = time.time() + timeout
        while (doc := self.get(f"/api/v1/runs/{run_id}")[1])["status"] != "running":
            assert time.time() < deadline, f"run {run_id} not running in {timeout}s: {doc}"
            time.sleep(0.05)

    def wait_run(self, run_id, timeout=90):
        deadline = time.time() + timeout
        doc = None
        while time.time() < deadline:
            status, doc, _ = self.get(f"/api/v1/runs/{run_id}")
            if status == 200 and doc["status"] in FINAL:
                return doc
            time.sleep(0.25)
        raise AssertionError(f"run {run_id} did not finish in {timeout}s: {doc}")


# A run is stored as its record and one piece per start and end (runs/cv_runfold.h):
# a filter on `runs` with this finds the records only.
RECORD = {"piece": {"$exists": False}}


def run_views(api, mongo_db, flt, sort="_id"):
    """The runs whose records match flt, each as GET /runs/{id} shows it."""
    views = []
    for rec in mongo_db.runs.find(dict(flt, **RECORD)).sort(sort, 1):
        status, doc, _ = api.get(f"/api/v1/runs/{rec['_id']}")
        assert status == 200, (status, doc)
        views.append(doc)
    return views


def run_status(api, run_id):
    status, doc, _ = api.get(f"/api/v1/runs/{run_id}")
    return doc["status"] if status == 200 else None


class Services:
    """api, worker and collector as real processes, logs in a temp folder."""

    def __init__(self, tmp, db, metrics=False):
        self.tmp = tmp
        self.env = dict(os.environ,
                        CONVUTELL_MONGODB_URI=MONGO_URI, CONVUTELL_MONGODB_DB=db,
                        CONVUTELL_HTTP_ADDR=f"127.0.0.1:{HTTP_PORT}",
                        CONVUTELL_ENV_FILE="/dev/null", CONVUTELL_LOG_LEVEL="info",
                        CONVUTELL_SECRET_KEY=os.urandom(32).hex(),
                        CONVUTELL_PROGRESS_INTERVAL_MS="200", CONVUTELL_LEASE_SECONDS="4",
                        CONVUTELL_WEBHOOK_RETRY_SECONDS="1",
                        CONVUTELL_WEBHOOK_PRIVATE="allow")  # the receivers are on loopback
        self.procs = {}
        # The session's own services serve their Prometheus metrics
        # (test_metrics.py), on the same address when a test restarts one.
        self.metrics = {name: f"127.0.0.1:{HTTP_PORT + 11 + i}" for i, name in enumerate(
            ("api", "worker", "collector", "scheduler"))} if metrics else {}

    def start(self, name, cmd=None, wrap=(), **extra):
        """Starts `convutell cmd` (cmd defaults to name) as `name`; `wrap` goes
        before it on the command line (for example `ip netns exec HOST`)."""
        log = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        env = dict(self.env, **extra)
        if name in self.metrics and (cmd or name) == name:
            env.setdefault("CONVUTELL_METRICS_ADDR", self.metrics[name])
        self.procs[name] = subprocess.Popen([*wrap, BIN, cmd or name], env=env, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.tmp)
        return self.procs[name]

    def stop(self, name, sig=signal.SIGTERM):
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # A service that does not stop fails its test, and is killed so that it
            # cannot take part in the tests after it (a consumer in their group).
            proc.kill()
            proc.wait(timeout=10)
            raise

    def wait_api(self, port=HTTP_PORT, token=None, seconds=30):
        """Waits until the API on port answers its health check; self.api is then
        a client signed in with token (None: the session's administrator)."""
        self.api = Api(f"http://127.0.0.1:{port}", token)
        deadline = time.time() + seconds
        while True:
            try:
                if self.api.get("/api/v1/health")[0] == 200:
                    return
            except OSError:
                pass
            assert time.time() < deadline, "api did not answer:\n" + self.log("api")
            time.sleep(0.2)

    def log(self, name):
        with open(os.path.join(self.tmp, f"{name}.log"), errors="replace") as f:
            return f.read()


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: outages of the stack's services; run by "
                                       "make test-faults, not make test")


@pytest.fixture(scope="session")
def mongo_db():
    name = "convutell_test_" + uuid.uuid4().hex[:8]
    client = pymongo.MongoClient(MONGO_URI, serverSelectionTimeoutMS=10000)
    yield client[name]
    client.drop_database(name)
    client.close()


@pytest.fixture(scope="session")
def services(tmp_path_factory, mongo_db):
    tmp = str(tmp_path_factory.mktemp("services"))
    svc = Services(tmp, mongo_db.name, metrics=True)
    token_file = os.path.join(tmp, "admin.token")
    made = subprocess.run([BIN, "admin", "create-user", "--name", ADMIN, "--admin",
                           "--token-file", token_file], env=svc.env, capture_output=True,
                          text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    with open(token_file) as f:
        TOKEN["admin"] = f.read().strip()
    for name in ("collector", "worker", "api"):
        svc.start(name)
    svc.wait_api()
    with urllib.request.urlopen(f"http://127.0.0.1:{HTTP_PORT}/api/v1/openapi.json",
                                timeout=30) as resp:
        OPENAPI.append(OpenApiCheck(json.loads(resp.read())))
    yield svc
    # The collector goes last so that it stores the others' final events.
    codes = {name: svc.stop(name) for name in ("api", "worker", "collector")}
    for name in ("api", "worker", "collector"):
        print(f"---- {name} log ----\n{svc.log(name)}")
    # A clean SIGTERM shutdown is part of the contract (supervisors rely on it).
    assert all(code == 0 for code in codes.values()), codes
    # Every answer of the session as the OpenAPI document says.
    problems = OPENAPI.pop().problems
    assert problems == [], "answers the OpenAPI document does not describe:\n" + "\n".join(
        problems[:50])
    # Nothing secret in any answer or log of the session.
    assert LEAKS == [], LEAKS
    for name in ("api", "worker", "collector"):
        assert CANARY not in svc.log(name), name


@pytest.fixture(scope="session")
def api(services):
    return services.api


@pytest.fixture()
def pg():
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        yield conn


def milestones(run_id):
    """MongoDB filter for a run's events other than its progress reports, whose
    number depends on the machine's speed."""
    return {"run_id": run_id, "type": {"$ne": "run.progress"}}


def kcat(*args, data=None, timeout=60):
    """Runs kcat against the test broker and returns its stdout."""
    out = subprocess.run(["kcat", "-b", KAFKA, *args], input=data, capture_output=True,
                         timeout=timeout, check=True)
    return out.stdout


def deliver_again(services, run_id, timeout=60):
    """Publishes the job message of run_id (there must be exactly one) once
    more and waits until the worker skips it as a duplicate."""
    messages = kcat("-C", "-t", "convutell.jobs", "-o", "beginning", "-e", "-q", "-f", "%k\t%s\n")
    mine = [line.split("\t", 1) for line in messages.decode().splitlines() if run_id in line]
    assert len(mine) == 1
    kcat("-P", "-t", "convutell.jobs", "-k", mine[0][0], data=mine[0][1].encode())
    skipped = (f"run {run_id} attempt 1: already ended or moved past; this delivery is a "
               "duplicate and is skipped")
    deadline = time.time() + timeout
    while skipped not in services.log("worker"):
        assert time.time() < deadline, services.log("worker")
        time.sleep(0.25)
