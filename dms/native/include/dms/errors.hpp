// The C++ core's error tree. Every failure of a system call becomes a
// dms::SystemError carrying errno, the call and the path, so the Python side
// can raise the precise OSError subclass (see src/py_errors.cpp). DMS-level
// failures derive from dms::Error and map onto the classes of dms/errors.py.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace dms {

// Root of DMS-specific failures that are not an errno.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bytes read back do not hash to the digest recorded when they were moved.
class IntegrityError : public Error {
 public:
  using Error::Error;
};

// The source file no longer matches what the planner saw (size or mtime
// changed, or it ended early): copying on would publish a mix of versions.
class SourceChangedError : public Error {
 public:
  using Error::Error;
};

// A cooperative cancel was observed.
class Cancelled : public Error {
 public:
  using Error::Error;
};

// Bytes that do not parse as a DMS data-plane frame, or a peer that breaks
// the protocol's sequence.
class ProtocolError : public Error {
 public:
  using Error::Error;
};

// The data-plane handshake failed: wrong secret, replayed or forged proof.
class AuthError : public Error {
 public:
  using Error::Error;
};

// A destination path lies outside the receiver's allowed roots, escapes one
// through a symlink, or is not a DMS staging file.
class ConfinementError : public Error {
 public:
  using Error::Error;
};

// errno failure of one call on one path. what() reads "pwrite(/a/b): No space
// left on device"; call() and path() keep the parts for the translator.
class SystemError : public std::system_error {
 public:
  SystemError(int err, std::string call, std::string path);
  const std::string& call() const noexcept { return call_; }
  const std::string& path() const noexcept { return path_; }

 private:
  std::string call_;
  std::string path_;
};

[[noreturn]] void throw_errno(int err, std::string_view call, std::string_view path);

}  // namespace dms
