#pragma once
// The control plane on etcd (DESIGN §6): the map is one etcd key changed only by a
// transaction on its mod revision, the controller is elected through a lease-held key, and
// every node watches the map. Members still send their heartbeats to the elected controller
// over the peer protocol (the embedded plane's member half), so liveness, load and events
// reach it as on the embedded plane.

#include "node/control_plane.hpp"
#include "node/controller_meta.hpp"
#include "node/embedded_plane.hpp"
#include "node/etcd_client.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <functional>
#include <mutex>

namespace shardd {

/// Keys, under `<etcd.prefix><cluster_id>/`:
///   map             the partition map (JSON), written only by a transaction that compares its mod
///                   revision and the writer's election (the create revision of `controller`)
///   controller      the elected node's id, under its election lease (etcd.election_ttl_s)
///   nodes/<id>      each node's entry (JSON), under the node's own lease: who is running
///   meta/...        the controller's records (migration/rec/<id>, event/<id>,
///                   rebalance/next_plan), written under the same election guard
///
/// Election: every node tries to create `controller` under a fresh lease; the winner reads the
/// map, writes the next version naming itself controller (guarded), installs and pushes it,
/// and only then starts its controller (`on_leadership(true)`). It keeps the lease alive every
/// third of its TTL and steps down (`on_leadership(false)`) once a TTL less half a second has
/// passed since the send of the last keepalive etcd answered: before etcd can let the lease
/// expire and hand the key to another node. The losers watch the key and try again when it goes.
///
/// While etcd cannot be reached nodes serve with the map they hold; map changes fail with
/// `unavailable` naming etcd.
class etcd_plane final : public control_plane {
 public:
  etcd_plane(boost::asio::any_io_executor ex, const node_config& cfg, ring_actor& ring, storage::store& store, peers& p);
  ~etcd_plane() override;

  boost::asio::awaitable<result<snapshot_ptr>> load() override;
  boost::asio::awaitable<result<snapshot_ptr>> compare_and_set(std::uint64_t expected, partition_map next) override;
  void watch(std::function<void(const snapshot_ptr&)> f) override;
  /// Registers under a lease, reads and watches the map, starts campaigning; returns once this
  /// node is in a map it holds (founding the cluster in etcd if it wins the first election).
  boost::asio::awaitable<result<void>> register_node(node_entry self) override;
  std::string elect_controller() override;
  bool controller_reachable() const noexcept override;
  void set_load_source(load_source f) override { member_.set_load_source(std::move(f)); }
  void set_disk(const disk_guard* d) override { member_.set_disk(d); }
  void set_event_source(event_source s) override { member_.set_event_source(std::move(s)); }
  std::optional<std::uint64_t> heartbeat_rtt_us() const noexcept override { return member_.heartbeat_rtt_us(); }
  void stop() override;
  std::string no_controller_reason() const override;
  std::chrono::milliseconds handover_wait() const override;
  /// Gives the election and the registration up at once (their leases revoked), so another
  /// node takes over without waiting out the TTL (a clean shutdown; after stop).
  boost::asio::awaitable<void> resign();

  /// Called with true once this node leads and the map names it, with false when it stops
  /// leading; on the plane's strand, never twice alike in a row. Set before register_node.
  void on_leadership(std::function<void(bool)> f) { on_leadership_ = std::move(f); }
  /// The controller's records in etcd, written under this node's election.
  controller_meta& meta() { return *meta_; }
  /// Whether etcd answered the last request (or watch) this node made.
  bool etcd_reachable() const noexcept { return etcd_.reachable(); }

  std::string key(std::string_view suffix) const { return root_ + std::string(suffix); }

 private:
  class etcd_meta;
  boost::asio::awaitable<void> campaign_loop(node_entry self);
  /// After winning: the map naming this node, written under the election. False: lost meanwhile.
  boost::asio::awaitable<bool> take_over(const node_entry& self);
  /// Keeps the election lease alive; returns when this node must stop leading.
  boost::asio::awaitable<void> lead(std::int64_t lease, std::int64_t ttl_s, std::chrono::steady_clock::time_point asked_at);
  boost::asio::awaitable<void> watch_loop();
  boost::asio::awaitable<void> registration_loop(node_entry self);
  /// Installs a map read from etcd at `mod_revision` (only one that names this node).
  boost::asio::awaitable<void> take_map(const std::string& json, std::int64_t mod_revision);
  void set_leading(bool on);
  boost::asio::awaitable<void> pause(std::chrono::milliseconds d);

  boost::asio::any_io_executor ex_;
  const node_config& cfg_;
  ring_actor& ring_;
  embedded_plane member_;
  etcd_client etcd_;
  std::string root_;
  std::unique_ptr<controller_meta> meta_;
  std::function<void(bool)> on_leadership_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> leading_{false};
  std::atomic<std::int64_t> election_revision_{0};  ///< create revision of our `controller` key (0: not leading)
  std::atomic<std::int64_t> election_lease_{0};
  std::atomic<std::int64_t> registration_lease_{0};
  std::atomic<bool> lost_{false};  ///< a guarded write found the election lost
  mutable std::mutex map_mu_;
  std::uint64_t map_version_ = 0;  ///< the version of the map at `map_revision_` in etcd
  std::int64_t map_revision_ = 0;  ///< its mod revision (0: no map in etcd seen yet)
  std::int64_t watch_from_ = 0;    ///< the store's revision when the map was first read
  std::shared_ptr<boost::asio::steady_timer> timer_;
};

}  // namespace shardd
