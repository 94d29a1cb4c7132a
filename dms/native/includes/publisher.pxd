# cython: language_level=3
# distutils: language = c++
"""Extern declarations for include/dms/publisher.hpp."""

from libc.stdint cimport int64_t, uint32_t, uint64_t
from libcpp cimport bool
from libcpp.string cimport string
from libcpp.vector cimport vector

from dms.native.includes.checksum cimport Digest
from dms.native.includes.copier cimport PieceOutcome
from dms.native.includes.errors cimport translate_exception

cdef extern from "dms/publisher.hpp" namespace "dms" nogil:
    cdef struct PublishSpec:
        string staged
        string final_path
        uint64_t size
        Digest expected
        uint32_t mode
        int64_t uid
        int64_t gid
        int64_t atime_ns
        int64_t mtime_ns
        bool verified

    vector[PieceOutcome] publish_whole_files(const vector[PublishSpec]&, const string&, size_t) except +translate_exception
