#include "node/peers.hpp"

#include "node/faults.hpp"
#include "shardd/peer_messages.hpp"

namespace shardd {

peers::peers(boost::asio::io_context& ioc, const node_config& cfg, ring_actor& ring,
             std::vector<boost::asio::io_context*> contexts)
    : ring_(ring),
      client_(ioc, cfg.tls, net::peer_identity{cfg.cluster_id, cfg.node_id}, peer::default_max_frame_bytes,
              std::move(contexts)) {}

peer::frame make_frame(peer::frame_type type, std::string payload, std::uint64_t map_version) {
  peer::frame f;
  f.header.type = type;
  f.header.map_version = map_version;
  f.payload = std::move(payload);
  return f;
}

result<peer::frame> check_reply(result<peer::frame> r) {
  if (!r) return r;
  if (r->header.type == peer::frame_type::error) {
    auto e = peer::decode_error(r->payload);
    if (!e) return make_error(errc::internal, "unreadable error reply");
    return make_error(e->code, e->detail);
  }
  return r;
}

boost::asio::awaitable<result<peer::frame>> peers::call(std::string node_id, peer::frame f,
                                                         std::chrono::milliseconds timeout, net::peer_lane lane) {
  const auto snap = ring_.snapshot();
  const auto* n = snap->map->find_node(node_id);
  if (!n) co_return make_error(errc::not_found, "node '" + node_id + "' is not a member");
  if (partitioned_from(node_id, true)) co_return make_error(errc::unavailable, "node '" + node_id + "' did not answer (partitioned: injected)");
  auto r = co_await client_.call(node_id, n->peer_address, std::move(f), timeout, lane);
  co_return check_reply(std::move(r));
}

boost::asio::awaitable<result<peer::frame>> peers::call_address(std::string address, peer::frame f,
                                                                 std::chrono::milliseconds timeout) {
  auto r = co_await client_.call("", std::move(address), std::move(f), timeout);
  co_return check_reply(std::move(r));
}

}  // namespace shardd
