#pragma once
// HTTP(S) to etcd's v3 JSON gateway (DESIGN §6): POSTs to one member after another until one
// answers, and the streaming POST of a watch. What the requests and answers mean is the
// core's (shardd/etcd.hpp); this only carries bytes. Beast and Asio-SSL stay in the .cpp.

#include "shardd/error.hpp"
#include "shardd/host_port.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace shardd::net {

struct etcd_options {
  std::vector<host_port> endpoints;  ///< the members' client addresses, tried in order
  bool tls = false;                  ///< https: verify members against `ca`
  std::string ca;                    ///< PEM CA of the members' certificates
  std::string cert, key;             ///< PEM client certificate and key, when etcd asks for one
  std::string user, password;        ///< etcd's auth (empty user: none); etcd_client authenticates
  std::chrono::milliseconds timeout{5000};       ///< per request and member (connect, write, read)
  std::size_t max_answer_bytes = 64u << 20;       ///< an answer (or one watch event line) larger is an error
};

class etcd_transport {
 public:
  /// Throws std::runtime_error naming the file when a TLS file cannot be loaded.
  etcd_transport(boost::asio::any_io_executor ex, etcd_options o);
  ~etcd_transport();
  etcd_transport(const etcd_transport&) = delete;
  etcd_transport& operator=(const etcd_transport&) = delete;

  /// POSTs `body` to `path` on the first member that answers; a member that cannot be reached,
  /// times out or answers 5xx passes the request to the next one (the one that answered is
  /// tried first next time). The answer's body for 2xx; `unavailable` naming the last failure
  /// when no member answered; `forbidden` for 401; `invalid_argument` with the gateway's
  /// message for another 4xx.
  boost::asio::awaitable<result<std::string>> post(std::string path, std::string body);

  /// A streaming POST (a watch): `on_line` gets each newline-separated JSON object as it
  /// arrives, until it returns false, the member closes the stream, or `close_streams()`.
  /// Connects like `post` (no timeout once the stream is open).
  boost::asio::awaitable<result<void>> stream(std::string path, std::string body, std::function<bool(std::string_view)> on_line);

  /// The auth token sent with every request from now on (empty: none). An answer of 401
  /// fails with `forbidden`.
  void set_token(std::string token);

  /// Ends every open stream (shutdown).
  void close_streams();

  /// The member that answered last ("host:port").
  std::string current_endpoint() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace shardd::net
