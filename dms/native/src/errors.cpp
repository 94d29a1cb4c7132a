#include "dms/errors.hpp"

namespace dms {

SystemError::SystemError(int err, std::string call, std::string path)
    : std::system_error(err, std::generic_category(), call + "(" + path + ")"),
      call_(std::move(call)),
      path_(std::move(path)) {}

void throw_errno(int err, std::string_view call, std::string_view path) {
  throw SystemError(err, std::string(call), std::string(path));
}

}  // namespace dms
