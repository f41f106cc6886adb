#pragma once
// Answers the peer protocol's requests on this node.

#include "net/http_types.hpp"
#include "node/rest_api.hpp"
#include "node/shard_service.hpp"
#include "shardd/frame.hpp"

#include <boost/asio/awaitable.hpp>

#include <functional>

namespace shardd {

/// Handles frames from authenticated peers: joins and heartbeats (controller), map pushes
/// and map requests, forwarded HTTP requests, and shard-level reads and writes. `from` is the
/// node id the transport verified against the peer's certificate. Stateless; runs on the
/// connection's strand.
class peer_service {
 public:
  /// Answers a forwarded HTTP request (the REST layer's `handle_forwarded`).
  using forwarded_handler =
      std::function<boost::asio::awaitable<net::http_response>(net::http_request, std::uint64_t sender_version)>;

  peer_service(node_context ctx, forwarded_handler forwarded)
      : ctx_(ctx), shards_(ctx.config, ctx.store, ctx.ring, ctx.read_pool, ctx.peer == nullptr, ctx.disk),
        forwarded_(std::move(forwarded)) {}

  boost::asio::awaitable<peer::frame> handle(peer::frame f, std::string from);

 private:
  node_context ctx_;
  shard_service shards_;  ///< local shard work: scans, stats, medians, writes
  forwarded_handler forwarded_;
};

}  // namespace shardd
