#pragma once
// Requests to other nodes by node id, over the pooled mutual-TLS connections.

#include "net/peer_transport.hpp"
#include "node/ring_actor.hpp"
#include "shardd/frame.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace shardd {

/// Sends frames to nodes named by id, looking their peer address up in the current map.
/// Error replies become errors: `unavailable` when the node cannot be reached or answer in
/// time; the node's own error code otherwise. A `moved` reply is returned as a frame.
/// Shared by every actor and handler of the node; thread-safe.
class peers {
 public:
  /// `contexts`: the network threads' contexts (a forwarded request stays on its thread).
  peers(boost::asio::io_context& ioc, const node_config& cfg, ring_actor& ring,
        std::vector<boost::asio::io_context*> contexts = {});

  boost::asio::awaitable<result<peer::frame>> call(std::string node_id, peer::frame f, std::chrono::milliseconds timeout,
                                                   net::peer_lane lane = net::peer_lane::request);

  /// To an address whose node id is not known yet (joining a cluster).
  boost::asio::awaitable<result<peer::frame>> call_address(std::string address, peer::frame f,
                                                           std::chrono::milliseconds timeout);

  void close_all() { client_.close_all(); }

 private:
  ring_actor& ring_;
  net::peer_client client_;
};

/// A request frame of `type` carrying `payload` and this node's map version.
peer::frame make_frame(peer::frame_type type, std::string payload, std::uint64_t map_version);

/// Turns an error frame into an error; other frames pass.
result<peer::frame> check_reply(result<peer::frame> r);

}  // namespace shardd
