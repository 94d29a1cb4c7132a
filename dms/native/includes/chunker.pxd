# cython: language_level=3
# distutils: language = c++
"""Extern declarations for include/dms/chunker.hpp."""

from libc.stdint cimport uint64_t
from libcpp.vector cimport vector

from dms.native.includes.errors cimport translate_exception

cdef extern from "dms/chunker.hpp" namespace "dms" nogil:
    cdef struct Piece:
        uint64_t file_index
        uint64_t offset
        uint64_t length

    cdef struct WorkUnit:
        vector[Piece] pieces
        uint64_t bytes

    cdef struct ChunkerConfig:
        uint64_t chunk_size
        uint64_t unit_bytes
        uint64_t unit_max_pieces

    cdef cppclass FileChunker:
        FileChunker(ChunkerConfig) except +translate_exception
        vector[Piece] split(uint64_t, uint64_t) except +translate_exception
        void add(uint64_t, uint64_t) except +translate_exception
        vector[WorkUnit] take_ready() except +translate_exception
        vector[WorkUnit] finish() except +translate_exception
