"""Webhooks: a project's runs POSTed to receivers of the test's own on
loopback, signed with each webhook's secret. A receiver that knows the secret
takes them; one with a wrong secret refuses them, and the collector tries
again with backoff, each attempt visible in the webhook's deliveries."""
import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest

from conftest import PG_ODBC
from test_rights import forbidden, name, person


class Receiver:
    """An HTTP server on loopback that checks each delivery's signature with
    `secret` and a timestamp at most 5 minutes old: 200 if both hold, 401
    otherwise. It keeps what it got."""

    def __init__(self, secret):
        self.secret, self.got = secret.encode(), []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp = self.headers.get("X-Convutell-Timestamp", "0")
                want = "sha256=" + hmac.new(outer.secret, stamp.encode() + b"." + body,
                                            hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(want, self.headers.get("X-Convutell-Signature", "")) \
                    and abs(time.time() - int(stamp)) < 300
                outer.got.append({"headers": dict(self.headers), "body": json.loads(body),
                                  "ok": ok})
                self.send_response(200 if ok else 401)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_for(check, timeout=60, what=""):
    deadline = time.time() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.time() < deadline, what
        time.sleep(0.2)


@pytest.fixture
def receivers():
    good, wrong = Receiver("right-secret-0123456789"), Receiver("wrong-secret-0123456789")
    yield good, wrong
    good.close()
    wrong.close()


def test_deliveries_are_signed_retried_and_recorded(api, receivers):
    good, wrong = receivers
    owner, owner_api = person(api, "hown")
    conn = owner_api.create("/api/v1/connections", {"name": "c", "odbc": PG_ODBC})
    project = owner_api.create("/api/v1/projects", {"name": name("hooks"),
                                                    "origin_connection_id": conn["id"],
                                                    "destination_connection_id": conn["id"]})
    hooks = f"/api/v1/projects/{project['id']}/webhooks"
    signed = owner_api.create(hooks, {"url": good.url, "secret": "right-secret-0123456789",
                                      "events": ["run.failed", "run.succeeded"]})
    assert "secret" not in signed and "secret_sealed" not in signed
    refused = owner_api.create(hooks, {"url": wrong.url, "secret": "right-secret-0123456789"})
    assert refused["events"] == ["run.failed", "run.timed_out"]  # the default
    ok_job = owner_api.create(f"/api/v1/projects/{project['id']}/jobs",
                              {"name": "ok", "kind": "sql", "statements": "SELECT 1"})
    bad_job = owner_api.create(f"/api/v1/projects/{project['id']}/jobs",
                               {"name": "bad", "kind": "sql",
                                "statements": "SELECT * FROM no_such_table_for_hooks"})
    runs = {}
    for job in (ok_job, bad_job):
        status, body, _ = owner_api.post(f"/api/v1/jobs/{job['id']}/runs")
        assert status == 202, body
        runs[job["name"]] = owner_api.wait_run(body["run_id"])
    # The receiver with the secret got each run's end once, signed.
    got = wait_for(lambda: len(good.got) >= 2 and good.got, what=good.got)
    time.sleep(1)
    assert len(good.got) == 2 and all(g["ok"] for g in good.got), good.got
    by_type = {g["body"]["type"]: g for g in good.got}
    assert set(by_type) == {"run.succeeded", "run.failed"}
    failed = by_type["run.failed"]
    assert (failed["body"]["run_id"], failed["body"]["project_id"], failed["body"]["job_id"]) == (
        runs["bad"]["id"], project["id"], bad_job["id"])
    assert failed["body"]["event"]["error"]["code"] == "statement_failed"
    assert failed["headers"]["X-Convutell-Event"] == "run.failed"
    assert failed["headers"]["X-Convutell-Delivery"] == failed["body"]["delivery"]
    deliveries = owner_api.get(f"/api/v1/webhooks/{signed['id']}/deliveries")[1]["deliveries"]
    assert sorted((d["type"], d["status"], len(d["attempts"]), d["attempts"][0]["status"])
                  for d in deliveries) == [("run.failed", "delivered", 1, 200),
                                           ("run.succeeded", "delivered", 1, 200)]
    # The wrong secret's receiver refuses the failure; it is tried again, with backoff.
    wait_for(lambda: len(wrong.got) >= 3, timeout=40, what=wrong.got)
    assert all(not g["ok"] for g in wrong.got)
    # An attempt's end is one delivery, whoever reports it (cv_hooks.h).
    assert {g["headers"]["X-Convutell-Delivery"] for g in wrong.got} == {
        f"{refused['id']}:{g['body']['run_id']}.{g['body']['event']['attempt']}.ended"
        for g in wrong.got}
    assert len({g["headers"]["X-Convutell-Delivery"] for g in wrong.got}) == 1
    stamps = [int(g["headers"]["X-Convutell-Timestamp"]) for g in wrong.got[:3]]
    assert stamps[2] - stamps[1] >= 5  # 1 s, then 6 s (CONVUTELL_WEBHOOK_RETRY_SECONDS=1)
    listed = wait_for(lambda: [d for d in owner_api.get(
        f"/api/v1/webhooks/{refused['id']}/deliveries")[1]["deliveries"]
        if len(d.get("attempts", [])) >= 3])
    assert [a["status"] for a in listed[0]["attempts"][:3]] == [401, 401, 401]
    assert (listed[0]["status"], listed[0]["type"]) == ("pending", "run.failed")
    # Deleted: its next attempt ends the delivery, saying why.
    assert owner_api.call("DELETE", f"/api/v1/webhooks/{refused['id']}")[0] == 204
    ended = wait_for(lambda: [d for d in api.get(
        f"/api/v1/webhooks/{refused['id']}/deliveries")[1].get("deliveries", [])
        if d["status"] == "failed"] if api.get(
        f"/api/v1/webhooks/{refused['id']}/deliveries")[0] == 200 else None, timeout=60)
    assert ended[0]["attempts"][-1]["error"] == "the webhook was deleted or deactivated"


def test_webhooks_are_for_editors_and_checked(api):
    owner, owner_api = person(api, "h2own")
    conn = owner_api.create("/api/v1/connections", {"name": "c", "odbc": PG_ODBC})
    project = owner_api.create("/api/v1/projects", {"name": name("hooks2"),
                                                    "origin_connection_id": conn["id"],
                                                    "destination_connection_id": conn["id"]})
    hooks = f"/api/v1/projects/{project['id']}/webhooks"
    made = owner_api.create(hooks, {"url": "https://example.invalid/x"})
    assert made["secret"].startswith("whs_") and len(made["secret"]) == 47
    assert "secret" not in owner_api.get(f"/api/v1/webhooks/{made['id']}")[1]
    runner, runner_api = person(api, "h2run")
    owner_api.create(f"/api/v1/projects/{project['id']}/members", {"user": runner,
                                                                   "role": "runner"})
    status, got, _ = runner_api.get(hooks)
    assert (status, got) == (403, forbidden("editor", project["id"], "runner"))
    for body, field, message in (
            ({"url": "ftp://x"}, "url", "url: must be an http:// or https:// URL"),
            ({"url": "https://"}, "url", "url: must name a host, without spaces"),
            ({"url": "https://x", "secret": "short"}, "secret",
             "secret: must be at least 16 characters"),
            ({"url": "https://x", "events": []}, "events",
             "events: must be a non-empty array of event types"),
            ({"url": "https://x", "events": ["run.queued"]}, "events[0]",
             "events[0]: must be one of run.started, run.succeeded, run.failed, run.cancelled, "
             "run.timed_out, run.retrying"),
            ({"url": "https://x", "headers": {}}, "headers",
             "headers: is not a field of a webhook")):
        status, got, _ = owner_api.post(hooks, body)
        assert (status, got["error"]["field"], got["error"]["message"]) == (422, field, message)
    status, changed, _ = owner_api.call("PATCH", f"/api/v1/webhooks/{made['id']}",
                                        {"active": False, "events": ["run.succeeded"]})
    assert (status, changed["active"], changed["events"]) == (200, False, ["run.succeeded"])
    status, got, _ = owner_api.get(f"/api/v1/webhooks/{made['id']}/deliveries?status=lost")
    assert (status, got["error"]["field"]) == (422, "status")


def test_a_private_address_is_refused_unless_allowed(api, services, receivers):
    """Without CONVUTELL_WEBHOOK_PRIVATE=allow the collector reaches public
    addresses only: a webhook on loopback (or a cloud's metadata address)
    gets no request, and each attempt says why."""
    good, _ = receivers
    services.stop("collector")
    services.start("collector", CONVUTELL_WEBHOOK_PRIVATE="deny")
    try:
        owner, owner_api = person(api, "hpriv")
        conn = owner_api.create("/api/v1/connections", {"name": "c", "odbc": PG_ODBC})
        project = owner_api.create("/api/v1/projects", {"name": name("private"),
                                                        "origin_connection_id": conn["id"],
                                                        "destination_connection_id": conn["id"]})
        hook = owner_api.create(f"/api/v1/projects/{project['id']}/webhooks",
                                {"url": good.url.replace("127.0.0.1", "localhost"),
                                 "secret": "right-secret-0123456789", "events": ["run.failed"]})
        job = owner_api.create(f"/api/v1/projects/{project['id']}/jobs",
                               {"name": "bad", "kind": "sql",
                                "statements": "SELECT * FROM no_such_table_for_private"})
        status, body, _ = owner_api.post(f"/api/v1/jobs/{job['id']}/runs")
        assert status == 202, body
        assert owner_api.wait_run(body["run_id"])["status"] == "failed"
        path = f"/api/v1/webhooks/{hook['id']}/deliveries"
        tried = wait_for(lambda: [d for d in owner_api.get(path)[1]["deliveries"]
                                  if len(d.get("attempts", [])) >= 2], timeout=40)
        assert good.got == []
        # localhost is 127.0.0.1 and ::1: the attempt names the last address refused.
        for attempt in tried[0]["attempts"][:2]:
            assert attempt["error"] in [
                f"refused: {ip} is not a public address (CONVUTELL_WEBHOOK_PRIVATE=allow lets "
                "webhooks reach the host and private networks)" for ip in ("127.0.0.1", "::1")]
            assert "status" not in attempt  # no HTTP answer: nothing was sent
    finally:
        services.stop("collector")
        services.start("collector")
