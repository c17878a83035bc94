"""The API's HTTP edges: HEAD where GET goes, a chunked body refused as soon as
it passes the limit, and slow or idle clients that cannot hold the server
(a request's time limit, an idle limit, a cap per address and in all)."""
import socket
import threading
import time
import urllib.request

import pytest

from conftest import HTTP_PORT, bearer
from test_api_errors import TOO_LARGE, raw_exchange, signed

LIMITED_PORT = HTTP_PORT + 7


def raw_head(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(signed(b"HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                            % path.encode()))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    return int(lines[0].split(" ")[1]), dict(l.split(": ", 1) for l in lines[1:]), body


def test_head_is_answered_like_get_without_a_body(api):
    conn = api.create("/api/v1/connections", {"name": "c",
                                              "odbc": "Driver=SQLite3;Database=:memory:"})
    for path in ("/api/v1/health", f"/api/v1/connections/{conn['id']}"):
        status, headers, body = raw_head(HTTP_PORT, path)
        req = urllib.request.Request(f"http://127.0.0.1:{HTTP_PORT}{path}", headers=bearer())
        with urllib.request.urlopen(req) as resp:
            got = resp.read()
        assert (status, body) == (200, b""), path
        assert headers["Content-Type"] == "application/json"
        assert int(headers["Content-Length"]) == len(got)
    status, headers, body = raw_head(HTTP_PORT, "/api/v1/connections")
    assert (status, headers["Allow"], body) == (405, "POST", b"")
    status, _, headers = api.call("PUT", f"/api/v1/connections/{conn['id']}", {})
    assert (status, headers["Allow"]) == (405, "GET, PATCH, DELETE, HEAD")


def test_chunked_body_is_refused_once_over_the_limit(api):
    """100 MB offered in chunks: the 413 comes back while the client is still
    sending, long before the whole body could have been read."""
    sent = 0
    answer = []
    chunk = b"a" * 65536
    frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    with socket.create_connection(("127.0.0.1", HTTP_PORT), timeout=30) as sock:
        sock.sendall(b"POST /api/v1/connections HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")

        def read():
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except OSError:
                pass
            answer.append(data)

        reader = threading.Thread(target=read)
        reader.start()
        started = time.monotonic()
        try:
            while sent < 100 * 1024 * 1024 and reader.is_alive():
                sock.sendall(frame)
                sent += len(chunk)
        except OSError:
            pass  # closed by the server after its answer: the point
        reader.join(30)
        took = time.monotonic() - started
    head, _, body = answer[0].partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"413", answer[0][:200]
    assert body == b'{"error":{"code":"body_too_large","message":"request body is larger than ' \
                   b'the limit of 1048576 bytes"}}'
    assert sent < 20 * 1024 * 1024, sent  # the rest of the 100 MB was never sent
    assert took < 5, took


def start_limited(services, **limits):
    services.start("api-limited", cmd="api", CONVUTELL_HTTP_ADDR=f"127.0.0.1:{LIMITED_PORT}",
                   **limits)
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{LIMITED_PORT}/api/v1/health", timeout=2)
            return LIMITED_PORT
        except OSError:
            assert time.time() < deadline, services.log("api-limited")
            time.sleep(0.2)


@pytest.fixture
def limited(services):
    """An API with small time limits: 1 s idle, 2 s a request."""
    yield start_limited(services, CONVUTELL_HTTP_IDLE_SECONDS="1",
                        CONVUTELL_HTTP_REQUEST_SECONDS="2")
    assert services.stop("api-limited") == 0


@pytest.fixture
def capped(services):
    """An API that takes 4 connections at once from one address."""
    yield start_limited(services, CONVUTELL_HTTP_PER_ADDRESS="4")
    assert services.stop("api-limited") == 0


def closed_without_answer(sock, within):
    """Whether the server closed sock within `within` seconds, answering
    nothing; False when it stayed open."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_slow_and_idle_clients_are_let_go(limited):
    # A body trickled in more slowly than the request's limit: 408, closed.
    with socket.create_connection(("127.0.0.1", limited), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/connections HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 40\r\n\r\n")
        started = time.monotonic()
        answer = b""
        for i in range(40):
            try:
                sock.sendall(b" ")
            except OSError:
                break
            time.sleep(0.5)
            sock.setblocking(False)
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            sock.setblocking(True)
            if answer:
                break
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert answer.endswith(b'{"error":{"code":"request_timeout","message":"the request\'s '
                           b'headers and body took more than 2 s to arrive"}}'), answer
    assert 1.5 < took < 4, took

    # Connected and silent: closed after the idle limit.
    with socket.create_connection(("127.0.0.1", limited), timeout=10) as sock:
        started = time.monotonic()
        assert closed_without_answer(sock, 10)
        assert time.monotonic() - started < 4


def hold(port, n, timeout=20):
    """n connections from 127.0.0.1 that the server took and keeps (half a
    request each keeps them from going idle). The connection of the check
    that the server is up may still be counted for a moment after it closed,
    so that one of n would be refused: then they are all opened again."""
    deadline = time.time() + timeout
    while True:
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
        for sock in held:
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\n")
        if not any(closed_without_answer(sock, 0.3) for sock in held):
            return held
        for sock in held:
            sock.close()
        assert time.time() < deadline, "the server never kept n connections"
        time.sleep(0.2)


def test_one_address_cannot_take_every_connection(capped):
    limited = capped
    held = hold(limited, 4)
    try:
        # A fifth from the same address is closed at once, unanswered...
        fifth = socket.create_connection(("127.0.0.1", limited), timeout=10)
        fifth.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed_without_answer(fifth, 5)
        fifth.close()
        # ...while another address is served.
        other = socket.create_connection(("127.0.0.1", limited), timeout=10,
                                         source_address=("127.0.0.2", 0))
        other.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        other.settimeout(5)
        assert other.recv(65536).startswith(b"HTTP/1.1 200")
        other.close()
    finally:
        for sock in held:
            sock.close()
