#include "shardd/error.hpp"

#include <stdexcept>

namespace shardd {

namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "shardd"; }
  std::string message(int ev) const override { return std::string(to_string(static_cast<errc>(ev))); }
};

}  // namespace

const std::error_category& shardd_category() noexcept {
  static const category instance;
  return instance;
}

std::string_view to_string(errc e) noexcept {
  switch (e) {
    case errc::ok: return "ok";
    case errc::invalid_argument: return "invalid_argument";
    case errc::not_found: return "not_found";
    case errc::already_exists: return "already_exists";
    case errc::conflict: return "conflict";
    case errc::unavailable: return "unavailable";
    case errc::too_large: return "too_large";
    case errc::internal: return "internal";
    case errc::corrupt: return "corrupt";
    case errc::forbidden: return "forbidden";
    case errc::insufficient_storage: return "insufficient_storage";
    case errc::not_controller: return "not_controller";
  }
  return "unknown";
}

void throw_exception_from_error(const error& e, const boost::source_location&) {
  throw std::system_error(make_error_code(e.code), e.detail);
}

}  // namespace shardd
