# cython: language_level=3
# distutils: language = c++
"""Extern declaration of the C++ -> Python exception translator."""

cdef extern from "dms/py_errors.hpp" namespace "dms":
    void translate_exception()
    void register_error_classes(object integrity, object source_changed, object cancelled, object protocol,
                                object auth, object confinement)
