#pragma once
// The ring actor: holds the partition map and the placement ring as one immutable snapshot.

#include "node/actor.hpp"
#include "node/config.hpp"
#include "shardd/partition_map.hpp"
#include "shardd/ring.hpp"
#include "storage/store.hpp"

#include <atomic>
#include <memory>
#include <variant>

namespace shardd {

/// What every request reads: a map version and the ring built from its members.
struct cluster_snapshot {
  std::shared_ptr<const partition_map> map;
  std::shared_ptr<const ring> placement;  ///< ring of the nodes that accept shards
};
using snapshot_ptr = std::shared_ptr<const cluster_snapshot>;
using map_result = result<snapshot_ptr>;

struct create_index_cmd {
  std::string name;
  index_spec spec;
  reply_to<map_result> reply;
};
struct drop_index_cmd {
  std::string name;
  reply_to<map_result> reply;
};
// monostate: Asio channels default-construct a message when completing a closed receive.
using ring_message = std::variant<std::monostate, create_index_cmd, drop_index_cmd>;

/// Holds the current partition map and ring; applies changes one at a time, persists each
/// new version (with the matching storage layout change) before publishing it.
///
/// Strand: its own. Readers on any thread call `snapshot()`, an atomic load of a
/// `shared_ptr<const cluster_snapshot>`: no mailbox round trip on the request path.
/// Owned by the node.
class ring_actor final : public actor<ring_message> {
 public:
  ring_actor(asio::any_io_executor ex, const node_config& cfg, storage::store& store);

  /// Loads the stored map, or creates the first one when bootstrapping, and tells the store
  /// which shard ranges it holds. Call once before start().
  [[nodiscard]] result<void> load();

  snapshot_ptr snapshot() const noexcept { return current_.load(std::memory_order_acquire); }

  asio::awaitable<map_result> create_index(std::string name, index_spec spec);
  asio::awaitable<map_result> drop_index(std::string name);

 private:
  asio::awaitable<void> handle(ring_message m) override;
  asio::awaitable<map_result> commit(partition_map next, storage::layout_change change);
  void publish(partition_map m);
  std::vector<storage::shard_range> local_ranges(const index_entry& ix) const;

  const node_config& cfg_;
  storage::store& store_;
  std::atomic<snapshot_ptr> current_;
};

}  // namespace shardd
