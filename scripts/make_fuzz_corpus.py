"""Write the seed corpus of the receiver's fuzz target (dms/native/tests/fuzz_corpus).

Each seed is one mode byte (0: frames after authentication, 1: from the handshake) and
then what a peer sends. Valid frames, refused paths, a wrong digest, a sparse piece,
two frames in a row, truncated and malformed frames, a forged handshake. The fuzzer
(scripts/fuzz.sh) grows the corpus from these; the replay test runs every file.
"""

from __future__ import annotations

import struct
from pathlib import Path

from dms import native

ROOT = "/tmp/dms-fuzz-root/inside"
OUT = Path(__file__).resolve().parents[1] / "dms" / "native" / "tests" / "fuzz_corpus"


def put(path: str, payload: bytes, offset: int = 0, size: int | None = None, flags: int = 0,
        seq: int = 1, digest: str | None = None) -> bytes:  # fmt: skip
    size = len(payload) + offset if size is None else size
    raw = path.encode()
    header = b"DMSP" + struct.pack(">HHQQQQ", flags, len(raw), seq, size, offset, len(payload)) + raw
    hexdigest = digest or native.digest_bytes(payload)
    return header + payload + bytes.fromhex(hexdigest)


def query(entries: list[tuple[str, int, int, int]], flags: int = 0, count: int | None = None) -> bytes:
    n = len(entries) if count is None else count
    out = b"DMSQ" + struct.pack(">HHI", flags, 0, n)
    for path, size, mtime_ns, mode in entries:
        raw = path.encode()
        out += struct.pack(">HQqI", len(raw), size, mtime_ns, mode) + raw + (bytes(16) if flags & 1 else b"")
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    data = bytes(range(256)) * 40
    seeds = {
        "put-ok": b"\0" + put(f"{ROOT}/.a.dms-1.partial", data),
        "put-sub-dir": b"\0" + put(f"{ROOT}/x/y/.b.dms-1.partial", data[:100], offset=50, size=400),
        "put-two-frames": b"\0"
        + put(f"{ROOT}/.c.dms-1.partial", data[:10])
        + put(f"{ROOT}/.c.dms-1.partial", data[:10], seq=2),
        "put-bad-digest": b"\0" + put(f"{ROOT}/.d.dms-1.partial", data[:999], digest="00" * 16),
        "put-dotdot": b"\0" + put(f"{ROOT}/../.e.dms-1.partial", b"escape"),
        "put-outside": b"\0" + put("/tmp/dms-fuzz-root/.f.dms-1.partial", b"escape"),
        "put-not-staging": b"\0" + put(f"{ROOT}/published.txt", b"overwrite"),
        "put-sparse": b"\0" + put(f"{ROOT}/.g.dms-1.partial", bytes(20000) + b"tail", flags=1),
        "put-empty-file": b"\0" + put(f"{ROOT}/.h.dms-1.partial", b""),
        "put-truncated": b"\0" + put(f"{ROOT}/.i.dms-1.partial", data)[:300],
        "put-range-outside": b"\0" + put(f"{ROOT}/.j.dms-1.partial", b"abc", offset=10, size=5),
        "put-bad-flags": b"\0" + put(f"{ROOT}/.k.dms-1.partial", b"abc", flags=0x80),
        "query-ok": b"\0" + query([(f"{ROOT}/a", 10, 0, 0o644), (f"{ROOT}/../etc/passwd", 1, 0, 0o644)]),
        "query-checksum": b"\0" + query([(f"{ROOT}/.a.dms-1.partial", 10240, 0, 0o600)], flags=1),
        "query-then-put": b"\0" + query([(f"{ROOT}/b", 3, 1, 0o600)]) + put(f"{ROOT}/.b.dms-1.partial", b"abc"),
        "query-too-many": b"\0" + query([], count=1 << 30),
        "query-bad-flags": b"\0" + query([(f"{ROOT}/c", 1, 1, 1)], flags=6),
        "garbage": b"\0" + bytes(range(200)),
        "auth-forged": b"\1" + b"DMSA\x00\x01\x00\x00" + bytes(64),
        "auth-wrong-version": b"\1" + b"DMSA\x00\x09\x00\x00" + bytes(64),
        "hello-garbage": b"\1" + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    }
    for name, body in seeds.items():
        (OUT / name).write_bytes(body)
    print(f"{len(seeds)} seeds in {OUT}")


if __name__ == "__main__":
    main()
