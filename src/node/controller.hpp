#pragma once
// The controller: membership, liveness and every change of the partition map.

#include "node/actor.hpp"
#include "node/control_plane.hpp"
#include "shardd/peer_messages.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <map>
#include <variant>

namespace shardd {

/// What the controller knows of a member beyond the map: its lease and last reported totals.
struct member_status {
  std::string node_id;
  std::optional<std::chrono::milliseconds> since_heartbeat;  ///< nullopt: none since the controller started
  std::uint32_t shards = 0;
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;
};

struct join_msg {
  peer::join_request request;
  reply_to<map_result> reply;
};
struct heartbeat_msg {
  peer::heartbeat beat;
  reply_to<map_result> reply;
};
struct create_index_msg {
  std::string name;
  index_spec spec;
  reply_to<map_result> reply;
};
struct drop_index_msg {
  std::string name;
  reply_to<map_result> reply;
};
struct set_weight_msg {
  std::string node;
  std::uint32_t weight;
  reply_to<map_result> reply;
};
struct members_msg {
  reply_to<result<std::vector<member_status>>> reply;
};
struct tick_msg {};
using controller_message =
    std::variant<std::monostate, join_msg, heartbeat_msg, create_index_msg, drop_index_msg, set_weight_msg, members_msg, tick_msg>;

/// Runs on the controller node only. Every change follows one pattern: load the current map
/// from the control plane, compute the next version with the pure core, compare-and-set it
/// (which persists and pushes it). Messages are handled one at a time, so changes never
/// race.
///
/// Liveness: every heartbeat interval a tick marks `down` each member whose last heartbeat
/// is older than heartbeat_miss_limit intervals; a heartbeat from a `down` member marks it
/// `up`. At start every member gets a fresh lease (a controller restart does not mark the
/// cluster down).
///
/// Strand: its own. Owned by the node.
class controller final : public actor<controller_message> {
 public:
  controller(asio::any_io_executor ex, const node_config& cfg, control_plane& plane);

  /// Starts the actor and its liveness ticks.
  void begin();
  void end();

  asio::awaitable<map_result> join(peer::join_request r);
  asio::awaitable<map_result> heartbeat(peer::heartbeat b);
  asio::awaitable<map_result> create_index(std::string name, index_spec spec);
  asio::awaitable<map_result> drop_index(std::string name);
  asio::awaitable<map_result> set_weight(std::string node, std::uint32_t weight);
  asio::awaitable<result<std::vector<member_status>>> members();

 private:
  asio::awaitable<void> handle(controller_message m) override;
  asio::awaitable<map_result> change(const std::function<result<partition_map>(const cluster_snapshot&)>& f);
  asio::awaitable<void> tick_loop();

  const node_config& cfg_;
  control_plane& plane_;
  struct lease {
    std::chrono::steady_clock::time_point last_seen;
    bool heard = false;  // a heartbeat arrived since the controller started
    std::uint32_t shards = 0;
    std::uint64_t records = 0, bytes = 0;
  };
  std::map<std::string, lease, std::less<>> leases_;
  std::shared_ptr<asio::steady_timer> ticker_;
  std::atomic<bool> stopping_{false};
};

}  // namespace shardd
