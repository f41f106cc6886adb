#pragma once
// The embedded control plane: the bootstrap node keeps the map in its RocksDB and pushes
// every version to the members; members register with it and send it heartbeats.

#include "node/control_plane.hpp"
#include "node/peers.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>

namespace shardd {

/// Both roles of the embedded backend.
///
/// Controller (the node whose map names it controller): `load` is the local map;
/// `compare_and_set` installs the new version locally (durable) and pushes it to every member
/// that is up, waiting up to a second for their acks, so that after a change returns every
/// up node serves the new map. Members that missed it catch up with their next heartbeat.
///
/// Member: `register_node` joins through the controller's peer address (the `--join`
/// address, or the controller named in the stored map), installs the map it gets, then sends
/// a heartbeat every `heartbeat_interval_ms` whose answer carries the controller's map when
/// the member is behind. While the controller is unreachable the member keeps serving with
/// the map it has and keeps trying.
///
/// Runs on its own strand; owned by the node.
class embedded_plane final : public control_plane {
 public:
  embedded_plane(boost::asio::any_io_executor ex, const node_config& cfg, ring_actor& ring, storage::store& store,
                 peers& p);

  boost::asio::awaitable<result<snapshot_ptr>> load() override;
  boost::asio::awaitable<result<snapshot_ptr>> compare_and_set(std::uint64_t expected, partition_map next) override;
  void watch(std::function<void(const snapshot_ptr&)> f) override;
  boost::asio::awaitable<result<void>> register_node(node_entry self) override;
  std::string elect_controller() override;

  /// Stops heartbeats.
  void stop() override;

  // The member's half, which the etcd plane uses too.
  /// Joins through the controller (the map's, else the join address); installs the map it answers.
  boost::asio::awaitable<result<void>> join_once(const node_entry& self);
  /// Heartbeats to the map's controller, every heartbeat interval, until stop (none while this
  /// node is the map's controller).
  void start_heartbeats(node_entry self);
  /// Sends `snap` to every member that is up (a second at most), all at once.
  boost::asio::awaitable<void> push(snapshot_ptr snap);
  /// Where to join while the map names no controller this node can reach by id.
  void set_join_address(std::string a) { join_address_ = std::move(a); }
  std::string controller_address() const;
  /// Whether the last heartbeat reached the controller (members); always true on it.
  bool controller_reachable() const noexcept override { return reachable_.load(); }
  void set_load_source(load_source f) override { load_source_ = std::move(f); }
  void set_disk(const disk_guard* d) override { disk_ = d; }
  void set_event_source(event_source s) override { event_source_ = std::move(s); }
  std::optional<std::uint64_t> heartbeat_rtt_us() const noexcept override {
    const auto v = rtt_us_.load(std::memory_order_relaxed);
    return v ? std::optional<std::uint64_t>(v) : std::nullopt;
  }

 private:
  boost::asio::awaitable<void> heartbeat_loop(node_entry self);
  /// Calls the controller. Once the map names it, by its id: the answering certificate must
  /// be the controller's. Before (a first join), at the --join address; the answer says who
  /// sent it, and the map it brings must name that node as controller.
  boost::asio::awaitable<result<peer::frame>> call_controller(peer::frame f, std::chrono::milliseconds timeout);

  boost::asio::any_io_executor ex_;
  const node_config& cfg_;
  ring_actor& ring_;
  storage::store& store_;
  peers& peers_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> reachable_{true};
  std::atomic<std::uint64_t> rtt_us_{0};  ///< 0: no heartbeat answered yet
  load_source load_source_;              ///< set before the heartbeats start
  const disk_guard* disk_ = nullptr;     ///< set before the heartbeats start
  event_source event_source_;            ///< ditto
  std::shared_ptr<boost::asio::steady_timer> timer_;
  std::string join_address_;  ///< set before the heartbeats start
};

}  // namespace shardd
