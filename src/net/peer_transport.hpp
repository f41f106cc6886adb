#pragma once
// The peer protocol's transport: mutual TLS, framing, handshake, request/reply multiplexing.
// Asio-SSL stays inside peer_transport.cpp.

#include "common/config.hpp"
#include "shardd/error.hpp"
#include "shardd/frame.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>
#include <string>

namespace boost::asio {
class io_context;
}

namespace shardd::net {

struct peer_identity {
  std::string cluster_id;
  std::string node_id;
};

/// Handles one request frame from an authenticated peer and returns the reply frame (the
/// transport sets its request id). Runs on any network thread, many at once; may co_await.
using peer_handler = std::function<boost::asio::awaitable<peer::frame>(peer::frame request, std::string from_node)>;

/// What one peer connection may make the server hold.
struct peer_server_options {
  std::size_t max_frame_bytes = peer::default_max_frame_bytes;
  std::size_t max_in_flight = 64;                 ///< requests handled at once per connection; reading waits beyond
  std::chrono::milliseconds write_timeout{30000};  ///< a reply write that takes longer closes the connection
  std::chrono::milliseconds idle_timeout{600000};  ///< no frame for this long (and none in flight): closed
  /// Where accepted connections run (each on a strand of one of them), dealt out in turn;
  /// empty: the server's io_context. The node gives one context per network thread.
  std::vector<boost::asio::io_context*> session_contexts;
};

/// Accepts peer connections. Each connection: TLS handshake requiring a client certificate
/// signed by the cluster CA → a `hello` frame within 5 s whose protocol version and cluster
/// id match ours and whose node id equals the certificate's common name → `hello_ok` →
/// request frames, each handled concurrently, replies written in completion order.
/// Anything else closes the connection (and is logged).
class peer_server {
 public:
  peer_server(boost::asio::io_context& ioc, const tls_config& tls, peer_identity self, peer_handler handler,
              peer_server_options opts = {});
  ~peer_server();
  peer_server(const peer_server&) = delete;
  peer_server& operator=(const peer_server&) = delete;

  /// Binds and starts accepting; throws std::runtime_error naming the address on failure.
  void start(const host_port& listen);
  /// Stops accepting and closes every connection.
  void stop();
  /// Incoming peer connections open now.
  std::size_t open_connections() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

/// Outgoing peer connections: one per network thread per peer address (at least two), reused by every request
/// to that peer (requests are multiplexed by request id). A lost connection fails its requests in flight
/// and is re-established by the next request.
/// Which connections a request travels on. Bulk frames (migration batches of megabytes) get
/// a connection of their own per peer, so a request forwarded meanwhile never queues behind
/// them.
enum class peer_lane { request, bulk };

class peer_client {
 public:
  /// `contexts`: the network threads' contexts (see the pool above); empty: `ioc` alone.
  peer_client(boost::asio::io_context& ioc, const tls_config& tls, peer_identity self,
              std::size_t max_frame_bytes = peer::default_max_frame_bytes,
              std::vector<boost::asio::io_context*> contexts = {});
  ~peer_client();
  peer_client(const peer_client&) = delete;
  peer_client& operator=(const peer_client&) = delete;

  /// Sends `request` to the peer at `address` (HOST:PORT) and waits for its reply, at most
  /// `timeout` including connecting. If `expected_node` is not empty, the server's
  /// certificate common name must equal it. Errors are `unavailable` with a reason
  /// (refused, TLS failure, wrong node, lost connection, timeout).
  boost::asio::awaitable<result<peer::frame>> call(std::string expected_node, std::string address,
                                                   peer::frame request, std::chrono::milliseconds timeout,
                                                   peer_lane lane = peer_lane::request);

  /// Closes every connection; requests in flight fail.
  void close_all();

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace shardd::net
