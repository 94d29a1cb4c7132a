// errno failures become OSError(errno, "call: strerror", path), so Python picks
// the precise subclass (FileNotFoundError, PermissionError, ...) exactly as the
// built-in open() would; DMS errors become the classes of dms/errors.py.
#include <Python.h>

#include <new>
#include <stdexcept>
#include <string>

#include "dms/errors.hpp"
#include "dms/py_errors.hpp"

namespace dms {

namespace {
PyObject* g_integrity = nullptr;
PyObject* g_source_changed = nullptr;
PyObject* g_cancelled = nullptr;
PyObject* g_protocol = nullptr;
PyObject* g_auth = nullptr;
PyObject* g_confinement = nullptr;

void set_dms_error(PyObject* cls, const char* what) { PyErr_SetString(cls ? cls : PyExc_RuntimeError, what); }

void set_os_error(const SystemError& e) {
  std::string message = e.call() + ": " + e.code().message();
  PyObject* args = Py_BuildValue("(isO&)", e.code().value(), message.c_str(), PyUnicode_DecodeFSDefault, e.path().c_str());
  if (args == nullptr) return;
  PyErr_SetObject(PyExc_OSError, args);
  Py_DECREF(args);
}
}  // namespace

void register_error_classes(PyObject* integrity, PyObject* source_changed, PyObject* cancelled, PyObject* protocol,
                            PyObject* auth, PyObject* confinement) {
  for (PyObject* cls : {integrity, source_changed, cancelled, protocol, auth, confinement}) Py_XINCREF(cls);
  g_integrity = integrity;
  g_source_changed = source_changed;
  g_cancelled = cancelled;
  g_protocol = protocol;
  g_auth = auth;
  g_confinement = confinement;
}

void translate_exception() {
  if (PyErr_Occurred()) return;  // a Python error is already set: keep it
  try {
    throw;
  } catch (const SystemError& e) {
    set_os_error(e);
  } catch (const IntegrityError& e) {
    set_dms_error(g_integrity, e.what());
  } catch (const SourceChangedError& e) {
    set_dms_error(g_source_changed, e.what());
  } catch (const Cancelled& e) {
    set_dms_error(g_cancelled, e.what());
  } catch (const ProtocolError& e) {
    set_dms_error(g_protocol, e.what());
  } catch (const AuthError& e) {
    set_dms_error(g_auth, e.what());
  } catch (const ConfinementError& e) {
    set_dms_error(g_confinement, e.what());
  } catch (const std::system_error& e) {
    PyErr_SetObject(PyExc_OSError, Py_BuildValue("(is)", e.code().value(), e.what()));
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::invalid_argument& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const std::out_of_range& e) {
    PyErr_SetString(PyExc_IndexError, e.what());
  } catch (const std::overflow_error& e) {
    PyErr_SetString(PyExc_OverflowError, e.what());
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (...) {
    PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
  }
}

}  // namespace dms
