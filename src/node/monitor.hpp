#pragma once
// The monitor actor (DESIGN §4): samples the request path's counters and the node's figures
// every interval, keeps their history in memory, and answers windows over it.

#include "common/config.hpp"
#include "node/actor.hpp"
#include "node/shard_load.hpp"
#include "shardd/histogram.hpp"
#include "shardd/peer_messages.hpp"

#include <boost/asio/steady_timer.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace shardd {

namespace storage {
class store;
}
class ring_actor;

/// The monitor's settings: the first from the config file, changed at run time through
/// `PUT /v1/monitor/settings` (not persisted: a restart takes the file's again).
struct monitor_settings {
  std::uint32_t interval_ms = 5000;  ///< 0: off (no sampling, and requests are not counted per shard)
  std::uint64_t history_ms = 3600 * 1000;
};

/// Where the monitor reads what other parts of the node own (set once at start).
struct monitor_sources {
  std::function<std::size_t()> rest_connections;
  std::function<std::size_t()> peer_connections;
  std::function<std::optional<std::uint64_t>()> heartbeat_rtt_us;  ///< to the controller (members)
};

/// The node's figures at one sample. Counts marked cumulative only grow.
struct node_figures {
  std::uint64_t disk_used = 0;  ///< bytes of the data directory's file system in use
  std::uint64_t disk_free = 0;  ///< bytes available to this process there
  std::uint64_t disk_total = 0;
  std::uint64_t data_bytes = 0;  ///< RocksDB's live table files
  std::uint64_t pending_compaction_bytes = 0;
  std::uint64_t l0_files = 0;
  std::uint64_t memtable_bytes = 0;
  std::uint64_t rss_bytes = 0;
  std::uint64_t rest_connections = 0;
  std::uint64_t peer_connections = 0;
  std::optional<std::uint64_t> heartbeat_rtt_us;
  // cumulative
  std::uint64_t rest_requests = 0;
  std::uint64_t rest_errors = 0;
  std::uint64_t forwarded = 0;
  std::uint64_t migration_bytes_in = 0;
  std::uint64_t migration_bytes_out = 0;
};

/// Quantiles of one histogram, in its unit (microseconds for latencies).
struct latency_summary {
  std::uint64_t count = 0;
  std::uint64_t p50 = 0, p90 = 0, p99 = 0, max = 0;
  static latency_summary of(const histogram& h);
};

/// One shard over a window: what happened in it and how fast it was served.
struct shard_window {
  std::uint32_t index_id = 0;
  std::uint32_t shard_id = 0;
  std::uint64_t records = 0, bytes = 0;  ///< now
  std::uint64_t reads = 0, writes = 0, deletes = 0, scans = 0, scanned = 0, bytes_in = 0, bytes_out = 0, errors = 0;
  std::array<latency_summary, load_op_count> latency;
};

/// The node over a window.
struct node_window {
  node_figures now;
  std::uint64_t rest_requests = 0, rest_errors = 0, forwarded = 0, migration_bytes_in = 0, migration_bytes_out = 0;
  std::int64_t disk_used_change = 0;  ///< bytes, over the window
  std::array<latency_summary, load_op_count> latency;  ///< every local shard's requests together
};

/// What `GET /v1/stats` shows of one node.
struct stats_view {
  double seconds = 0;         ///< the window actually covered (shorter while history builds up)
  std::int64_t age_ms = 0;    ///< since the last sample
  std::uint64_t samples = 0;  ///< samples in the window, ends included
  monitor_settings settings;
  node_window node;
  std::vector<shard_window> shards;  ///< by (index id, shard id)
};

/// Samples and history of one node.
///
/// Strand: its own; a timer samples every `interval_ms`, and windows are read on the strand
/// (`run_on`). The request path never waits for it: it counts into atomics the monitor reads.
/// Memory: per local shard its counters and five latency histograms (~12 KiB), and per sample
/// about 100 bytes plus the buckets its interval used. Owned by the node.
class monitor {
 public:
  monitor(asio::any_io_executor ex, const node_config& cfg, storage::store& store, ring_actor& ring);
  ~monitor();

  void set_sources(monitor_sources s) { sources_ = std::move(s); }
  /// Takes a first sample and starts the timer.
  void start();
  void stop();

  /// The last `window` (at least one interval), ending at the last sample.
  asio::awaitable<stats_view> window(std::chrono::milliseconds window);
  monitor_settings settings() const;
  /// Applies new settings (the next tick uses them; turning sampling on starts it now).
  asio::awaitable<void> apply(monitor_settings s);

  /// The load of every local shard over the last interval, for heartbeats and the controller's
  /// load table; null until two samples were taken. Lock-free; any thread.
  std::shared_ptr<const std::vector<peer::shard_load>> latest_load() const { return latest_.load(std::memory_order_acquire); }

  /// The node's figures now (for `/metrics`, which reads the counters themselves).
  node_figures figures_now() const;

 private:
  struct sparse_histogram {
    std::vector<std::pair<std::uint16_t, std::uint32_t>> buckets;  ///< (bucket, count), non-zero only
    std::uint64_t sum = 0, max = 0;
    void add_to(histogram& h) const;
  };
  struct shard_sample {
    std::int64_t t_ms = 0;
    std::array<std::uint64_t, 8> counters{};  ///< cumulative, in shard_counters' order
    std::uint64_t records = 0, bytes = 0;
    std::array<sparse_histogram, load_op_count> interval;  ///< since the previous sample
  };
  struct shard_series {
    std::deque<shard_sample> samples;
    std::array<histogram, load_op_count> last;  ///< cumulative at the last sample
  };
  struct node_sample {
    std::int64_t t_ms = 0;
    node_figures f;
  };

  asio::awaitable<void> loop(std::uint64_t generation);
  void sample();
  void trim(std::int64_t now_ms);
  std::int64_t now_ms() const;

  const node_config& cfg_;
  storage::store& store_;
  ring_actor& ring_;
  asio::strand<asio::any_io_executor> strand_;
  asio::steady_timer timer_;
  monitor_sources sources_;
  std::chrono::steady_clock::time_point epoch_;
  std::atomic<std::uint32_t> interval_ms_;
  std::atomic<std::uint64_t> history_ms_;
  std::uint64_t generation_ = 0;  ///< a new loop per start or settings change; an old one ends
  bool stopped_ = false;
  std::map<std::uint64_t, shard_series> shards_;
  std::deque<node_sample> node_;
  std::atomic<std::shared_ptr<const std::vector<peer::shard_load>>> latest_;
};

/// Parses a window: "90s", "5m", "1h", "500ms" (a bare number is seconds).
[[nodiscard]] result<std::chrono::milliseconds> parse_window(std::string_view text);

}  // namespace shardd
