#pragma once
// The HTTPS REST listener. Beast and Asio-SSL stay inside http_server.cpp.

#include "net/http_types.hpp"
#include "common/config.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace shardd::net {

/// Checks a request from its header alone, before its body is read (the bearer token): an
/// answer ends the request there, and the connection closes without reading the body.
using header_check = std::function<std::optional<http_response>(const http_request&)>;

struct http_server_options {
  std::uint64_t max_body_bytes = 8u << 20;
  std::uint32_t header_limit = 16 * 1024;
  std::chrono::milliseconds idle_timeout{60000};       ///< keep-alive connection with no request
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds header_timeout{10000};     ///< from a request's first byte to the end of its header
  std::chrono::milliseconds io_timeout{30000};         ///< reading a body or writing a response
  std::size_t max_connections = 4096;                  ///< beyond it a new connection gets 503 and is closed
  header_check check;                                  ///< optional
  std::string node_id;          ///< for the access log: an answer from another node names it
  bool access_log = false;      ///< one line per request (event=access)
  double access_log_sample = 1.0;
  /// Where connections run, dealt out in turn; each must be run by one thread alone (a
  /// connection then needs no strand). Empty: each connection on its own strand of the
  /// server's io_context. The node gives one context per network thread.
  std::vector<boost::asio::io_context*> session_contexts;
};

/// Handles one request. Runs on the connection's executor (its thread or strand); may co_await.
using http_handler = std::function<boost::asio::awaitable<http_response>(http_request)>;

/// Accepts HTTPS connections and runs one coroutine per connection (see `session_contexts`)
/// (Beast's awaitable server shape): read header → answer `Expect: 100-continue` at once →
/// read body within the limit → call the handler → write → repeat while keep-alive.
/// Malformed requests get 400, bodies over the limit 413, both as problem+json, and the
/// connection is closed. Every read and write has a deadline.
///
/// Owned by the node; lives on the node's io_context. `start` and `shutdown` may be called
/// from any thread.
class http_server {
 public:
  http_server(boost::asio::io_context& ioc, const tls_config& tls, http_handler handler, http_server_options opts);
  ~http_server();
  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Binds and starts accepting. Throws std::runtime_error naming the address on failure.
  void start(const host_port& listen);

  /// Stops accepting, closes idle connections, lets requests in flight finish and answer
  /// (with `Connection: close`) until `deadline`, then closes whatever is left.
  boost::asio::awaitable<void> shutdown(std::chrono::milliseconds deadline);

  std::size_t open_connections() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

/// Serialises a problem+json (RFC 9457) body.
std::string problem_body(unsigned status, std::string_view slug, std::string_view detail, std::string_view instance = {});
/// A complete problem+json response.
http_response problem(unsigned status, std::string_view slug, std::string_view detail, std::string_view instance = {});
/// What every answer gets on its way out: X-Request-Id, `request_id` in a problem+json body,
/// Retry-After on 503 and 429, and for a 500 a detail that names the request id instead of
/// the failure (which is logged with that id: event=internal_error).
void finish_response(http_response& r, std::string_view request_id);
/// Reason phrase of a status ("Not Found").
std::string_view status_title(unsigned status) noexcept;

}  // namespace shardd::net
