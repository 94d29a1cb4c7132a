"""dms.state.resp without a server: URLs it serves (and the ones it leaves to redis-py), and a reply
that arrives in pieces is parsed only once it is whole."""

from __future__ import annotations

import pytest

from dms.settings import redacted
from dms.state.resp import Address, RespError, _encode, _Incomplete, _parse, light_url


def test_urls_of_redis_py_and_kombu_are_understood() -> None:
    assert light_url("redis://h.example:6380/2") == Address("h.example", 6380, None, 2)
    assert light_url("redis://:s%40cret@10.0.0.1/0") == Address("10.0.0.1", 6379, None, 0, None, "s@cret")
    assert light_url("redis://dms:pw@localhost:1234") == Address("localhost", 1234, None, 0, "dms", "pw")
    assert light_url("unix:///run/r.sock?db=3") == Address(unix_path="/run/r.sock", db=3)
    assert light_url("redis+socket:///run/r.sock?virtual_host=1") == Address(unix_path="/run/r.sock", db=1)


def test_passwords_are_redacted_from_urls_shown() -> None:
    assert redacted("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redacted("redis://dms:s3cret@h/0") == "redis://dms:***@h/0"
    assert redacted("unix://:pw@/run/r.sock?db=1") == "unix://:***@/run/r.sock?db=1"
    assert redacted("redis://h:6379/0") == "redis://h:6379/0"


def test_urls_it_cannot_serve_are_left_to_redis_py() -> None:
    assert light_url("rediss://h:6379/0") is None  # TLS
    assert light_url("sentinel://h:26379") is None
    assert light_url("redis://h:6379/0?ssl_cert_reqs=none") is None  # an option it does not know


def test_commands_are_encoded_as_resp_arrays_of_bulk_strings() -> None:
    wire = b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n5\r\n$3\r\n1.5\r\n$1\r\n\x00\r\n"
    assert _encode(["SET", "k", 5, 1.5, b"\x00"]) == wire
    with pytest.raises(TypeError):
        _encode(["SET", "k", True])


def test_a_reply_cut_anywhere_is_incomplete_until_whole() -> None:
    wire = b"*4\r\n$5\r\nhello\r\n:42\r\n*2\r\n+OK\r\n$-1\r\n-ERR nope\r\n" + b"+next\r\n"
    whole = len(wire) - len(b"+next\r\n")
    for cut in range(whole):
        with pytest.raises(_Incomplete):
            _parse(bytearray(wire[:cut]), 0)
    reply, used = _parse(bytearray(wire), 0)
    assert used == whole
    assert reply[:3] == ["hello", 42, ["OK", None]]
    assert isinstance(reply[3], RespError) and str(reply[3]) == "ERR nope"
    assert _parse(bytearray(wire), used) == ("next", len(wire))


def test_bulk_strings_hold_any_bytes_including_crlf() -> None:
    assert _parse(bytearray(b"$4\r\n\r\n\r\n\r\n"), 0) == ("\r\n\r\n", 10)
