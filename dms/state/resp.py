"""A small Redis client for DMS's short-lived client processes: dms-submit and dms.sync().

Why not redis-py here: importing redis-py 8 (it imports asyncio, importlib.metadata and its
OpenTelemetry hooks whether used or not) and kombu costs every `dms-submit` run a large part
of a small no-change re-sync (decision 0018). A client sends a handful of commands per request, and
RESP, Redis's wire protocol, is small and stable. Workers, the janitor and everything that runs
long keep redis-py (connection pools, health checks, cluster and TLS support).

`RespClient` implements the part of redis-py's `Redis` API (with decode_responses=True) that
`dms.state.requests.RequestStore` uses, with the same reply types, so one RequestStore serves both;
tests/integration/test_resp.py runs the store's client-side methods over both clients and
compares. Like dms.state.requests.connect(): the first contact fails fast (BrokerUnavailable), later
commands ride out a Redis restart by reconnecting for DMS_REDIS_RETRY_SECONDS (the store's
writes are idempotent). Only plain `redis://` and Unix-socket URLs: for anything else
(`rediss://`, Sentinel) `light_url` answers None and the client uses redis-py.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from dms.errors import BrokerUnavailable
from dms.settings import redacted

__all__ = ["RespClient", "RespError", "connect_light", "light_url"]

RETRY_SECONDS = float(os.environ.get("DMS_REDIS_RETRY_SECONDS", "120"))

Reply = Any
Convert = Callable[[Reply], Any]


class RespError(Exception):
    """An error reply from Redis (`-ERR ...`, `-NOSCRIPT ...`)."""


@dataclass(frozen=True)
class Address:
    """Where a Redis listens and which database to select."""

    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None


def light_url(url: str) -> Address | None:
    """The address of a redis-py or kombu Redis URL this client can serve, else None.

    Understood: `redis://[[user]:password@]host[:port][/db]`, `unix:///path?db=N` (redis-py)
    and `redis+socket:///path?virtual_host=N` (kombu)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if parts.scheme in ("unix", "redis+socket"):
        db = query.get("db", query.get("virtual_host", ["0"]))[0]
        return Address(unix_path=parts.path, db=int(db or 0), username=user, password=password)
    if parts.scheme != "redis" or set(query) - {"db", "virtual_host"}:
        return None
    db = parts.path.strip("/") or query.get("db", query.get("virtual_host", ["0"]))[0]
    return Address(parts.hostname or "127.0.0.1", parts.port or 6379, None, int(db or 0), user, password)


def _encode(args: Sequence[Any]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode("utf-8", "surrogateescape")  # a file name is bytes (dms.fs.names)
        elif isinstance(arg, bool):
            raise TypeError("a bool is no Redis value (redis-py refuses it too)")
        elif isinstance(arg, int | float):
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Connection:
    """One socket speaking RESP2; replies decoded as UTF-8 text, like decode_responses=True, with
    undecodable bytes kept as lone surrogates (surrogateescape, as for file names: dms.fs.names)."""

    def __init__(self, address: Address, timeout: float) -> None:
        if address.unix_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = address.unix_path
        else:
            sock = socket.socket(socket.AF_INET6 if ":" in address.host else socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            target = (address.host, address.port)
        try:
            sock.settimeout(5.0)
            sock.connect(target)
            sock.settimeout(timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.buffer = bytearray()
        hello: list[tuple[Any, ...]] = []
        if address.password is not None:
            user = (address.username,) if address.username else ()
            hello.append(("AUTH", *user, address.password))
        if address.db:
            hello.append(("SELECT", address.db))
        for reply in self.roundtrip(hello):
            if isinstance(reply, RespError):
                self.close()
                raise reply

    def send(self, commands: Sequence[Sequence[Any]]) -> None:
        self.sock.sendall(b"".join(_encode(c) for c in commands))

    def read(self) -> Reply:
        """One reply; an error reply is returned (not raised) as a RespError. Parsed only once
        it is whole in the buffer, so a timeout (a pub/sub wait) never loses half a reply."""
        while True:
            try:
                reply, used = _parse(self.buffer, 0)
            except _Incomplete:
                data = self.sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("Redis closed the connection") from None
                self.buffer += data
                continue
            del self.buffer[:used]
            return reply

    def roundtrip(self, commands: Sequence[Sequence[Any]]) -> list[Reply]:
        if not commands:
            return []
        self.send(commands)
        return [self.read() for _ in commands]

    def close(self) -> None:
        self.sock.close()


class _Incomplete(Exception):
    """The buffer does not hold a whole reply yet."""


def _parse(buf: bytearray, pos: int) -> tuple[Reply, int]:
    """The reply starting at buf[pos:] and the position after it (RESP2)."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, rest = buf[pos : pos + 1], bytes(buf[pos + 1 : end])
    pos = end + 2
    if kind == b"+":
        return rest.decode(), pos
    if kind == b"-":
        return RespError(rest.decode()), pos
    if kind == b":":
        return int(rest), pos
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise _Incomplete
        return bytes(buf[pos : pos + size]).decode("utf-8", "surrogateescape"), pos + size + 2
    if kind == b"*":
        count = int(rest)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    raise ConnectionError(f"not a RESP reply from Redis: {bytes(buf[pos - len(rest) - 3 : end])[:40]!r}")


#: Error replies of a Redis that refused the command because it cannot take commands yet.
_NOT_YET = ("LOADING ", "BUSY ", "TRYAGAIN ", "MASTERDOWN ")


def _not_yet(error: RespError) -> bool:
    return str(error).startswith(_NOT_YET)


def _to_dict(reply: Reply) -> dict[str, str]:
    return dict(zip(reply[::2], reply[1::2], strict=True)) if reply else {}


class RespClient:
    """The subset of redis-py's `Redis` (decode_responses=True) that RequestStore uses."""

    def __init__(self, address: Address, *, timeout: float = 30.0) -> None:
        self.address = address
        self.timeout = timeout
        self._conn: _Connection | None = None

    # -- plumbing ------------------------------------------------------------------
    def _connection(self) -> _Connection:
        if self._conn is None:
            self._conn = _Connection(self.address, self.timeout)
        return self._conn

    def run(self, commands: Sequence[tuple[Sequence[Any], Convert | None]]) -> list[Any]:
        """Send commands in one write, read their replies; reconnect and resend on a lost
        connection, and resend while Redis says it cannot take commands yet (LOADING its
        data after a restart, BUSY with a script), for up to RETRY_SECONDS; raise the first
        error reply."""
        deadline = time.monotonic() + RETRY_SECONDS
        delay = 0.05
        while True:
            try:
                replies = self._connection().roundtrip([args for args, _ in commands])
            except (OSError, ValueError) as exc:  # ConnectionError, timeouts; ValueError: a garbled reply
                self.close()
                if time.monotonic() + delay > deadline:
                    raise ConnectionError(f"Redis at {self._where()} is unreachable: {exc}") from exc
            else:
                not_yet = next((r for r in replies if isinstance(r, RespError) and _not_yet(r)), None)
                if not_yet is None:
                    break
                if time.monotonic() + delay > deadline:  # refused, so none of them ran: resending is safe
                    raise ConnectionError(f"Redis at {self._where()} is not ready: {not_yet}")
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        for reply in replies:
            if isinstance(reply, RespError):
                raise reply
        return [convert(reply) if convert else reply for (_, convert), reply in zip(commands, replies, strict=True)]

    def execute_command(self, *args: Any, convert: Convert | None = None) -> Any:
        return self.run([(args, convert)])[0]

    def _where(self) -> str:
        return self.address.unix_path or f"{self.address.host}:{self.address.port}"

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def pipeline(self, transaction: bool = True) -> RespPipeline:
        return RespPipeline(self, transaction)

    def register_script(self, script: str) -> RespScript:
        return RespScript(self, script)

    def pubsub(self, ignore_subscribe_messages: bool = False) -> RespPubSub:
        return RespPubSub(self.address, ignore_subscribe_messages)

    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[str]:
        cursor = "0"
        while True:
            args: list[Any] = ["SCAN", cursor]
            args += ["MATCH", match] if match is not None else []
            args += ["COUNT", count] if count is not None else []
            cursor, names = self.execute_command(*args)
            yield from names
            if cursor == "0":
                return

    # -- commands (the names and reply types of redis-py) -----------------------------
    def ping(self) -> bool:
        return bool(self.execute_command("PING") == "PONG")

    def __getattr__(self, name: str) -> Callable[..., Any]:
        build, convert = _command(self, name)

        def command(*args: Any, **kwargs: Any) -> Any:
            return self.execute_command(*build(*args, **kwargs), convert=convert)

        return command


class RespPipeline:
    """Commands queued, then sent in one write (MULTI/EXEC around them for a transaction)."""

    def __init__(self, client: RespClient, transaction: bool) -> None:
        self._client = client
        self._transaction = transaction
        self._commands: list[tuple[Sequence[Any], Convert | None]] = []

    def __getattr__(self, name: str) -> Callable[..., RespPipeline]:
        build, convert = _command(self, name)

        def queue(*args: Any, **kwargs: Any) -> RespPipeline:
            self._commands.append((build(*args, **kwargs), convert))
            return self

        return queue

    def execute(self) -> list[Any]:
        commands, self._commands = self._commands, []
        if not self._transaction:
            return self._client.run(commands)
        replies = self._client.run([(("MULTI",), None), *[(args, None) for args, _ in commands], (("EXEC",), None)])
        return [convert(r) if convert else r for (_, convert), r in zip(commands, replies[-1], strict=True)]


class RespScript:
    """A Lua script run by its SHA1 (EVALSHA), loaded once when Redis does not know it."""

    def __init__(self, client: RespClient, script: str) -> None:
        self._client = client
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        call = [len(keys), *keys, *args]
        try:
            return self._client.execute_command("EVALSHA", self.sha, *call)
        except RespError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return self._client.execute_command("EVAL", self.script, *call)


class RespPubSub:
    """A subscription on its own connection; get_message() returns one message or None."""

    def __init__(self, address: Address, ignore_subscribe_messages: bool) -> None:
        self._conn = _Connection(address, timeout=30.0)
        self._ignore = ignore_subscribe_messages

    def subscribe(self, *channels: str) -> None:
        self._conn.send([("SUBSCRIBE", c) for c in channels])

    def get_message(self, timeout: float = 0.0) -> dict[str, Any] | None:
        self._conn.sock.settimeout(max(timeout, 0.001))
        try:
            reply = self._conn.read()
        except (TimeoutError, BlockingIOError):
            return None
        if isinstance(reply, RespError):
            raise reply
        kind, channel, data = reply[0], reply[1], reply[2]
        if kind != "message" and self._ignore:
            return None
        return {"type": kind, "channel": channel, "data": data, "pattern": None}

    def close(self) -> None:
        self._conn.close()


def _hset(name: str, key: str | None = None, value: Any = None, mapping: dict[str, Any] | None = None) -> list[Any]:
    args: list[Any] = ["HSET", name]
    if key is not None:
        args += [key, value]
    for field, val in (mapping or {}).items():
        args += [field, val]
    return args


def _set(name: str, value: Any, *, nx: bool = False, ex: int | None = None) -> list[Any]:
    return ["SET", name, value, *(["NX"] if nx else []), *(["EX", ex] if ex is not None else [])]


def _zrevrangebyscore(name: str, high: Any, low: Any, start: int | None = None, num: int | None = None) -> list[Any]:
    return ["ZREVRANGEBYSCORE", name, high, low, *(["LIMIT", start, num] if start is not None else [])]


def _simple(command: str) -> Callable[..., list[Any]]:
    return lambda *args: [command, *args]


_COMMANDS: dict[str, tuple[Callable[..., Sequence[Any]], Convert | None]] = {
    "delete": (_simple("DEL"), None),
    "exists": (_simple("EXISTS"), None),
    "expire": (_simple("EXPIRE"), bool),
    "persist": (_simple("PERSIST"), bool),
    "get": (_simple("GET"), None),
    "getdel": (_simple("GETDEL"), None),
    "set": (_set, lambda r: True if r == "OK" else None),
    "hget": (_simple("HGET"), None),
    "hmget": (_simple("HMGET"), None),
    "hgetall": (_simple("HGETALL"), _to_dict),
    "hkeys": (_simple("HKEYS"), None),
    "hvals": (_simple("HVALS"), None),
    "hdel": (_simple("HDEL"), None),
    "hset": (_hset, None),
    "hsetnx": (_simple("HSETNX"), bool),
    "lpush": (_simple("LPUSH"), None),
    "rpush": (_simple("RPUSH"), None),
    "lrange": (_simple("LRANGE"), None),
    "ltrim": (_simple("LTRIM"), lambda r: r == "OK"),
    "sadd": (_simple("SADD"), None),
    "smembers": (_simple("SMEMBERS"), set),
    "zadd": (lambda name, mapping: ["ZADD", name, *(x for m, s in mapping.items() for x in (s, m))], None),
    "zrem": (_simple("ZREM"), None),
    "zrevrangebyscore": (_zrevrangebyscore, None),
    "publish": (_simple("PUBLISH"), None),
}


def _command(owner: object, name: str) -> tuple[Callable[..., Sequence[Any]], Convert | None]:
    """How to send redis-py's command `name` and convert its reply; AttributeError if not carried."""
    if name.startswith("_") or name not in _COMMANDS:
        raise AttributeError(
            f"{type(owner).__name__} has no {name!r}: use redis-py (dms.state.requests.connect) for it"
        )
    return _COMMANDS[name]


def connect_light(url: str, *, timeout: float = 30.0) -> RespClient:
    """A RespClient for `url` (see light_url), failing fast when Redis is unreachable now."""
    address = light_url(url)
    if address is None:
        raise ValueError(f"not a URL the light client serves: {redacted(url)}")
    client = RespClient(address, timeout=timeout)
    try:
        client._connection()
        client.execute_command("PING")
    except (OSError, RespError) as exc:
        client.close()
        raise BrokerUnavailable(f"cannot reach the DMS Redis at {redacted(url)}: {exc}") from exc
    return client
