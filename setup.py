"""Native build only: the static C++ core (build_clib) and the Cython extension.

Metadata lives in pyproject.toml. Environment switches:
  DMS_NATIVE_CXXFLAGS   replace the default optimisation flags
  DMS_NATIVE_SANITIZE   e.g. "address,undefined": add -fsanitize=... (compile and link)
  DMS_CYTHON_ANNOTATE   "1": write Cython's HTML annotation next to the .pyx
"""

import os
import shlex
from glob import glob

from setuptools import Extension, setup

CYTHON_REQUIREMENT = (3, 1)

try:
    import Cython
    from Cython.Build import cythonize
except ImportError as exc:  # pragma: no cover - build-time guard
    raise SystemExit("DMS needs Cython >= 3.1 to build its native core: pip install 'cython>=3.1,<4'") from exc

if tuple(int(p) for p in Cython.__version__.split(".")[:2]) < CYTHON_REQUIREMENT:
    raise SystemExit(f"DMS needs Cython >= 3.1, found {Cython.__version__}")

NATIVE = "dms/native"
INCLUDE_DIRS = [f"{NATIVE}/include", f"{NATIVE}/third_party/xxhash"]
CXXFLAGS = ["-std=c++20", "-Wall", "-Wextra", "-fvisibility=hidden"]
CXXFLAGS += shlex.split(os.environ.get("DMS_NATIVE_CXXFLAGS", "-O3"))
LDFLAGS: list[str] = []
if sanitize := os.environ.get("DMS_NATIVE_SANITIZE"):
    CXXFLAGS += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g"]
    LDFLAGS += [f"-fsanitize={sanitize}"]

# The core never includes Python.h; py_errors.cpp (the translator) does, so it
# is compiled into the extension rather than into the static library.
core_sources = sorted(p for p in glob(f"{NATIVE}/src/*.cpp") if not p.endswith("py_errors.cpp"))

extension = Extension(
    "dms.native._core",
    sources=[f"{NATIVE}/_core.pyx", f"{NATIVE}/src/py_errors.cpp"],
    language="c++",
    include_dirs=INCLUDE_DIRS,
    extra_compile_args=CXXFLAGS,
    extra_link_args=LDFLAGS,
    libraries=["dms_core", "crypto"],  # libcrypto: HMAC-SHA256 of the data-plane handshake
)

setup(
    libraries=[("dms_core", {"sources": core_sources, "include_dirs": INCLUDE_DIRS, "cflags": CXXFLAGS})],
    ext_modules=cythonize(
        [extension],
        language_level=3,
        compiler_directives={"embedsignature": True},
        annotate=os.environ.get("DMS_CYTHON_ANNOTATE") == "1",
    ),
)
