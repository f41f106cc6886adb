#include "node/faults.hpp"

#include "common/log.hpp"

#include <charconv>
#include <csignal>
#include <cstdlib>

#include <unistd.h>

namespace shardd {

std::string test_fault_text(std::string_view name) {
  const char* env = std::getenv("SHARDD_TEST_FAULTS");
  if (!env) return {};
  std::string_view s(env);
  while (!s.empty()) {
    const auto comma = s.find(',');
    const auto item = s.substr(0, comma);
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    const auto eq = item.find('=');
    if (eq != std::string_view::npos && item.substr(0, eq) == name) return std::string(item.substr(eq + 1));
  }
  return {};
}

std::uint32_t test_fault(std::string_view name) {
  const auto text = test_fault_text(name);
  std::uint32_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc{} && p == text.data() + text.size() ? v : 0;
}

void kill_for_fault(std::string_view fault, std::string_view where) {
  SHARDD_LOG(warn, "fault_injected", "fault", fault, "at", where);
  ::kill(::getpid(), SIGKILL);
  std::_Exit(137);  // not reached
}

}  // namespace shardd
