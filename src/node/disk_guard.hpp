#pragma once
// The node's data disk against the cluster's disk watermarks (rebalance.disk_watermarks in the
// map): measured every heartbeat interval, sent to the controller with each heartbeat, and
// checked on the write path, which refuses puts while the disk is above flood (507).

#include "common/config.hpp"
#include "shardd/error.hpp"
#include "shardd/rebalance_settings.hpp"

#include <atomic>
#include <cstdint>
#include <optional>

namespace shardd {

struct disk_usage {
  std::uint64_t used = 0, total = 0;  ///< total 0: not measured
};

/// The data disk of `cfg`: its file system (statvfs), or with `storage.capacity_bytes` the
/// bytes under the data directory against that capacity.
disk_usage measure_data_disk(const node_config& cfg);

/// Thread-safe: `refresh` from one timer, `usage`, `level` and `refuse_puts` from anywhere.
class disk_guard {
 public:
  explicit disk_guard(const node_config& cfg) : cfg_(cfg) {}
  /// Measures again and finds the level under `w` (flood holds until under high).
  void refresh(const disk_watermarks& w);
  disk_usage usage() const noexcept {
    return {used_.load(std::memory_order_relaxed), total_.load(std::memory_order_relaxed)};
  }
  disk_level level() const noexcept { return static_cast<disk_level>(level_.load(std::memory_order_relaxed)); }
  /// The error for a write that adds data while the disk is at flood (deletes always pass).
  std::optional<error> refuse_puts() const;

 private:
  const node_config& cfg_;
  std::atomic<std::uint64_t> used_{0}, total_{0};
  std::atomic<std::uint8_t> level_{0};
  std::atomic<std::uint32_t> used_permille_{0};
  // What the refusal quotes: the flood and high watermarks the level was found with.
  std::atomic<std::uint64_t> flood_min_free_{0}, high_min_free_{0};
  std::atomic<std::uint32_t> flood_permille_{0}, high_permille_{0};
};

}  // namespace shardd
