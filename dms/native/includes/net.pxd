# cython: language_level=3
# distutils: language = c++
"""Extern declarations for include/dms/sender.hpp and include/dms/receiver.hpp."""

from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t
from libcpp cimport bool
from libcpp.map cimport map
from libcpp.pair cimport pair
from libcpp.string cimport string
from libcpp.vector cimport vector

from dms.native.includes.checksum cimport Digest
from dms.native.includes.copier cimport CopySpec, PieceOutcome
from dms.native.includes.errors cimport translate_exception

cdef extern from "dms/sender.hpp" namespace "dms" nogil:
    cdef enum class SendMethod(int):
        ReadSend
        Sendfile

    cdef cppclass TcpTarget:
        string bind_address
        string host
        uint16_t port
        int timeout_ms

    cdef cppclass UnitSender:
        UnitSender(vector[CopySpec], TcpTarget, string, SendMethod, size_t, size_t) except +translate_exception
        vector[PieceOutcome] step(uint64_t) except +translate_exception
        bool done() noexcept
        uint64_t bytes_moved() noexcept
        const string& local_address() noexcept
        void corrupt_in_flight(uint64_t) noexcept

cdef extern from "dms/protocol.hpp" namespace "dms::wire" nogil:
    cdef cppclass QueryEntry:
        string path
        uint64_t size
        int64_t mtime_ns
        uint32_t mode
        Digest digest

cdef extern from "dms/sender.hpp" namespace "dms" nogil:
    vector[bool] query_up_to_date(const TcpTarget&, const string&, const vector[QueryEntry]&, bool) except +translate_exception

cdef extern from "dms/receiver.hpp" namespace "dms" nogil:
    cdef enum class LogLevel(int):
        Debug
        Info
        Warning
        Error

    cdef cppclass ReceiverEvent:
        LogLevel level
        string message

    cdef cppclass ReceiverConfig:
        vector[pair[string, uint16_t]] listen
        vector[string] roots
        string secret
        string previous_secret
        size_t max_connections
        int handshake_timeout_ms
        int idle_timeout_ms
        size_t buffer_size

    cdef cppclass TcpReceiver:
        TcpReceiver(ReceiverConfig) except +translate_exception
        void start() except +translate_exception
        void stop() noexcept
        vector[string] addresses() except +translate_exception
        vector[ReceiverEvent] drain_events() except +translate_exception
        map[string, uint64_t] stats() except +translate_exception
