"""People and rights, second step: projects belong to their members, each with a
role (owner, editor, runner, viewer). Every route on a project's resource is
checked from the router's table (`convutell routes`): a user who is no member
gets exactly the 404 of a resource that does not exist, a role below the route's
gets 403 naming the role needed, and the role it names is enough."""
import uuid

import pytest

from conftest import PG_ODBC
from test_people import make_user, routes, token_of

ROLES = ("viewer", "runner", "editor", "owner")


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def person(api, prefix):
    user = name(prefix)
    make_user(api, user, password=user + "-password")
    return user, api.as_user(token_of(api, user, user + "-password"))


def missing(noun, ident):
    noun = noun.replace("-", " ")  # the route table's "query-run" is a "query run"
    return {"error": {"code": "not_found", "message": f"no {noun} with id '{ident}'"}}


def forbidden(need, project, role):
    higher = "" if need == "owner" else " or higher"
    return {"error": {"code": "forbidden",
                      "message": f"this needs the role {need}{higher} in project {project}; "
                                 f"you are {role}"}}


def make_project(client, odbc=PG_ODBC):
    conn = client.create("/api/v1/connections", {"name": "c", "odbc": odbc})
    project = client.create("/api/v1/projects", {"name": name("p"),
                                                 "origin_connection_id": conn["id"],
                                                 "destination_connection_id": conn["id"]})
    job = client.create(f"/api/v1/projects/{project['id']}/jobs",
                        {"name": "j", "kind": "sql", "statements": "SELECT 1"})
    return conn, project, job


@pytest.fixture(scope="module")
def shared(api):
    """A project of its owner with a job, a finished run and one user per role."""
    owner, owner_api = person(api, "own")
    conn, project, job = make_project(owner_api)
    status, run, _ = owner_api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202, run
    owner_api.wait_run(run["run_id"])
    users = {"owner": owner_api}
    for role in ("viewer", "runner", "editor"):
        user, client = person(api, role[:3])
        owner_api.create(f"/api/v1/projects/{project['id']}/members", {"user": user, "role": role})
        users[role] = client
    users["stranger"] = person(api, "str")[1]
    saved = owner_api.create(f"/api/v1/projects/{project['id']}/queries",
                             {"name": "q", "sql": "SELECT 1/0", "connection": "origin"})
    # A query run that failed: its rows are a 409, in JSON like every refusal.
    status, query_run, _ = owner_api.post(f"/api/v1/queries/{saved['id']}/run")
    assert (status, query_run["status"]) == (200, "failed"), query_run
    hook = owner_api.create(f"/api/v1/projects/{project['id']}/webhooks",
                            {"url": "http://127.0.0.1:9/nowhere", "active": False})
    ids = {"project": project["id"], "job": job["id"], "run": run["run_id"],
           "connection": conn["id"], "query": saved["id"], "query-run": query_run["id"],
           "webhook": hook["id"]}
    return ids, users


def url_of(path, ids, scope):
    first = path.replace("{}", ids[scope], 1)
    return first.replace("{}", "nobody")  # members/{user}: a user who is no member


def test_every_project_route_checks_the_role(shared):
    ids, users = shared
    checked = 0
    for method, path, access, scope, need in routes():
        if scope == "-":
            continue
        url = url_of(path, ids, scope)
        body = {} if method != "GET" else None
        # No member: as if it did not exist, message and all.
        status, doc, _ = users["stranger"].call(method, url, body)
        assert (status, doc) == (404, missing(scope, ids[scope])), url
        # Deleting the shared project or job would end the walk: test_manage.py does it.
        destructive = method == "DELETE" and path in ("/api/v1/projects/{}", "/api/v1/jobs/{}",
                                                      "/api/v1/queries/{}", "/api/v1/webhooks/{}")
        for role in ROLES:
            if destructive and ROLES.index(role) >= ROLES.index(need):
                continue
            status, doc, _ = users[role].call(method, url, body)
            if ROLES.index(role) < ROLES.index(need):
                assert (status, doc) == (403, forbidden(need, ids["project"], role)), url
            else:  # enough: whatever the empty body gets, it is not a refusal
                assert status not in (401, 403), (url, role, doc)
                assert doc != missing(scope, ids[scope]), (url, role)
        checked += 1
    assert checked >= 25
    # A write is never a viewer's.
    for method, path, access, scope, need in routes():
        if scope != "-" and method != "GET":
            assert need != "viewer", (method, path)


def test_share_as_viewer_then_runner_then_remove(api):
    alice, alice_api = person(api, "alice")
    bob, bob_api = person(api, "bob")
    conn, project, job = make_project(alice_api)
    pid = project["id"]
    # bob sees nothing of it, exactly as if nothing were there.
    for noun, path in (("project", f"/api/v1/projects/{pid}"), ("job", f"/api/v1/jobs/{job['id']}"),
                       ("connection", f"/api/v1/connections/{conn['id']}")):
        ident = path.rsplit("/", 1)[1]
        assert bob_api.get(path)[:2] == (404, missing(noun, ident))
    status, first, _ = alice_api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    alice_api.wait_run(first["run_id"])
    assert bob_api.get(f"/api/v1/runs/{first['run_id']}")[:2] == (
        404, missing("run", first["run_id"]))

    member = alice_api.create(f"/api/v1/projects/{pid}/members", {"user": bob, "role": "viewer"})
    assert member == {"user": bob, "role": "viewer"}
    status, runs, _ = bob_api.get(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 200 and [r["id"] for r in runs["runs"]] == [first["run_id"]]
    assert bob_api.get(f"/api/v1/runs/{first['run_id']}")[1]["status"] == "succeeded"
    # A viewer never sees a credential: no UID, no PWD; the editor-and-up view masks PWD.
    status, seen, _ = bob_api.get(f"/api/v1/connections/{conn['id']}")
    assert status == 200
    assert seen["odbc"] == PG_ODBC.replace("UID=convutell;PWD=convutell", "")
    assert alice_api.get(f"/api/v1/connections/{conn['id']}")[1]["odbc"] == \
        PG_ODBC.replace("PWD=convutell", "PWD=********")
    assert bob_api.post(f"/api/v1/jobs/{job['id']}/runs")[:2] == (
        403, forbidden("runner", pid, "viewer"))

    status, changed, _ = alice_api.call("PATCH", f"/api/v1/projects/{pid}/members/{bob}",
                                        {"role": "runner"})
    assert (status, changed) == (200, {"user": bob, "role": "runner"})
    status, second, _ = bob_api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202, second
    assert bob_api.wait_run(second["run_id"])["status"] == "succeeded"
    assert bob_api.get(f"/api/v1/projects/{pid}/members")[1] == {"items": [
        {"user": alice, "role": "owner"}, {"user": bob, "role": "runner"}]}

    status, _, _ = alice_api.call("DELETE", f"/api/v1/projects/{pid}/members/{bob}")
    assert status == 204
    assert bob_api.get(f"/api/v1/projects/{pid}")[:2] == (404, missing("project", pid))
    assert bob_api.get(f"/api/v1/runs/{second['run_id']}")[:2] == (
        404, missing("run", second["run_id"]))
    assert alice_api.call("DELETE", f"/api/v1/projects/{pid}/members/{bob}")[:2] == (
        404, {"error": {"code": "not_found", "message": f"{bob} is not a member of this project"}})


def test_a_project_keeps_an_owner(api):
    alice, alice_api = person(api, "alice")
    carol, carol_api = person(api, "carol")
    _, project, _ = make_project(alice_api)
    members = f"/api/v1/projects/{project['id']}/members"
    keep = {"error": {"code": "conflict", "message": "a project keeps at least one owner: make "
                                                     "another member owner first"}}
    assert alice_api.call("DELETE", f"{members}/{alice}")[:2] == (409, keep)
    assert alice_api.call("PATCH", f"{members}/{alice}", {"role": "editor"})[:2] == (409, keep)
    assert alice_api.post(members, {"user": alice, "role": "viewer"})[:2] == (409, {"error": {
        "code": "conflict", "message": f"{alice} is a member already: change their role with "
                                       "PATCH"}})
    for body, field, message in (
            ({"user": carol, "role": "boss"}, "role",
             'role: must be "owner", "editor", "runner" or "viewer", not "boss"'),
            ({"user": "no-such-user", "role": "viewer"}, "user",
             "user: no user named 'no-such-user'"),
            ({"user": carol}, "role", "role: is required"),
            ({"user": carol, "role": "owner", "extra": 1}, "extra",
             "extra: is not a field of a member")):
        status, doc, _ = alice_api.post(members, body)
        assert (status, doc["error"]["field"], doc["error"]["message"]) == (422, field, message)
    alice_api.create(members, {"user": carol, "role": "owner"})
    status, doc, _ = alice_api.call("PATCH", f"{members}/{alice}", {"role": "viewer"})
    assert (status, doc) == (200, {"user": alice, "role": "viewer"})
    # alice is a viewer now: she may read, and no longer share.
    assert alice_api.post(members, {"user": alice, "role": "owner"})[:2] == (
        403, forbidden("owner", project["id"], "viewer"))
    assert carol_api.get(members)[1]["items"] == [{"user": alice, "role": "viewer"},
                                                  {"user": carol, "role": "owner"}]


def test_owner_only_settings_and_connections_across_projects(api):
    alice, alice_api = person(api, "alice")
    ed, ed_api = person(api, "ed")
    conn, project, _ = make_project(alice_api)
    pid = project["id"]
    alice_api.create(f"/api/v1/projects/{pid}/members", {"user": ed, "role": "editor"})
    # An editor renames and pauses, and writes jobs, python too ...
    status, doc, _ = ed_api.call("PATCH", f"/api/v1/projects/{pid}", {"name": "renamed",
                                                                      "active": False})
    assert (status, doc["name"], doc["active"]) == (200, "renamed", False)
    ed_api.create(f"/api/v1/projects/{pid}/jobs", {"name": "py", "kind": "python",
                                                   "script": "print(1)"})
    # ... but the interpreter, the connections' exposure and the connections are the owner's.
    for change in ({"python_interpreter": "/usr/bin/python3"}, {"expose_connections": True},
                   {"origin_connection_id": conn["id"]}):
        assert ed_api.call("PATCH", f"/api/v1/projects/{pid}", change)[:2] == (
            403, forbidden("owner", pid, "editor")), change
    status, doc, _ = alice_api.call("PATCH", f"/api/v1/projects/{pid}",
                                    {"python_interpreter": "/usr/bin/python3",
                                     "expose_connections": True})
    assert (status, doc["python_interpreter"], doc["expose_connections"]) == (
        200, "/usr/bin/python3", True)
    assert alice_api.call("PATCH", f"/api/v1/projects/{pid}", {"colour": "red"})[:2] == (
        422, {"error": {"code": "invalid_field", "field": "colour",
                        "message": "colour: is not a field of a project change"}})

    # A connection of project A: its editors may add to A, nobody may take it elsewhere
    # but an owner of both; one made by someone else and unused is not there for them.
    theirs = ed_api.create("/api/v1/connections", {"name": "own", "odbc": PG_ODBC})
    def new_project(client, conn_id):
        return client.post("/api/v1/projects", {"name": "b", "origin_connection_id": conn_id,
                                                "destination_connection_id": conn_id})
    assert new_project(alice_api, theirs["id"])[:2] == (422, {"error": {
        "code": "invalid_field", "field": "origin_connection_id",
        "message": f"origin_connection_id: no connection with id '{theirs['id']}'"}})
    assert new_project(ed_api, conn["id"])[:2] == (403, {"error": {
        "code": "forbidden", "field": "origin_connection_id",
        "message": f"origin_connection_id: connection {conn['id']} belongs to project {pid}; "
                   "using it in another project needs the role owner in both"}})
    status, other, _ = new_project(alice_api, conn["id"])
    assert status == 201, other
    # ed's own connection became ed's new project's; alice still cannot see it.
    status, mine, _ = new_project(ed_api, theirs["id"])
    assert status == 201
    assert ed_api.get(f"/api/v1/connections/{theirs['id']}")[1]["project_id"] == mine["id"]
    assert alice_api.get(f"/api/v1/connections/{theirs['id']}")[0] == 404
    # A connection made for a project needs an editor there.
    runner, runner_api = person(api, "run")
    alice_api.create(f"/api/v1/projects/{pid}/members", {"user": runner, "role": "runner"})
    assert runner_api.post("/api/v1/connections", {"name": "x", "odbc": PG_ODBC,
                                                   "project_id": pid})[:2] == (
        403, forbidden("editor", pid, "runner"))
    made = ed_api.create("/api/v1/connections", {"name": "x", "odbc": PG_ODBC, "project_id": pid})
    assert runner_api.get(f"/api/v1/connections/{made['id']}")[1]["odbc"] == \
        PG_ODBC.replace("UID=convutell;PWD=convutell", "")


def test_audit_trail(api, mongo_db):
    alice, alice_api = person(api, "alice")
    bob, bob_api = person(api, "bob")
    conn, project, job = make_project(alice_api)
    pid = project["id"]
    alice_api.create(f"/api/v1/projects/{pid}/members", {"user": bob, "role": "runner"})
    status, run, _ = bob_api.post(f"/api/v1/jobs/{job['id']}/runs")
    assert status == 202
    assert bob_api.post(f"/api/v1/jobs/{job['id']}/runs", raw=b"{")[0] == 400  # not a change
    bob_api.wait_run(run["run_id"])
    assert alice_api.call("DELETE", f"/api/v1/projects/{pid}/members/{bob}")[0] == 204

    status, trail, _ = alice_api.get(f"/api/v1/projects/{pid}/audit")
    assert status == 200 and trail["next"] is None
    seen = [(r["user"], r["action"], r["status"], r.get("target"), r.get("item"))
            for r in trail["records"]]
    assert seen == [  # newest first; the connection was made before the project had it
        (alice, "DELETE /api/v1/projects/{}/members/{}", 204, pid, bob),
        (bob, "POST /api/v1/jobs/{}/runs", 202, run["run_id"], None),
        (alice, "POST /api/v1/projects/{}/members", 201, bob, None),
        (alice, "POST /api/v1/projects/{}/jobs", 201, job["id"], None),
        (alice, "POST /api/v1/projects", 201, pid, None),
    ]
    record = trail["records"][0]
    assert record["address"] == "127.0.0.1" and record["project_id"] == pid
    assert set(record) == {"id", "at", "day", "user", "action", "status", "target", "item",
                           "project_id", "address"}
    page, rest = (alice_api.get(f"/api/v1/projects/{pid}/audit?limit=2")[1],
                  None)
    assert [r["id"] for r in page["records"]] == [r["id"] for r in trail["records"][:2]]
    rest = alice_api.get(f"/api/v1/projects/{pid}/audit?limit=2&after={page['next']}")[1]
    assert [r["id"] for r in rest["records"]] == [r["id"] for r in trail["records"][2:4]]

    # The instance's trail is the administrators': logins and connections are in it.
    assert alice_api.get("/api/v1/audit")[0] == 403
    status, everything, _ = api.get("/api/v1/audit?limit=500")
    assert status == 200
    mine = [(r["action"], r.get("target")) for r in everything["records"] if r["user"] == alice]
    assert ("POST /api/v1/connections", conn["id"]) in mine
    assert ("POST /api/v1/sessions", None) in mine
    assert ("POST /api/v1/tokens", mine[-2][1]) == mine[-2]  # her token, made after her login
    # Records are only ever added: the API has no route that changes one.
    assert all("audit" not in path or method == "GET" for method, path, *_ in routes())
    assert mongo_db.audit.count_documents({"project_id": pid}) == 5
