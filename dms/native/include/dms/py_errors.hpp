// The C++ -> Python exception translator, used as `except +dms::translate_exception`
// on every throwing declaration in includes/*.pxd. Only src/py_errors.cpp sees
// Python.h; the core itself does not know Python exists.
#pragma once

struct _object;

namespace dms {

// Called by Cython inside a catch(...) block: rethrows the active C++
// exception and sets the matching Python error.
void translate_exception();

// The Python classes of dms/errors.py, handed over once at import time so
// this file never has to import Python modules itself.
void register_error_classes(_object* integrity, _object* source_changed, _object* cancelled, _object* protocol,
                            _object* auth, _object* confinement);

}  // namespace dms
