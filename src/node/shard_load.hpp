#pragma once
// What the request path counts for the monitor: per-shard counters and latency histograms,
// found through the map snapshot a request already holds, and the node's own counters.
// Counting is relaxed atomic adds: no lock, no allocation.

#include "shardd/histogram.hpp"
#include "shardd/partition_map.hpp"
#include "shardd/top_k.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace shardd {

/// The kinds of request the monitor times, each with its own histogram.
enum class load_op : std::uint8_t { read, write, del, scan, bulk };
inline constexpr std::size_t load_op_count = 5;
inline constexpr std::array<const char*, load_op_count> load_op_names = {"read", "write", "delete", "scan", "bulk"};

/// The keys of one shard's requests, sampled into a Space-Saving sketch: one request in
/// `every` is offered, and only when the sketch's lock is free at once (a busy sketch skips the
/// sample; the request path never waits). The monitor rotates the sketch every `rotate_after`,
/// keeping the previous one, so the top keys cover the last one to two rotations.
class hot_key_sampler {
 public:
  static constexpr std::uint64_t every = 8;
  static constexpr std::size_t capacity = 64;
  static constexpr std::chrono::seconds rotate_after{60};

  /// Whether this request is the one in `every` to sample (cheap; call before building a key).
  bool due() noexcept { return seq_.fetch_add(1, std::memory_order_relaxed) % every == 0; }
  void offer(std::string_view key) noexcept;
  /// Starts a new sketch when the current one is older than `rotate_after`.
  void rotate(std::chrono::steady_clock::time_point now);

  struct view {
    std::vector<space_saving::entry> top;  ///< counts are of sampled requests
    std::uint64_t sampled = 0;             ///< sampled requests the view covers
    double seconds = 0;                    ///< how long they were sampled over
  };
  view top(std::size_t k, std::chrono::steady_clock::time_point now);

 private:
  std::atomic<std::uint64_t> seq_{0};
  std::mutex mutex_;
  space_saving current_{capacity};
  space_saving previous_{capacity};
  std::chrono::steady_clock::time_point current_since_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point previous_since_ = current_since_;
  bool have_previous_ = false;
};

/// The monotonic counters of one shard on its owner. Written from any thread.
struct shard_counters {
  shard_counters(std::uint32_t ix, std::uint32_t sh) : index_id(ix), shard_id(sh) {}
  const std::uint32_t index_id;
  const std::uint32_t shard_id;
  std::atomic<std::uint64_t> reads{0};    ///< point reads (found or not)
  std::atomic<std::uint64_t> writes{0};   ///< puts, single or in a bulk
  std::atomic<std::uint64_t> deletes{0};  ///< deletes, single or in a bulk
  std::atomic<std::uint64_t> scans{0};    ///< scan requests that read this shard
  std::atomic<std::uint64_t> scanned{0};  ///< records those scans returned
  std::atomic<std::uint64_t> bytes_in{0};   ///< keys and documents written
  std::atomic<std::uint64_t> bytes_out{0};  ///< keys and documents read
  std::atomic<std::uint64_t> errors{0};     ///< requests answered with a server-side failure
  std::array<atomic_histogram, load_op_count> latency_us;
  hot_key_sampler hot;

  void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept { c.fetch_add(n, std::memory_order_relaxed); }
  void time(load_op op, std::chrono::steady_clock::duration d) noexcept {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    latency_us[static_cast<std::size_t>(op)].record(us > 0 ? static_cast<std::uint64_t>(us) : 0);
  }
};

/// The counters of every shard a map gives this node, for one map version: immutable, held by
/// the map snapshot, so a request that holds its snapshot may count into what it finds.
class load_table {
 public:
  /// The shard's counters, or null when this node does not own it in this map or the monitor
  /// is off (then nothing is counted).
  shard_counters* find(std::uint32_t index_id, std::uint32_t shard_id) const noexcept;
  const std::vector<std::shared_ptr<shard_counters>>& all() const noexcept { return owned_; }

 private:
  friend class load_registry;
  std::vector<std::pair<std::uint64_t, shard_counters*>> sorted_;
  std::vector<std::shared_ptr<shard_counters>> owned_;
  const std::atomic<bool>* counting_ = nullptr;  ///< the registry's switch (it outlives its tables)
};

/// The node's counters (not per shard).
struct node_counters {
  std::atomic<std::uint64_t> forwarded{0};         ///< requests relayed to another node
  std::atomic<std::uint64_t> rest_requests{0};     ///< REST requests answered (forwarded ones included)
  std::atomic<std::uint64_t> rest_errors{0};       ///< ... of them with a 5xx
  std::atomic<std::uint64_t> migration_bytes_out{0};  ///< shard data sent by moves from here
  std::atomic<std::uint64_t> migration_bytes_in{0};   ///< shard data taken in by moves to here
  std::atomic<std::uint64_t> migration_wire_saved{0};  ///< batch bytes compression kept off the wire
};

/// Carries each shard's counters from one map version to the next: a shard that stays here
/// keeps its counts; one that arrives gets fresh ones; one that leaves is forgotten (its
/// counters live on while an older snapshot still holds them).
class load_registry {
 public:
  explicit load_registry(std::string self) : self_(std::move(self)) {}

  /// The table for `m` (called by the ring actor before it publishes a map).
  std::shared_ptr<const load_table> table_for(const partition_map& m);

  node_counters& node() noexcept { return node_; }

  /// Whether requests are counted (the monitor turns it off with sampling).
  void set_counting(bool on) noexcept { counting_.store(on, std::memory_order_relaxed); }
  bool counting() const noexcept { return counting_.load(std::memory_order_relaxed); }

 private:
  std::string self_;
  std::atomic<bool> counting_{true};
  std::mutex mutex_;  // table_for only (the ring strand); never on the request path
  std::map<std::uint64_t, std::shared_ptr<shard_counters>> by_shard_;
  node_counters node_;
};

inline std::uint64_t load_key(std::uint32_t index_id, std::uint32_t shard_id) noexcept {
  return (std::uint64_t(index_id) << 32) | shard_id;
}

}  // namespace shardd
