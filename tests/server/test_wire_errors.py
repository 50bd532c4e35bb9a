"""What a client sees when waitress itself refuses a request (before the app runs): JSON
``{"error", "detail"}`` like every other answer, with the status waitress chose."""

import json
import socket

import pytest

from agent_core.serving import MAX_REQUEST_BODY


def exchange(server, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` bytes on a fresh connection; the answer's status, headers and body."""
    host, port = server.url.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before reading all of it: the answer is still there
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # closed with unread bytes of ours in its buffer
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def assert_json_error(status, headers, body, expected):
    assert status == expected, body
    assert headers["content-type"] == "application/json"
    data = json.loads(body)
    assert set(data) == {"error", "detail"}
    assert data["error"]
    return data


CASES = [
    ("a malformed request line", b"GARBAGE\r\n\r\n", 400),
    ("a malformed header", b"GET /api/hello HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
    ("a broken chunked body", b"POST /api/flows HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ("a body over waitress's limit", b"POST /api/flows HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 413),
    ("headers over waitress's limit", b"GET /api/hello HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", 431),
]


@pytest.mark.parametrize(("what", "raw", "status"), CASES, ids=[c[0] for c in CASES])
def test_waitress_refusals_are_json_errors(sqlite_server, what, raw, status):
    if b"Content-Length: %d" in raw:
        raw = raw % (MAX_REQUEST_BODY + 1)
    elif b"%s" in raw:
        raw = raw % (b"x" * (260 * 1024))

    assert_json_error(*exchange(sqlite_server, raw), status)


def test_a_body_over_the_apps_limit_but_under_waitresss_is_the_apps_413(sqlite_server):
    body = b"x" * (3 * 1024 * 1024)
    raw = b"POST /api/flows HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body)

    data = assert_json_error(*exchange(sqlite_server, raw + b"Connection: close\r\n\r\n" + body), 413)
    assert data["error"] == "Request body too large"
