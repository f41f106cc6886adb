#pragma once
// Bandwidth throttling for migrations: token buckets and priority shares. Pure: time comes in.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string_view>

namespace shardd {

enum class migration_priority : std::uint8_t { high, normal, low };
std::string_view to_string(migration_priority p) noexcept;
std::optional<migration_priority> parse_priority(std::string_view s) noexcept;
/// Share weights: high 4, normal 2, low 1.
std::uint32_t weight_of(migration_priority p) noexcept;

/// A token bucket of `rate` bytes per second holding at most `burst` bytes. `take` charges
/// the bytes (the balance may go negative) and returns how long the caller must wait before
/// sending them, so a sender that waits as told never exceeds the rate over any window longer
/// than burst / rate. A rate of 0 means unlimited.
class token_bucket {
 public:
  using clock = std::chrono::steady_clock;
  token_bucket() = default;
  token_bucket(std::uint64_t rate, std::uint64_t burst) : rate_(rate), burst_(burst), tokens_(static_cast<double>(burst)) {}

  void set_rate(std::uint64_t rate, std::uint64_t burst, clock::time_point now);
  std::chrono::nanoseconds take(std::uint64_t bytes, clock::time_point now);
  std::uint64_t rate() const noexcept { return rate_; }

 private:
  void refill(clock::time_point now);
  std::uint64_t rate_ = 0;
  std::uint64_t burst_ = 0;
  double tokens_ = 0;
  std::optional<clock::time_point> last_;
};

/// A node's migration bandwidth split between priority classes: each class with active
/// migrations gets rate × weight / (sum of active weights), so high-priority moves get four
/// times the bandwidth of low ones while both run, and all of it alone.
class priority_shares {
 public:
  explicit priority_shares(std::uint64_t node_rate = 0) : node_rate_(node_rate) {}

  void set_node_rate(std::uint64_t rate, token_bucket::clock::time_point now);
  void activate(migration_priority p, token_bucket::clock::time_point now);
  void deactivate(migration_priority p, token_bucket::clock::time_point now);
  /// Charges `bytes` to class `p`; returns how long to wait.
  std::chrono::nanoseconds take(migration_priority p, std::uint64_t bytes, token_bucket::clock::time_point now);
  std::uint64_t rate_of(migration_priority p) const;

 private:
  void rebalance(token_bucket::clock::time_point now);
  std::uint64_t node_rate_;
  std::map<migration_priority, std::uint32_t> active_;  // class -> active migrations
  std::map<migration_priority, token_bucket> buckets_;
};

/// The adaptive limit on a node's outgoing migration traffic (`migration.adaptive`), an AIMD
/// loop on the foreground's p99 latency, checked once per monitor sample:
///   - p99 above the bound: the limit halves (from the rate moves reached if there was none),
///     never below `floor`;
///   - p99 under 80% of the bound, or no foreground to measure: a limit grows by a quarter
///     (at least floor / 4) and is lifted once it reaches `ceiling` (the configured cap) or,
///     with no cap, the rate moves reached before the first cut;
///   - in between: it holds (hysteresis, so the rate does not saw at the bound).
/// Pure: the caller brings the measurements. A limit of 0 means none.
class adaptive_rate {
 public:
  /// One step. `p99_us` is the foreground p99 of the last sample (nullopt: too few requests
  /// to tell), `observed` the bytes per second moves sent since the last step.
  std::uint64_t update(std::optional<std::uint64_t> p99_us, std::uint64_t bound_us, std::uint64_t floor,
                       std::uint64_t ceiling, std::uint64_t observed) noexcept;
  std::uint64_t limit() const noexcept { return limit_; }
  void reset() noexcept { limit_ = 0, before_ = 0; }

 private:
  std::uint64_t limit_ = 0;
  std::uint64_t before_ = 0;  ///< the rate moves reached before the first cut
};

/// Which limit holds a move back, as `rate_limited_by` shows it.
enum class rate_limit : std::uint8_t { none, move_cap, node_cap, adaptive };
std::string_view to_string(rate_limit l) noexcept;

/// The lowest of the limits on one move's rate (0: none): its own cap, its class's share of
/// the node cap, and its share (`moves` sending) of the adaptive limit.
[[nodiscard]] rate_limit binding_limit(std::uint64_t move_cap, std::uint64_t node_share, std::uint64_t adaptive,
                                       std::uint32_t moves) noexcept;

}  // namespace shardd
