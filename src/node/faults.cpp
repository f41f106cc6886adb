#include "node/faults.hpp"

#include "common/log.hpp"

#include <atomic>
#include <charconv>
#include <mutex>
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

namespace {

std::atomic<bool> partition_set{false};
std::mutex partition_mutex;
std::string partition_peer;  // under partition_mutex
std::chrono::steady_clock::time_point partition_until;
int partition_let_through = 0;

}  // namespace

void partition_from(std::string peer, std::chrono::milliseconds length, int let_through) {
  SHARDD_LOG(warn, "fault_injected", "fault", "partition_after_commit", "peer", peer, "ms", length.count());
  std::lock_guard lock(partition_mutex);
  partition_peer = std::move(peer);
  partition_until = std::chrono::steady_clock::now() + length;
  partition_let_through = let_through;
  partition_set.store(true, std::memory_order_release);
}

bool partitioned_from(std::string_view peer, bool outgoing) {
  if (!partition_set.load(std::memory_order_acquire)) return false;
  std::lock_guard lock(partition_mutex);
  if (std::chrono::steady_clock::now() >= partition_until) {
    partition_set.store(false, std::memory_order_release);
    SHARDD_LOG(warn, "fault_healed", "fault", "partition_after_commit", "peer", partition_peer);
    return false;
  }
  if (peer != partition_peer) return false;
  if (outgoing && partition_let_through > 0) {
    --partition_let_through;
    return false;
  }
  return true;
}

void kill_for_fault(std::string_view fault, std::string_view where) {
  SHARDD_LOG(warn, "fault_injected", "fault", fault, "at", where);
  ::kill(::getpid(), SIGKILL);
  std::_Exit(137);  // not reached
}

}  // namespace shardd
