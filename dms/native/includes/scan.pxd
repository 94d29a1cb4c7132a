# cython: language_level=3
# distutils: language = c++
"""Extern declarations for include/dms/scan.hpp."""

from libc.stdint cimport int64_t, uint32_t, uint64_t
from libcpp cimport bool
from libcpp.string cimport string
from libcpp.vector cimport vector

cdef extern from "dms/scan.hpp" namespace "dms" nogil:
    cdef cppclass ScanEntry:
        string name
        int err
        uint32_t mode
        uint32_t uid
        uint32_t gid
        uint64_t size
        uint64_t blocks
        uint64_t nlink
        uint64_t dev
        uint64_t ino
        uint64_t rdev
        int64_t mtime_ns
        int64_t atime_ns
        bool up_to_date

    cdef cppclass DirScan:
        int err
        vector[ScanEntry] entries

    DirScan scan_directory(const string&, const string&, bool)
