// Who may send which peer frame: the table and the map-based checks.
#include "shardd/peer_roles.hpp"

#include "support/catch_result.hpp"

using namespace shardd;
using F = peer::frame_type;

namespace {

partition_map three_nodes() {
  partition_map m;
  m.cluster_id = "test";
  for (const char* id : {"node-1", "node-2", "node-3"}) {
    auto next = upsert_node(m, node_entry{id, "127.0.0.1:1", "127.0.0.1:2", 1, node_state::up});
    REQUIRE(next);
    m = *next;
  }
  m.controller = "node-1";
  auto left = set_node_state(m, "node-3", node_state::left);
  REQUIRE(left);
  return *left;
}

}  // namespace

TEST_CASE("every request frame has a sender role; replies and unknown types have none") {
  for (int t = 0; t < 256; ++t) {
    const auto type = static_cast<F>(t);
    if (!peer::known_type(static_cast<std::uint8_t>(t))) {
      CHECK(rule_of(type).sender == peer_role::nobody);
      continue;
    }
    INFO(peer::to_string(type));
    const bool reply = type == F::hello || type == F::hello_ok || type == F::error || type == F::heartbeat_ack ||
                       type == F::join_ok || type == F::map_ack || type == F::map_reply || type == F::forward_reply ||
                       type == F::write_reply || type == F::scan_reply || type == F::stats_reply || type == F::moved ||
                       type == F::ack || type == F::digest_reply || type == F::median_reply;
    CHECK((rule_of(type).sender == peer_role::nobody) == reply);
  }
  CHECK(rule_of(F::map_push).sender == peer_role::controller);
  CHECK(rule_of(F::migrate_start).sender == peer_role::controller);
  CHECK(rule_of(F::migrate_control).sender == peer_role::controller);
  CHECK(rule_of(F::migrate_commit).sender == peer_role::source);
  CHECK(rule_of(F::migrate_commit).needs_cutover);
  CHECK(rule_of(F::migrate_commit).at_controller);
  CHECK(rule_of(F::data_batch).sender == peer_role::source);
  CHECK(rule_of(F::forward).sender == peer_role::member);
  CHECK(rule_of(F::join).sender == peer_role::any_node);
}

TEST_CASE("check_sender: the controller's frames from the controller only, members' from current members only") {
  const auto m = three_nodes();
  // map_push on node-2: from the controller only.
  CHECK(check_sender(F::map_push, m, "node-2", "node-1"));
  CHECK(check_sender(F::map_push, m, "node-2", "node-2").error().code == errc::forbidden);
  CHECK(check_sender(F::migrate_start, m, "node-2", "node-3").error().code == errc::forbidden);
  // A node that has left, or was never a member, may not forward or write.
  CHECK(check_sender(F::forward, m, "node-2", "node-1"));
  CHECK(check_sender(F::forward, m, "node-2", "node-3").error().code == errc::forbidden);
  CHECK(check_sender(F::write_ops, m, "node-2", "node-9").error().code == errc::forbidden);
  // A ping (the monitor's round trip) from any current member, to any member.
  CHECK(check_sender(F::ping, m, "node-2", "node-1"));
  CHECK(check_sender(F::ping, m, "node-1", "node-2"));
  CHECK(check_sender(F::ping, m, "node-2", "node-3").error().code == errc::forbidden);
  CHECK(check_sender(F::ping, m, "node-2", "node-9").error().code == errc::forbidden);
  // Frames for the controller go to the controller.
  CHECK(check_sender(F::migrate_report, m, "node-1", "node-2"));
  CHECK(check_sender(F::migrate_report, m, "node-2", "node-1").error().code == errc::conflict);
  CHECK(check_sender(F::join, m, "node-1", "node-9"));  // a new node joins
  CHECK(check_sender(F::join, m, "node-2", "node-9").error().code == errc::conflict);
  // A node with no map yet knows no controller: it takes no pushed map.
  partition_map empty;
  CHECK(check_sender(F::map_push, empty, "node-2", "node-1").error().code == errc::forbidden);
  // A reply type is not a request.
  CHECK(check_sender(F::ack, m, "node-2", "node-1").error().code == errc::invalid_argument);
}
