# cython: language_level=3
# distutils: language = c++
"""Extern declarations for include/dms/checksum.hpp."""

from libc.stdint cimport uint64_t
from libcpp.string cimport string

from dms.native.includes.errors cimport translate_exception

cdef extern from "dms/checksum.hpp" namespace "dms" nogil:
    cdef cppclass Digest:
        uint64_t high
        uint64_t low
        string hex() except +translate_exception

    Digest digest_of(const void*, size_t) noexcept
