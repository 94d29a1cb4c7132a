# cython: language_level=3
# distutils: language = c++
"""Extern declarations for include/dms/io.hpp (the parts Python uses)."""

from libcpp.string cimport string

from dms.native.includes.errors cimport translate_exception

cdef extern from "dms/io.hpp" namespace "dms" nogil:
    void sync_filesystem(const string&) except +translate_exception
