#pragma once
// The ring actor: holds the partition map and the placement ring as one immutable snapshot.

#include "node/actor.hpp"
#include "node/shard_load.hpp"
#include "common/config.hpp"
#include "shardd/cluster_plan.hpp"
#include "shardd/partition_map.hpp"
#include "shardd/ring.hpp"
#include "storage/store.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <variant>

namespace shardd {

/// What every request reads: a map version and the ring built from its members.
struct cluster_snapshot {
  std::shared_ptr<const partition_map> map;
  std::shared_ptr<const ring> placement;  ///< ring of the nodes that accept shards
  /// Counters of the shards this map gives this node (the monitor reads them; a request that
  /// holds the snapshot counts into them).
  std::shared_ptr<const load_table> load;
};
using snapshot_ptr = std::shared_ptr<const cluster_snapshot>;
using map_result = result<snapshot_ptr>;

/// The first map of a new cluster founded by `cfg`'s node: it is the controller and only member,
/// with the cluster's initial settings from the config.
[[nodiscard]] result<partition_map> founding_map(const node_config& cfg);

struct install_map_cmd {
  partition_map map;
  reply_to<map_result> reply;
};
// monostate: Asio channels default-construct a message when completing a closed receive.
using ring_message = std::variant<std::monostate, install_map_cmd>;

/// Holds the current partition map and ring, and installs newer versions one at a time:
/// persists the map together with the storage layout change it implies for this node (new
/// local shards get stats slots, dropped indexes are deleted), then publishes it.
///
/// Strand: its own. Readers on any thread call `snapshot()`, an atomic load of a
/// `shared_ptr<const cluster_snapshot>`: no mailbox round trip on the request path.
/// Owned by the node.
class ring_actor final : public actor<ring_message> {
 public:
  ring_actor(asio::any_io_executor ex, const node_config& cfg, storage::store& store);

  /// Loads the stored map (if any) and tells the store which shard ranges it holds. A new
  /// bootstrap node gets a first map with itself as controller. Call once before start().
  /// Returns whether a stored map was found.
  [[nodiscard]] result<bool> load();

  snapshot_ptr snapshot() const noexcept { return current_.load(std::memory_order_acquire); }

  /// Installs `m` if it is newer than the current map (else answers with the current one).
  asio::awaitable<map_result> install(partition_map m);

  /// Installs a map the controller sent (a push, or the answer to a heartbeat). Under the test
  /// fault map_delay_ms (node/faults.hpp) it is installed that much later, in the background,
  /// and the answer is the current map.
  asio::awaitable<map_result> install_from_controller(partition_map m);

  /// Per-shard counters, carried from one published map to the next.
  load_registry& loads() noexcept { return loads_; }

  /// Called (on the ring strand) after every installed version.
  void on_install(std::function<void(const snapshot_ptr&)> f) { listeners_.push_back(std::move(f)); }

 private:
  asio::awaitable<void> handle(ring_message m) override;
  void publish(partition_map m);

  const node_config& cfg_;
  storage::store& store_;
  load_registry loads_;
  std::atomic<snapshot_ptr> current_;
  std::vector<std::function<void(const snapshot_ptr&)>> listeners_;
};

}  // namespace shardd
