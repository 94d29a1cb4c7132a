# cython: language_level=3
# distutils: language = c++
"""Extern declarations for include/dms/copier.hpp."""

from libc.stdint cimport int64_t, uint32_t, uint64_t
from libcpp cimport bool
from libcpp.string cimport string
from libcpp.vector cimport vector

from dms.native.includes.checksum cimport Digest
from dms.native.includes.errors cimport translate_exception

cdef extern from "dms/copier.hpp" namespace "dms" nogil:
    cdef enum class CopyMethod(int):
        ReadWrite
        CopyFileRange

    cdef enum class PieceStatus(int):
        Ok
        OsError
        SourceChanged
        Mismatch
        Refused

    cdef struct CopySpec:
        string src
        string dst
        uint64_t offset
        uint64_t length
        uint64_t file_size
        int64_t mtime_ns
        bool check_source
        bool sparse
        bool finish
        uint32_t mode
        int64_t uid
        int64_t gid
        int64_t atime_ns

    cdef struct VerifySpec:
        string path
        uint64_t offset
        uint64_t length
        Digest expected

    cdef cppclass PieceOutcome:
        size_t index
        PieceStatus status
        Digest digest
        int err
        string call
        string message
        string path

    cdef cppclass UnitCopier:
        UnitCopier(vector[CopySpec], CopyMethod, size_t) except +translate_exception
        vector[PieceOutcome] step(uint64_t) except +translate_exception
        bool done() noexcept
        uint64_t bytes_moved() noexcept
        CopyMethod method() noexcept

    cdef cppclass Verifier:
        Verifier(vector[VerifySpec], size_t) except +translate_exception
        vector[PieceOutcome] step(uint64_t) except +translate_exception
        bool done() noexcept

    Digest copy_range(const string&, const string&, uint64_t, uint64_t, CopyMethod) except +translate_exception
    Digest hash_range(const string&, uint64_t, uint64_t, bint) except +translate_exception
    Digest parse_digest(const string&) except +translate_exception
