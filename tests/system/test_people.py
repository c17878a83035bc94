"""People and rights, first step: users, logins, sessions and API tokens, and a
token wanted on every route the router has (driven by `convutell routes`, so a
route added without a check fails here)."""
import hashlib
import subprocess
import time
import uuid

import argon2
import pytest

from conftest import ADMIN, BIN

NO_TOKEN = {"error": {"code": "unauthorized",
                      "message": "sign in first: send \"Authorization: Bearer <token>\" "
                                 "(POST /api/v1/sessions or an API token)"}}
UNKNOWN = {"error": {"code": "unauthorized",
                     "message": "the token is not valid (unknown or revoked)"}}
CHALLENGE = 'Bearer realm="convutell"'
INVALID = 'Bearer realm="convutell", error="invalid_token"'


def routes():
    out = subprocess.run([BIN, "routes"], capture_output=True, text=True, check=True).stdout
    table = [line.split() for line in out.splitlines()]
    assert len(table) >= 26, out
    return table


def concrete(path):
    return path.replace("users/{}", "users/nobody").replace("{}", str(uuid.uuid4()))


def make_user(api, name, admin=False, password=None):
    body = {"name": name, "admin": admin}
    if password:
        body["password"] = password
    status, doc, _ = api.post("/api/v1/users", body)
    assert status == 201, (status, doc)
    return doc


def login(api, name, password):
    return api.as_user("").post("/api/v1/sessions", {"name": name, "password": password})


def token_of(api, name, password, scope="write"):
    status, doc, _ = login(api, name, password)
    assert status == 201, doc
    status, made, _ = api.as_user(doc["token"]).post("/api/v1/tokens",
                                                      {"name": "t", "scope": scope})
    assert status == 201, made
    return made["token"]


def test_every_route_but_six_wants_a_token(api):
    anonymous, forged = api.as_user(""), api.as_user("cvt_" + "A" * 43)
    opened = []
    for method, path, access, _scope, _role in routes():
        url = concrete(path)
        if access == "open":
            opened.append((method, path))
            continue
        status, body, headers = anonymous.call(method, url, {} if method != "GET" else None)
        assert (status, body, headers.get("WWW-Authenticate")) == (401, NO_TOKEN, CHALLENGE), url
        status, body, headers = forged.call(method, url, {} if method != "GET" else None)
        assert (status, body, headers.get("WWW-Authenticate")) == (401, UNKNOWN, INVALID), url
    assert opened == [("GET", "/api/v1/health"), ("GET", "/api/v1/healthz"),
                      ("GET", "/api/v1/readyz"), ("GET", "/api/v1/openapi.json"),
                      ("POST", "/api/v1/sessions"), ("GET", "/api/v1/sessions/current")]


def test_current_session_says_who_asks_and_gives_a_session_its_csrf(api):
    make_user(api, "cleo", password="cleo-password-1")
    for nobody in (api.as_user(""), api.as_user("cvt_" + "A" * 43)):
        assert nobody.get("/api/v1/sessions/current")[:2] == (200, {"user": None})
    status, session, _ = login(api, "cleo", "cleo-password-1")
    assert status == 201, session
    status, me, _ = api.as_user("").call("GET", "/api/v1/sessions/current",
                                         headers={"Cookie": f"cv_session={session['token']}"})
    assert status == 200, me
    assert me == {"user": "cleo", "admin": False, "session": True, "scope": "write",
                  "token_id": me["token_id"], "csrf_token": session["csrf_token"]}
    read = token_of(api, "cleo", "cleo-password-1", scope="read")
    status, me, _ = api.as_user(read).get("/api/v1/sessions/current")
    assert (status, me["user"], me["session"], me["scope"], me["csrf_token"]) == \
        (200, "cleo", False, "read", None)


def test_admin_routes_refuse_others_and_read_tokens_refuse_writes(api):
    make_user(api, "dora", password="dora-password-1")
    dora = api.as_user(token_of(api, "dora", "dora-password-1"))
    reader = api.as_user(token_of(api, "dora", "dora-password-1", scope="read"))
    for method, path, access, _scope, _role in routes():
        url = concrete(path)
        body = {} if method != "GET" else None
        if access == "admin":
            status, doc, _ = dora.call(method, url, body)
            assert (status, doc) == (403, {"error": {
                "code": "forbidden",
                "message": f"{method} {url} is for administrators only"}}), url
        if access != "open" and method != "GET":
            status, doc, _ = reader.call(method, url, body)
            assert (status, doc) == (403, {"error": {
                "code": "forbidden",
                "message": f"this token's scope is read: {method} {url} needs a token of "
                           "scope write"}}), url
    assert reader.get("/api/v1/tokens")[0] == 200


def test_login_sessions_cookie_and_csrf(api):
    make_user(api, "bob", password="bob-password-1")
    wrong = {"error": {"code": "unauthorized", "message": "the name or the password is wrong"}}
    for name, password in (("bob", "not-his-password"), ("nobody", "bob-password-1"),
                           ("BOB", "bob-password-1")):
        status, body, headers = login(api, name, password)
        assert (status, body, headers.get("WWW-Authenticate")) == (401, wrong, CHALLENGE)
    status, session, headers = login(api, "bob", "bob-password-1")
    assert status == 201, session
    assert session["token"].startswith("cvs_") and len(session["token"]) == 47
    assert (session["user"], session["admin"]) == ("bob", False)
    cookie = headers["Set-Cookie"]
    assert cookie == (f"cv_session={session['token']}; HttpOnly; SameSite=Strict; Path=/; "
                      "Max-Age=43200")
    bob = api.as_user(session["token"])
    assert bob.get("/api/v1/users/bob")[0] == 200
    # The web interface signs in by cookie: reads pass, writes must echo the CSRF value.
    by_cookie = api.as_user("")
    jar = {"Cookie": f"cv_session={session['token']}"}
    assert by_cookie.get("/api/v1/tokens", headers=jar)[0] == 200
    status, body, _ = by_cookie.post("/api/v1/tokens", {"name": "x"}, headers=jar)
    assert (status, body) == (403, {"error": {
        "code": "csrf",
        "message": "a write signed in by cookie must send the session's csrf_token in "
                   "X-CSRF-Token"}})
    status, body, _ = by_cookie.post("/api/v1/tokens", {"name": "x"},
                                     headers=dict(jar, **{"X-CSRF-Token": "nope"}))
    assert status == 403
    status, body, _ = by_cookie.post("/api/v1/tokens", {"name": "x"},
                                     headers=dict(jar, **{"X-CSRF-Token": session["csrf_token"]}))
    assert status == 201, body
    # An API token cannot end a session; the session ends itself.
    status, body, _ = api.as_user(body["token"]).call("DELETE", "/api/v1/sessions")
    assert status == 409, body
    status, body, headers = bob.call("DELETE", "/api/v1/sessions")
    assert (status, body) == (204, None)
    assert headers["Set-Cookie"] == "cv_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    status, body, headers = bob.get("/api/v1/users/bob")
    assert (status, body, headers["WWW-Authenticate"]) == (401, UNKNOWN, INVALID)


def test_api_tokens_are_shown_once_stored_hashed_and_revocable(api, mongo_db):
    make_user(api, "erin", password="erin-password-1")
    erin = api.as_user(token_of(api, "erin", "erin-password-1"))
    status, made, headers = erin.post("/api/v1/tokens", {"name": "ci", "scope": "read",
                                                          "expires_in_days": 30})
    assert status == 201, made
    assert made["token"].startswith("cvt_") and len(made["token"]) == 47
    assert headers["Location"] == f"/api/v1/tokens/{made['id']}"
    digest = hashlib.sha256(made["token"].encode()).hexdigest()
    stored = mongo_db.tokens.find_one({"_id": digest})
    assert stored["user"] == "erin" and stored["scope"] == "read"
    assert mongo_db.tokens.count_documents({"$or": [{k: made["token"]} for k in stored]}) == 0
    status, listed, _ = erin.get("/api/v1/tokens")
    mine = [t for t in listed["items"] if t["id"] == made["id"]]
    assert mine == [{"id": made["id"], "name": "ci", "scope": "read",
                     "created_at": made["created_at"], "expires_at": made["expires_at"]}]
    # Someone else's token id is no token of mine.
    status, body, _ = api.call("DELETE", f"/api/v1/tokens/{made['id']}")
    assert (status, body) == (404, {"error": {"code": "not_found",
                                              "message": f"no token with id '{made['id']}'"}})
    reader = api.as_user(made["token"])
    assert reader.get("/api/v1/users/erin")[0] == 200
    status, body, _ = erin.call("DELETE", f"/api/v1/tokens/{made['id']}")
    assert (status, body) == (204, None)
    assert reader.get("/api/v1/users/erin")[:2] == (401, UNKNOWN)
    # An expired token lets nobody in.
    old = "cvt_" + "B" * 43
    mongo_db.tokens.insert_one({"_id": hashlib.sha256(old.encode()).hexdigest(),
                                "id": str(uuid.uuid4()), "user": "erin", "kind": "api",
                                "name": "old", "scope": "write",
                                "expires_ms": int(time.time() * 1000) - 1000})
    status, body, headers = api.as_user(old).get("/api/v1/users/erin")
    assert (status, body, headers["WWW-Authenticate"]) == (
        401, {"error": {"code": "unauthorized", "message": "the token has expired"}}, INVALID)
    status, body, _ = erin.post("/api/v1/tokens", {"name": "x", "scope": "admin"})
    assert (status, body) == (422, {"error": {
        "code": "invalid_field", "field": "scope",
        "message": "scope: must be \"read\" or \"write\", not \"admin\""}})


def test_administrators_manage_users(api, mongo_db):
    status, carol, headers = api.post("/api/v1/users", {"name": "carol",
                                                        "display_name": "Carol C."})
    assert status == 201, carol
    assert headers["Location"] == "/api/v1/users/carol"
    password = carol.pop("password")
    assert len(password) == 24
    assert carol == {"name": "carol", "display_name": "Carol C.", "admin": False,
                     "disabled": False, "created_at": carol["created_at"],
                     "updated_at": carol["created_at"], "created_by": ADMIN}
    assert mongo_db.users.find_one({"_id": "carol"})["password_hash"].startswith(
        "$argon2id$v=19$m=262144,t=3,p=1$")
    status, body, _ = api.post("/api/v1/users", {"name": "carol"})
    assert (status, body) == (409, {"error": {"code": "conflict", "field": "name",
                                              "message": "a user named carol exists already"}})
    for bad in ("Carol", "-carol", "", "c" * 65, "car ol"):
        status, body, _ = api.post("/api/v1/users", {"name": bad})
        assert status == 422 and body["error"]["field"] == "name", (bad, body)
    status, body, _ = api.post("/api/v1/users", {"name": "short", "password": "tiny"})
    assert (status, body["error"]["message"]) == (422, "password: must have at least 12 characters")
    carol_api = api.as_user(token_of(api, "carol", password))
    assert carol_api.get("/api/v1/users/carol")[1]["display_name"] == "Carol C."
    assert carol_api.get(f"/api/v1/users/{ADMIN}")[:2] == (404, {"error": {
        "code": "not_found", "message": f"no user named '{ADMIN}'"}})
    status, body, _ = carol_api.call("PATCH", "/api/v1/users/carol", {"admin": True})
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body, _ = carol_api.call("PATCH", "/api/v1/users/carol",
                                     {"display_name": "Carol", "password": "carols-new-one"})
    assert (status, body["display_name"]) == (200, "Carol")
    assert login(api, "carol", password)[0] == 401
    assert login(api, "carol", "carols-new-one")[0] == 201
    names = [u["name"] for u in api.get("/api/v1/users")[1]["items"]]
    assert names == sorted(names) and {"carol", ADMIN} <= set(names)
    # Disabled: at once, every token and the login.
    status, body, _ = api.call("PATCH", "/api/v1/users/carol", {"disabled": True})
    assert (status, body["disabled"]) == (200, True)
    assert carol_api.get("/api/v1/users/carol")[0] == 401
    status, body, _ = login(api, "carol", "carols-new-one")
    assert (status, body["error"]["message"]) == (401, "user carol is disabled")
    status, body, _ = api.call("PATCH", f"/api/v1/users/{ADMIN}", {"disabled": True})
    assert (status, body["error"]["code"]) == (409, "conflict")
    assert api.call("DELETE", f"/api/v1/users/{ADMIN}")[0] == 409
    assert api.call("DELETE", "/api/v1/users/carol")[:2] == (204, None)
    assert api.get("/api/v1/users/carol")[0] == 404
    assert mongo_db.tokens.count_documents({"user": "carol"}) == 0


def test_a_login_rehashes_a_password_hashed_with_older_limits(api, mongo_db):
    weak = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1,
                                 type=argon2.Type.ID).hash("frank-password-1")
    # As an earlier version stored a user (every field it wrote but the hash's limits).
    mongo_db.users.insert_one({"_id": "frank", "display_name": "frank", "password_hash": weak,
                               "admin": False, "disabled": False,
                               "created_at": "2026-12-01T00:00:00.000Z", "created_by": "admin",
                               "updated_at": "2026-12-01T00:00:00.000Z"})
    assert login(api, "frank", "frank-password-1")[0] == 201
    stored = mongo_db.users.find_one({"_id": "frank"})["password_hash"]
    assert stored != weak and stored.startswith("$argon2id$v=19$m=262144,t=3,p=1$")
    assert login(api, "frank", "frank-password-1")[0] == 201


def test_failed_logins_slow_down_a_name_from_an_address(api, mongo_db):
    name = "tess-" + uuid.uuid4().hex[:6]
    make_user(api, name, password="tess-password-1")
    make_user(api, name + "-2", password="tess-password-2")
    wrong = (401, {"error": {"code": "unauthorized",
                             "message": "the name or the password is wrong"}})
    for _ in range(5):  # free
        assert login(api, name, "guess")[:2] == wrong
    status, body, headers = login(api, name, "tess-password-1")  # even the right one waits
    assert (status, body, headers.get("Retry-After")) == (429, {"error": {
        "code": "too_many_attempts",
        "message": "too many failed logins for this name or from this address: try again in "
                   "1 s"}}, "1")
    # Another name from the same address is not held up by this one's failures.
    assert login(api, name + "-2", "tess-password-2")[0] == 201
    time.sleep(1.1)
    assert login(api, name, "guess")[:2] == wrong  # the sixth failure: now 2 s
    status, _, headers = login(api, name, "tess-password-1")
    assert (status, headers.get("Retry-After")) == (429, "2")
    time.sleep(2.1)
    assert login(api, name, "tess-password-1")[0] == 201
    # A good login forgets the name's failures from here; the address keeps its count.
    assert mongo_db.login_failures.count_documents({"_id": f"n:{name}@127.0.0.1"}) == 0
    assert mongo_db.login_failures.find_one({"_id": "a:127.0.0.1"})["failures"] >= 6


def test_admin_command_line(services, mongo_db, tmp_path):
    env = services.env
    token_file = tmp_path / "t"
    made = subprocess.run([BIN, "admin", "create-user", "--name", "gus", "--password-stdin",
                           "--token-file", str(token_file)], env=env, input="gus-password-12\n",
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    lines = made.stdout.splitlines()
    assert lines[0] == "user gus created" and lines[1].endswith(f"written to {token_file} (mode 0600)")
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    again = subprocess.run([BIN, "admin", "create-user", "--name", "gus"], env=env,
                           capture_output=True, text=True, timeout=60)
    # (FerretDB's driver adds a warning of its own after it: the first line is ours.)
    assert (again.returncode, again.stderr.splitlines()[0]) == (
        1, "convutell admin: a user named gus exists already")
    kept = subprocess.run([BIN, "admin", "create-user", "--name", "gus", "--exists-ok"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert (kept.returncode, kept.stdout) == (0, "user gus exists already; kept as it is\n")
    short = subprocess.run([BIN, "admin", "create-user", "--name", "hal", "--password-stdin"],
                           env=env, input="short\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and mongo_db.users.count_documents({"_id": "hal"}) == 0
