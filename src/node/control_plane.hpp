#pragma once
// Where the partition map and membership live (DESIGN §6). Callers see only this interface,
// so a backend on etcd can replace the embedded one without touching them.

#include "node/ring_actor.hpp"
#include "shardd/partition_map.hpp"
#include "shardd/peer_messages.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace shardd {

class disk_guard;


class control_plane {
 public:
  virtual ~control_plane() = default;

  /// The newest map the backend holds.
  virtual boost::asio::awaitable<result<snapshot_ptr>> load() = 0;

  /// Stores `next` if the stored version is `expected`; otherwise fails with `conflict` and
  /// stores nothing. On success every node watching sees `next` (the embedded backend
  /// pushes it to the members that are up before returning).
  virtual boost::asio::awaitable<result<snapshot_ptr>> compare_and_set(std::uint64_t expected, partition_map next) = 0;

  /// Calls `f` with every new map version this node installs.
  virtual void watch(std::function<void(const snapshot_ptr&)> f) = 0;

  /// Registers this node with the cluster and keeps its lease alive (heartbeats) until the
  /// backend stops. Returns once the node is registered and holds a map.
  virtual boost::asio::awaitable<result<void>> register_node(node_entry self) = 0;

  /// Id of the node that runs the controller (embedded: the bootstrap node).
  virtual std::string elect_controller() = 0;

  /// Whether this node reached the controller lately (its last heartbeat was answered).
  virtual bool controller_reachable() const noexcept = 0;

  /// What heartbeats tell the controller about this node's shards: the monitor's latest
  /// per-shard load (null: none yet).
  using load_source = std::function<std::shared_ptr<const peer::load_report>()>;
  virtual void set_load_source(load_source f) = 0;
  /// Where heartbeats take the events this node has for the controller's journal: `pending`
  /// gives the oldest unsent ones (at most n), `acknowledge` drops those up to a seq once a
  /// heartbeat that carried them was answered.
  struct event_source {
    std::function<std::vector<peer::member_event>(std::size_t n)> pending;
    std::function<void(std::uint64_t seq)> acknowledge;
    std::uint64_t incarnation = 0;
  };
  virtual void set_event_source(event_source) {}
  /// The data disk heartbeats report (null: not reported).
  virtual void set_disk(const disk_guard*) {}
  /// The last heartbeat's round trip to the controller, in microseconds (members).
  virtual std::optional<std::uint64_t> heartbeat_rtt_us() const noexcept = 0;

  /// Why no controller can be reached through this backend now, for a 503 (empty: nothing
  /// more to say than that the controller is unreachable).
  virtual std::string no_controller_reason() const { return {}; }

  /// How long a node relaying a map change waits for the next controller when the one it asked
  /// answers `not_controller` (it stepped down; nothing was changed). Zero: a backend whose
  /// controller does not change at run time.
  virtual std::chrono::milliseconds handover_wait() const { return std::chrono::milliseconds(0); }

  /// Stops the backend's loops (shutdown).
  virtual void stop() {}

  /// Whether this node is the controller.
  bool is_controller(const std::string& self) { return elect_controller() == self; }
};

}  // namespace shardd
