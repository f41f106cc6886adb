#pragma once
// The event journal (on the controller): what happened to the cluster and why, in order,
// durable in the store's meta column family and bounded.

#include "shardd/error.hpp"
#include "storage/store.hpp"

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace shardd {

/// The kinds of event: `map` (a new map version: what changed, and why), `node` (a node came,
/// went, or changed state), `migration` (one started, changed phase or ended), `settings`
/// (cluster settings changed), `anomaly` (an anomaly opened or closed on a node), `monitor` (a
/// node's monitor settings changed), `forecast` (a limit newly forecast to be reached within the
/// horizon on a node, or no longer).
inline constexpr std::array<std::string_view, 8> event_types = {"map",     "node",    "migration", "settings",
                                                                "anomaly", "monitor", "forecast",  "rebalance"};

struct event {
  using value = std::variant<std::string, std::int64_t, double>;
  std::uint64_t id = 0;       ///< increases by one per event, across restarts
  std::int64_t unix_ms = 0;   ///< wall clock, when recorded
  std::string type;           ///< one of event_types
  std::string summary;        ///< one line for people
  std::vector<std::pair<std::string, value>> fields;  ///< what a program needs (node, map_version, ...)
  std::vector<std::string> changes;                   ///< a map event's changes, one per line
};

/// The newest `max` events in memory and in the store (keys "event/" + 16 hex digits of the id,
/// so they sort by id). Not thread-safe: the controller's actor owns it. Memory: the events
/// kept, a few hundred bytes each.
class event_journal {
 public:
  static constexpr std::size_t default_max = 10000;

  /// Empty; `load` gives it what was kept.
  explicit event_journal(std::size_t max = default_max) : max_(std::max<std::size_t>(1, max)) {}
  /// Reads what the store kept.
  event_journal(storage::store* store, std::size_t max);
  /// Takes the kept events (key, JSON) in key order, as `append`'s writes left them under
  /// `event_prefix`; ids go on after the last.
  void load(const std::vector<std::pair<std::string, std::string>>& stored);

  /// Gives `e` the next id and the time, keeps it, and returns the writes that persist it (and
  /// delete the events it pushes out); the caller writes them.
  std::vector<storage::write_op> append(event e);

  /// Events with an id above `since`, oldest first, of the given types (empty: all), at most `limit`.
  std::vector<event> list(std::uint64_t since, const std::vector<std::string>& types, std::size_t limit) const;
  std::uint64_t first_id() const noexcept { return events_.empty() ? 0 : events_.front().id; }
  std::uint64_t last_id() const noexcept { return next_id_ - 1; }

 private:
  std::size_t max_;
  std::deque<event> events_;
  std::uint64_t next_id_ = 1;
};

inline constexpr std::string_view event_prefix = "event/";
std::string event_key(std::uint64_t id);
std::string to_json(const event& e);
[[nodiscard]] result<event> event_from_json(std::string_view text);

}  // namespace shardd
