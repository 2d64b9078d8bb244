"""The slow-client worker's framing check (:func:`api.worker.request_complete`): a request
reaches a thread only when its headers and body are in, or when it can be refused at once."""

from __future__ import annotations

import json

import pytest

from api.worker import request_complete, timeout_response

HEAD = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
LIMIT, MAX_HEAD = 1000, 8192


@pytest.mark.parametrize(
    ("raw", "complete"),
    [
        (b"GET /health HTTP/1.1\r\nHost: x", False),  # headers not finished
        (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", True),  # no body
        (HEAD + b"Content-Length: 5\r\n\r\n{}", False),
        (HEAD + b"Content-Length: 5\r\n\r\n{ } }", True),
        (HEAD + b"Content-Length: 5000\r\n\r\n", True),  # over the limit: 413 at once
        (HEAD + b"Content-Length: x5\r\n\r\n", True),  # malformed: the parser refuses it
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}", False),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n", False),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", True),
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}", True),  # malformed: 400
        (HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"fff\r\n", True),  # over the limit
        (b"G" * (MAX_HEAD + 1), True),  # endless headers: the parser refuses them
    ],
)
def test_request_complete(raw: bytes, complete: bool) -> None:
    assert request_complete(raw, LIMIT, MAX_HEAD) is complete


def test_timeout_answer_has_the_api_error_shape() -> None:
    raw = timeout_response("body_timeout", 10)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"Connection: close" in head
    assert json.loads(body)["error"]["code"] == "body_timeout"
