#pragma once
// The monitor actor (DESIGN §4): samples the request path's counters and the node's figures
// every interval, keeps their history in memory, and answers windows over it.

#include "common/config.hpp"
#include "node/actor.hpp"
#include "node/shard_load.hpp"
#include "shardd/anomaly.hpp"
#include "shardd/forecast.hpp"
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
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace shardd {

namespace storage {
class store;
}
class ring_actor;

/// The monitor's settings: the first from the config file, changed at run time through
/// `PUT /v1/monitor/settings`, which keeps them in the node's store (`monitor_settings_key`):
/// from then on a restart takes the stored ones, not the file's.
struct monitor_settings {
  std::uint32_t interval_ms = 5000;  ///< 0: off (no sampling, and requests are not counted per shard)
  std::uint64_t history_ms = 3600 * 1000;
};
inline constexpr std::string_view monitor_settings_key = "monitor/settings";
std::string to_json(const monitor_settings& s);
/// The stored form back; nullopt if it does not parse or is out of the accepted ranges.
std::optional<monitor_settings> monitor_settings_from_json(std::string_view text);

/// Where the monitor reads what other parts of the node own (set once at start).
struct monitor_sources {
  std::function<std::size_t()> rest_connections;
  std::function<std::size_t()> peer_connections;
  std::function<std::optional<std::uint64_t>()> heartbeat_rtt_us;  ///< to the controller (members)
  /// Sends a `ping` to a node and answers the round trip in microseconds, or why it failed.
  std::function<asio::awaitable<result<std::uint64_t>>(std::string node)> ping;
};

/// The last round trip to one other node, measured by the monitor's ping once per sample.
struct peer_rtt {
  std::string node;
  std::uint64_t rtt_us = 0;    ///< of the last ping answered
  std::uint64_t max_us = 0;    ///< the largest of the last ten answered
  std::int64_t at_unix_ms = 0; ///< when the last ping was answered (0: never)
  std::string error;           ///< why the last ping failed; empty when it was answered
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
  std::uint64_t migration_wire_saved = 0;
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

/// The series the monitor watches for anomalies: four per shard, one per node.
enum class anomaly_series : std::uint8_t { read_rate, write_rate, p99_latency, error_rate, disk_growth };
inline constexpr std::size_t shard_anomaly_series = 4;  ///< the first four are per shard
inline constexpr std::array<const char*, 5> anomaly_series_names = {"read_rate", "write_rate", "p99_latency_us", "error_rate",
                                                                    "disk_growth_bytes_per_sec"};
/// Closed anomalies the monitor remembers (the newest).
inline constexpr std::size_t anomalies_kept = 256;

/// A stretch of samples a series spent away from its own recent history.
struct anomaly {
  std::uint64_t id = 0;  ///< per node, increasing from 1 since the node started
  anomaly_series series = anomaly_series::read_rate;
  bool per_shard = true;
  std::uint32_t index_id = 0, shard_id = 0;  ///< when per shard
  std::int64_t opened_unix_ms = 0;
  std::int64_t closed_unix_ms = 0;  ///< 0 while open
  double value = 0;     ///< the sample that opened it
  double baseline = 0;  ///< the series' mean before it
  double sigma = 0;     ///< ... and its deviation
  double score = 0;     ///< of the opening sample, signed (below zero: a drop)
  double peak_score = 0;  ///< the largest |score| while open, signed
  double last_value = 0;  ///< the latest sample while open
  std::string closed_because;
};

/// One series' least-squares trend over a window, with when it reaches its limit.
struct series_forecast {
  double now = 0;          ///< the last sample's value
  double slope_per_hour = 0;
  double r2 = 0;
  std::size_t points = 0;
  std::optional<double> limit;               ///< what it is forecast against
  std::optional<double> seconds_to_limit;    ///< empty: not rising, or no limit, or too few points
};

struct shard_forecast {
  std::uint32_t index_id = 0, shard_id = 0;
  series_forecast bytes, records, write_rate;
};

/// What `GET /v1/forecast` shows of one node.
struct forecast_view {
  double seconds = 0;  ///< the window the trends were fitted over
  series_forecast disk_used;  ///< against the disk watermark
  std::uint64_t disk_total = 0;
  std::vector<shard_forecast> shards;
};

/// The limits forecasts are measured against.
struct forecast_limits {
  std::optional<double> shard_bytes;
  std::optional<double> shard_records;
  double disk_watermark = 0.85;  ///< share of the data directory's file system
};

/// What `GET /v1/stats` shows of one node.
struct stats_view {
  double seconds = 0;         ///< the window actually covered (shorter while history builds up)
  std::int64_t age_ms = 0;    ///< since the last sample
  std::uint64_t samples = 0;  ///< samples in the window, ends included
  monitor_settings settings;
  node_window node;
  std::vector<shard_window> shards;  ///< by (index id, shard id)
  std::vector<peer_rtt> peers;       ///< the last ping to each other node, by node id
};

/// What to draw from the history (`GET /v1/stats/history`).
struct history_query {
  std::chrono::milliseconds window{15 * 60 * 1000};
  std::size_t points = 120;  ///< at most this many points per series (consecutive samples merged)
  std::size_t top = 10;      ///< the busiest shards of the window (by requests), at most
  std::optional<std::uint32_t> index_id;  ///< only this index's shards
  std::optional<std::uint32_t> shard_id;  ///< ... and of it only this shard
};

/// One shard's series, a value per point; empty optionals where the shard was not on the node.
struct shard_history {
  std::uint32_t index_id = 0, shard_id = 0;
  std::uint64_t requests = 0;  ///< reads, writes, deletes and scans over the window (the rank)
  std::vector<std::optional<double>> reads_per_sec, writes_per_sec;
  std::vector<std::optional<std::uint64_t>> p99_us;  ///< of all its requests in the point; empty: none
  std::vector<std::optional<std::uint64_t>> bytes, records;
};

/// Series over the history: `t` gives each point's end (unix ms); every series has a value per
/// point, the rate or p99 over the samples since the point before.
struct history_view {
  std::uint32_t interval_ms = 0;
  double seconds = 0;  ///< from the sample before the first point to the last point
  std::int64_t step_ms = 0;  ///< the least time between points
  std::vector<std::int64_t> t_unix_ms;
  std::vector<double> requests_per_sec, forwarded_per_sec;  ///< REST requests answered, relayed
  std::vector<std::optional<std::uint64_t>> p99_us;  ///< every request on this node's shards
  std::vector<std::uint64_t> data_bytes, disk_used_bytes, rss_bytes;
  std::size_t shards_total = 0;  ///< shards that matched (before `top`)
  std::vector<shard_history> shards;  ///< the busiest first
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
  /// Series of the node and its busiest shards over the history, for charts.
  asio::awaitable<history_view> history(history_query q);
  monitor_settings settings() const;
  /// Applies new settings (the next tick uses them; turning sampling on starts it now).
  asio::awaitable<void> apply(monitor_settings s);

  /// The load of every local shard over the last interval, for heartbeats and the controller's
  /// load table; null until two samples were taken. Lock-free; any thread.
  std::shared_ptr<const peer::load_report> latest_load() const { return latest_.load(std::memory_order_acquire); }

  /// The node's figures now (for `/metrics`, which reads the counters themselves).
  node_figures figures_now() const;

  /// Open anomalies and the newest closed ones (at most `closed_max`), newest first.
  asio::awaitable<std::vector<anomaly>> anomalies(std::size_t closed_max);
  /// Anomalies open now. Lock-free; any thread.
  std::uint32_t anomalies_open() const noexcept { return open_count_.load(std::memory_order_relaxed); }
  /// The foreground p99 (every request this node served on its shards) of the last sample, in
  /// microseconds, 0 when it had too few requests to tell; `samples` counts the samples taken,
  /// so a reader acts once per sample. Any thread.
  struct foreground_latency {
    std::uint64_t samples = 0;
    std::uint64_t p99_us = 0;
  };
  foreground_latency foreground() const noexcept {
    return {samples_.load(std::memory_order_acquire), fg_p99_us_.load(std::memory_order_relaxed)};
  }
  /// Events for the controller's journal (anomalies opened and closed, settings changed), oldest
  /// first, kept until acknowledged (at most `outbox_max`; beyond, the oldest are dropped).
  /// Any thread.
  std::vector<peer::member_event> pending_events(std::size_t n) const;
  void acknowledge_events(std::uint64_t up_to_seq);
  std::uint64_t incarnation() const noexcept { return incarnation_; }
  static constexpr std::size_t outbox_max = 256;

  /// The round trip to every other node that is not down or left, by node id. Any thread.
  std::vector<peer_rtt> peer_rtts() const;

  /// Trends over the last `window` of every local shard and of the node's disk.
  asio::awaitable<forecast_view> forecast(std::chrono::milliseconds window, forecast_limits limits);

 private:
  /// `start`: the settings to begin with (stored through the API, else the config file's).
  monitor(asio::any_io_executor ex, const node_config& cfg, storage::store& store, ring_actor& ring, monitor_settings start);

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
    bool counters_only = false;  ///< the zero a new shard's counters start from (no records, bytes)
  };
  struct watched {
    anomaly_detector detector;
    std::uint64_t open_id = 0;  ///< the anomaly open on it, 0: none
  };
  struct shard_series {
    std::deque<shard_sample> samples;
    std::array<histogram, load_op_count> last;  ///< cumulative at the last sample
    std::array<watched, shard_anomaly_series> watch;
  };
  struct node_sample {
    std::int64_t t_ms = 0;
    node_figures f;
  };

  asio::awaitable<void> loop(std::uint64_t generation);
  /// Pings every other node in the map that is not down or left, one after the other.
  asio::awaitable<void> ping_peers();
  void sample();
  void trim(std::int64_t now_ms);
  void observe(watched& w, anomaly_series s, bool per_shard, std::uint64_t key, double value);
  void close_anomaly(watched& w, std::string because);
  void publish_open_count();
  void push_event(std::string type, std::string summary, std::string fields_json);
  std::string anomaly_fields(const anomaly& a) const;
  std::string index_name(std::uint32_t index_id) const;
  std::string subject(const anomaly& a) const;
  forecast_view compute_forecast(std::chrono::milliseconds window, const forecast_limits& lim) const;
  /// Records a `forecast` event for each limit newly forecast within the horizon, or no longer.
  void check_forecasts();
  static shard_series fresh_series();
  std::int64_t now_ms() const;

  const node_config& cfg_;
  storage::store& store_;
  ring_actor& ring_;
  asio::strand<asio::any_io_executor> strand_;
  asio::steady_timer timer_;
  monitor_sources sources_;
  std::chrono::steady_clock::time_point epoch_;
  const std::int64_t unix_epoch_ms_;  ///< the wall clock at `epoch_`: a sample's unix time is this + its t_ms
  std::atomic<std::uint32_t> interval_ms_;
  std::atomic<std::uint64_t> history_ms_;
  std::uint64_t generation_ = 0;  ///< a new loop per start or settings change; an old one ends
  bool stopped_ = false;
  std::map<std::uint64_t, shard_series> shards_;
  std::deque<node_sample> node_;
  std::atomic<std::shared_ptr<const peer::load_report>> latest_;
  watched disk_growth_;
  std::map<std::uint64_t, anomaly> open_;  ///< by id
  std::deque<anomaly> closed_;             ///< oldest first, at most anomalies_kept
  std::uint64_t next_anomaly_id_ = 1;
  std::atomic<std::uint32_t> open_count_{0};
  std::atomic<std::uint64_t> fg_p99_us_{0};
  std::atomic<std::uint64_t> samples_{0};
  const std::uint64_t incarnation_;
  mutable std::mutex outbox_mutex_;  // the monitor's strand and the heartbeat loop; never the request path
  std::deque<peer::member_event> outbox_;
  std::uint64_t next_event_seq_ = 1;
  std::map<std::uint64_t, bool> forecast_soon_;  ///< 0: the disk; a shard's load key + 1
  std::uint32_t samples_since_forecast_ = 0;
  bool pinging_ = false;  ///< a round of pings is under way (on the strand)
  struct peer_track {
    peer_rtt last;
    std::deque<std::uint64_t> recent;  ///< the last ten answered round trips
  };
  mutable std::mutex peers_mutex_;  // the strand writes; REST handlers read
  std::map<std::string, peer_track> peers_;
};

/// Parses a window: "90s", "5m", "1h", "500ms" (a bare number is seconds).
[[nodiscard]] result<std::chrono::milliseconds> parse_window(std::string_view text);

}  // namespace shardd
