# cython: language_level=3
# distutils: language = c++
"""The compiled half of dms.native: cdef classes that own the C++ objects.

Every method converts its Python arguments first, then releases the GIL for
the C++ call, then builds Python results (python-rocksdb's and pyzmq's shape).
Long work is sliced: each step() does a bounded amount of I/O so the caller
can check a cancel flag, report progress and let signals run between slices.
"""

import os

from libc.stdint cimport uint16_t, uint64_t
from libcpp cimport bool as cbool
from libcpp.pair cimport pair
from libcpp.memory cimport unique_ptr
from libcpp.string cimport string
from libcpp.vector cimport vector

from dms.native.includes cimport checksum as c_checksum
from dms.native.includes cimport chunker as c_chunker
from dms.native.includes cimport copier as c_copier
from dms.native.includes cimport io as c_io
from dms.native.includes cimport net as c_net
from dms.native.includes cimport publisher as c_publisher
from dms.native.includes cimport scan as c_scan
from dms.native.includes.errors cimport register_error_classes, translate_exception

from dms import errors as _errors

register_error_classes(
    _errors.IntegrityError, _errors.SourceChangedError, _errors.Cancelled, _errors.ProtocolError,
    _errors.AuthenticationError, _errors.ConfinementError,
)

DEFAULT_SLICE_BYTES = 64 * 1024 * 1024
DEFAULT_BUFFER_BYTES = 1024 * 1024

_METHODS = {"readwrite": c_copier.CopyMethod.ReadWrite, "copy_file_range": c_copier.CopyMethod.CopyFileRange}

STATUS_OK = 0
STATUS_OS_ERROR = 1
STATUS_SOURCE_CHANGED = 2
STATUS_MISMATCH = 3
STATUS_REFUSED = 4

_SEND_METHODS = {"readsend": c_net.SendMethod.ReadSend, "sendfile": c_net.SendMethod.Sendfile}


cdef c_copier.CopyMethod _method(str name) except *:
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"unknown copy method {name!r}; expected one of {sorted(_METHODS)}") from None


cdef object _outcome_error(const c_copier.PieceOutcome& o):
    """The exception a failed piece stands for, built like the built-in open() would."""
    if o.status == c_copier.PieceStatus.OsError:
        if o.call == b"receiver":  # the remote side's errno, with its own words
            return OSError(o.err, os.fsdecode(o.message), os.fsdecode(o.path))
        return OSError(o.err, f"{o.call.decode()}: {os.strerror(o.err)}", os.fsdecode(o.path))
    if o.status == c_copier.PieceStatus.SourceChanged:
        return _errors.SourceChangedError(os.fsdecode(o.message))
    if o.status == c_copier.PieceStatus.Mismatch:
        return _errors.IntegrityError(os.fsdecode(o.message))
    if o.status == c_copier.PieceStatus.Refused:
        return _errors.ConfinementError(os.fsdecode(o.message))
    return None


cdef list _outcomes(vector[c_copier.PieceOutcome]& outs):
    cdef list result = []
    cdef size_t i
    for i in range(outs.size()):
        if outs[i].status == c_copier.PieceStatus.Ok:
            result.append((outs[i].index, outs[i].digest.hex().decode(), None))
        else:
            result.append((outs[i].index, None, _outcome_error(outs[i])))
    return result


cdef class FileChunker:
    """Cuts files into chunks and packs small files into work units."""

    cdef unique_ptr[c_chunker.FileChunker] _c

    def __cinit__(self, uint64_t chunk_size, uint64_t unit_bytes=0, uint64_t unit_max_pieces=1000):
        cdef c_chunker.ChunkerConfig cfg
        cfg.chunk_size = chunk_size
        cfg.unit_bytes = unit_bytes if unit_bytes else chunk_size
        cfg.unit_max_pieces = unit_max_pieces
        self._c.reset(new c_chunker.FileChunker(cfg))

    def split(self, uint64_t file_index, uint64_t size):
        cdef vector[c_chunker.Piece] pieces = self._c.get().split(file_index, size)
        return [(p.offset, p.length) for p in pieces]

    def add(self, uint64_t file_index, uint64_t size):
        self._c.get().add(file_index, size)

    def take_ready(self):
        return _units(self._c.get().take_ready())

    def finish(self):
        return _units(self._c.get().finish())


cdef list _units(vector[c_chunker.WorkUnit] units):
    return [[(p.file_index, p.offset, p.length) for p in u.pieces] for u in units]


cdef class _Sliced:
    """What UnitCopier, UnitSender and Verifier share: work done a bounded slice per step(),
    with the GIL released, by one thread at a time (a second concurrent step() is refused:
    the C++ objects are not thread-safe)."""

    cdef bint _busy

    cdef vector[c_copier.PieceOutcome] _step_released(self, uint64_t max_bytes) except *:
        raise NotImplementedError

    def step(self, uint64_t max_bytes=DEFAULT_SLICE_BYTES):
        if self._busy:
            raise RuntimeError(f"{type(self).__name__}.step() is already running in another thread")
        self._busy = True
        try:
            return _outcomes(self._step_released(max_bytes))
        finally:
            self._busy = False


cdef class UnitCopier(_Sliced):
    """Copies a list of pieces into staging files, a bounded slice per step().

    specs: dms.native.records.CopySpec records; with `finish`, a whole-file piece is read
    back, compared and given its metadata before its staging file closes (ready for
    publish_whole_files).
    step() returns (index, digest_hex, None) for each piece that finished and
    (index, None, exception) for each that failed; it never raises for a
    per-piece I/O problem, so one bad file does not stop the others.
    """

    cdef unique_ptr[c_copier.UnitCopier] _c

    def __cinit__(self, specs, str method="readwrite", size_t buffer_size=DEFAULT_BUFFER_BYTES):
        self._c.reset(new c_copier.UnitCopier(_copy_specs(specs), _method(method), buffer_size))

    @property
    def done(self):
        return self._c.get().done()

    @property
    def bytes_moved(self):
        return self._c.get().bytes_moved()

    @property
    def method(self):
        return "readwrite" if self._c.get().method() == c_copier.CopyMethod.ReadWrite else "copy_file_range"

    cdef vector[c_copier.PieceOutcome] _step_released(self, uint64_t max_bytes) except *:
        cdef vector[c_copier.PieceOutcome] outs
        with nogil:
            outs = self._c.get().step(max_bytes)
        return outs


cdef vector[c_copier.CopySpec] _copy_specs(specs) except *:
    cdef vector[c_copier.CopySpec] cspecs
    cdef c_copier.CopySpec s
    for spec in specs:  # dms.native.records.CopySpec
        s.src = os.fsencode(spec.src)
        s.dst = os.fsencode(spec.dst)
        s.offset = spec.offset
        s.length = spec.length
        s.file_size = spec.file_size
        s.mtime_ns = spec.mtime_ns
        s.check_source = spec.check_source
        s.sparse = spec.sparse
        s.finish = spec.finish  # with it, mode, owner and atime: see CopySpec::finish
        s.mode, s.uid, s.gid, s.atime_ns = spec.mode, spec.uid, spec.gid, spec.atime_ns
        cspecs.push_back(s)
    return cspecs


cdef class UnitSender(_Sliced):
    """Streams a unit's pieces to a remote TcpReceiver, a bounded slice per step().

    specs are UnitCopier's CopySpec records; dst is the staging path on the receiving
    node. The connection leaves from `bind_address` (the source NIC) and is
    made, authenticated with `secret`, inside the first step(). step()
    reports pieces like UnitCopier.step(); it raises OSError (connection
    refused, reset, timed out), AuthenticationError or ProtocolError when the
    connection itself fails, so the caller can retry the unit elsewhere.
    """

    cdef unique_ptr[c_net.UnitSender] _c

    def __cinit__(self, specs, str bind_address, str host, uint16_t port, bytes secret, str method="sendfile",
                  size_t buffer_size=DEFAULT_BUFFER_BYTES, int timeout_ms=60000, size_t window=64):
        cdef c_net.TcpTarget target
        if method not in _SEND_METHODS:
            raise ValueError(f"unknown send method {method!r}; expected one of {sorted(_SEND_METHODS)}")
        target.bind_address = bind_address.encode()
        target.host = host.encode()
        target.port = port
        target.timeout_ms = timeout_ms
        self._c.reset(new c_net.UnitSender(_copy_specs(specs), target, secret, _SEND_METHODS[method], buffer_size, window))

    @property
    def done(self):
        return self._c.get().done()

    @property
    def bytes_moved(self):
        return self._c.get().bytes_moved()

    @property
    def local_address(self):
        return self._c.get().local_address().decode()

    def corrupt_in_flight(self, uint64_t every):
        """Test-only fault hook: flip a byte every `every` payload bytes, after hashing."""
        self._c.get().corrupt_in_flight(every)

    cdef vector[c_copier.PieceOutcome] _step_released(self, uint64_t max_bytes) except *:
        cdef vector[c_copier.PieceOutcome] outs
        with nogil:
            outs = self._c.get().step(max_bytes)
        return outs


def query_up_to_date(entries, str bind_address, str host, uint16_t port, bytes secret, bint checksum=False,
                     int timeout_ms=60000):
    """Ask a receiver which files it already has: entries are (final_path, size, mtime_ns, mode,
    digest_hex or None); returns one bool per entry. Raises like UnitSender.step() when the
    connection fails."""
    cdef c_net.TcpTarget target
    cdef vector[c_net.QueryEntry] centries
    cdef c_net.QueryEntry e
    cdef vector[cbool] answer
    target.bind_address = bind_address.encode()
    target.host = host.encode()
    target.port = port
    target.timeout_ms = timeout_ms
    for path, size, mtime_ns, mode, digest in entries:
        e.path = os.fsencode(path)
        e.size = size
        e.mtime_ns = mtime_ns
        e.mode = mode
        if checksum:
            e.digest = c_copier.parse_digest(digest.encode())
        centries.push_back(e)
    cdef string csecret = secret
    with nogil:
        answer = c_net.query_up_to_date(target, csecret, centries, checksum)
    return [bool(x) for x in answer]


cdef class TcpReceiver:
    """The data receiver: listens on (address, port) pairs and writes confined staging files.

    Threads live in C++; nothing here holds the GIL while bytes move. Drain
    events() regularly (the worker bootstep does) to log refusals.
    """

    cdef unique_ptr[c_net.TcpReceiver] _c

    def __cinit__(self, listen, roots, bytes secret, size_t max_connections=64, int handshake_timeout_ms=10000,
                  int idle_timeout_ms=120000, size_t buffer_size=DEFAULT_BUFFER_BYTES, bytes previous_secret=b""):
        cdef c_net.ReceiverConfig cfg
        cdef pair[string, uint16_t] item
        for address, port in listen:
            item.first = str(address).encode()
            item.second = port
            cfg.listen.push_back(item)
        for root in roots:
            cfg.roots.push_back(os.fsencode(root))
        cfg.secret = secret
        cfg.previous_secret = previous_secret
        cfg.max_connections = max_connections
        cfg.handshake_timeout_ms = handshake_timeout_ms
        cfg.idle_timeout_ms = idle_timeout_ms
        cfg.buffer_size = buffer_size
        with nogil:
            self._c.reset(new c_net.TcpReceiver(cfg))

    def start(self):
        with nogil:
            self._c.get().start()

    def stop(self):
        with nogil:
            self._c.get().stop()

    @property
    def addresses(self):
        return [a.decode() for a in self._c.get().addresses()]

    def events(self):
        """(level, message) pairs logged since the last call; levels are logging's."""
        cdef vector[c_net.ReceiverEvent] evs = self._c.get().drain_events()
        return [(<int>e.level, e.message.decode(errors="replace")) for e in evs]

    def stats(self):
        return {k.decode(): v for k, v in self._c.get().stats()}

    def __dealloc__(self):
        if self._c.get() != NULL:
            with nogil:
                self._c.get().stop()


cdef class Verifier(_Sliced):
    """Re-reads staged ranges and compares them with their recorded digests.

    specs: dms.native.records.VerifySpec records. step() reports like
    UnitCopier.step(); a mismatch is an IntegrityError value.
    """

    cdef unique_ptr[c_copier.Verifier] _c

    def __cinit__(self, specs, size_t buffer_size=DEFAULT_BUFFER_BYTES):
        cdef vector[c_copier.VerifySpec] cspecs
        cdef c_copier.VerifySpec s
        for spec in specs:  # dms.native.records.VerifySpec
            path, offset, length, expected = spec.path, spec.offset, spec.length, spec.digest
            s.path = os.fsencode(path)
            s.offset = offset
            s.length = length
            s.expected = c_copier.parse_digest(expected.encode())
            cspecs.push_back(s)
        self._c.reset(new c_copier.Verifier(cspecs, buffer_size))

    @property
    def done(self):
        return self._c.get().done()

    cdef vector[c_copier.PieceOutcome] _step_released(self, uint64_t max_bytes) except *:
        cdef vector[c_copier.PieceOutcome] outs
        with nogil:
            outs = self._c.get().step(max_bytes)
        return outs


def copy_range(src, dst, uint64_t offset, uint64_t length, str method="readwrite"):
    """Copy one byte range and return the digest of the bytes moved; raises on failure."""
    cdef string csrc = os.fsencode(src)
    cdef string cdst = os.fsencode(dst)
    cdef c_copier.CopyMethod m = _method(method)
    cdef c_checksum.Digest d
    with nogil:
        d = c_copier.copy_range(csrc, cdst, offset, length, m)
    return d.hex().decode()


def hash_range(path, uint64_t offset, uint64_t length, bint mapped=True):
    """Digest of bytes [offset, offset+length) of a file (fewer at end of file).

    mapped=False reads the bytes with pread instead of hashing them in the page cache
    through a mapping (docs/decisions/0020): the same digest, for benchmarks/hash_read.py."""
    cdef string cpath = os.fsencode(path)
    cdef c_checksum.Digest d
    with nogil:
        d = c_copier.hash_range(cpath, offset, length, mapped)
    return d.hex().decode()


def digest_bytes(const unsigned char[:] data not None):
    """Digest of an in-memory buffer: the same function the copier applies."""
    cdef c_checksum.Digest d
    if data.shape[0] == 0:
        d = c_checksum.digest_of(NULL, 0)
    else:
        with nogil:
            d = c_checksum.digest_of(&data[0], data.shape[0])
    return d.hex().decode()


def publish_whole_files(specs, sync_path=None, size_t buffer_size=DEFAULT_BUFFER_BYTES):
    """Verify staged whole files, set their metadata and rename them into place.

    specs: dms.native.records.PublishSpec records; uid -1 leaves the owner alone; `verified`
    (the copier finished the file: CopySpec `finish`) leaves only the rename. With `sync_path`, one syncfs of its filesystem runs between
    the metadata and the renames. Returns, per spec, (index, digest_hex, None) when it
    was published, else (index, None, exception); raises only if that syncfs fails.
    """
    cdef vector[c_publisher.PublishSpec] cspecs
    cdef c_publisher.PublishSpec s
    for spec in specs:  # dms.native.records.PublishSpec
        s.verified = spec.verified
        s.staged = os.fsencode(spec.staged)
        s.final_path = os.fsencode(spec.final)
        s.size = spec.size
        s.expected = c_copier.parse_digest(spec.digest.encode())
        s.mode = spec.mode
        s.uid = spec.uid
        s.gid = spec.gid
        s.atime_ns = spec.atime_ns
        s.mtime_ns = spec.mtime_ns
        cspecs.push_back(s)
    cdef string csync = os.fsencode(sync_path) if sync_path else b""
    cdef vector[c_copier.PieceOutcome] outs
    with nogil:
        outs = c_publisher.publish_whole_files(cspecs, csync, buffer_size)
    return _outcomes(outs)


cdef class ScanEntry:
    """One entry of scan_directory: an lstat, and with a destination the quick check. A
    compiled class, not a tuple: a walk makes one per entry, and callers read it by name."""

    cdef readonly str name
    cdef readonly int err
    cdef readonly unsigned int mode
    cdef readonly long long uid, gid
    cdef readonly unsigned long long size, blocks, nlink, dev, ino, rdev
    cdef readonly long long mtime_ns, atime_ns
    cdef readonly bint up_to_date

    def __repr__(self):
        return f"ScanEntry({self.name!r}, err={self.err}, mode={self.mode:o}, size={self.size})"


cdef ScanEntry _scan_entry(c_scan.ScanEntry* e):
    cdef ScanEntry out = ScanEntry.__new__(ScanEntry)
    out.name = os.fsdecode(e.name)
    out.err, out.mode, out.uid, out.gid = e.err, e.mode, e.uid, e.gid
    out.size, out.blocks, out.nlink, out.dev, out.ino, out.rdev = e.size, e.blocks, e.nlink, e.dev, e.ino, e.rdev
    out.mtime_ns, out.atime_ns, out.up_to_date = e.mtime_ns, e.atime_ns, e.up_to_date
    return out


def scan_directory(path, dest=None, xattrs=False):
    """One directory of the walk: (errno or 0, entries), entries in the directory's own order as
    ScanEntry records. With `dest`, up_to_date is rsync's quick check of a regular file against the same
    name in `dest` (regular there too, same size, mtime in ns and permission bits; as root the same
    owner; with `xattrs`, the same extended attributes)."""
    cdef string cpath = os.fsencode(path)
    cdef string cdest = os.fsencode(dest) if dest else b""
    cdef bint cxattrs = bool(xattrs)
    cdef c_scan.DirScan scan
    with nogil:
        scan = c_scan.scan_directory(cpath, cdest, cxattrs)
    cdef list entries = []
    cdef size_t i
    for i in range(scan.entries.size()):
        entries.append(_scan_entry(&scan.entries[i]))
    return scan.err, entries


def sync_filesystem(path):
    """Flush every dirty page and inode of the filesystem holding `path` (syncfs)."""
    cdef string cpath = os.fsencode(path)
    with nogil:
        c_io.sync_filesystem(cpath)
