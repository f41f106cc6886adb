#pragma once
// Answers the peer protocol's requests on this node.

#include "node/rest_api.hpp"
#include "shardd/frame.hpp"

#include <boost/asio/awaitable.hpp>

namespace shardd {

/// Handles frames from authenticated peers: joins and heartbeats (controller), map pushes
/// and map requests, forwarded HTTP requests, and shard-level reads and writes. `from` is the
/// node id the transport verified against the peer's certificate. Stateless; runs on the
/// connection's strand.
class peer_service {
 public:
  peer_service(node_context ctx, rest_api& api) : ctx_(ctx), api_(api) {}

  boost::asio::awaitable<peer::frame> handle(peer::frame f, std::string from);

 private:
  node_context ctx_;
  rest_api& api_;
};

}  // namespace shardd
