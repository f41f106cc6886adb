#include "node/faults.hpp"

#include <charconv>
#include <cstdlib>

namespace shardd {

std::uint32_t test_fault(std::string_view name) {
  const char* env = std::getenv("SHARDD_TEST_FAULTS");
  if (!env) return 0;
  std::string_view s(env);
  while (!s.empty()) {
    const auto comma = s.find(',');
    const auto item = s.substr(0, comma);
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    const auto eq = item.find('=');
    if (eq != std::string_view::npos && item.substr(0, eq) == name) {
      std::uint32_t v = 0;
      const auto text = item.substr(eq + 1);
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      return ec == std::errc{} && p == text.data() + text.size() ? v : 0;
    }
  }
  return 0;
}

}  // namespace shardd
