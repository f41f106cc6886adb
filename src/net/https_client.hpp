#pragma once
// A small blocking HTTPS client with keep-alive, for integration tests, benchmarks and tools.
// Beast stays inside https_client.cpp.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shardd::net {

struct client_response {
  unsigned status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names in lower case

  /// Value of a header (case-insensitive name), or "".
  std::string header(std::string_view name) const;
};

/// One keep-alive HTTPS connection that verifies the server against a CA file. Reconnects
/// when the server closed the connection. Not thread-safe: one per thread.
class https_client {
 public:
  https_client(std::string host, std::uint16_t port, std::string ca_file, std::string token = {});
  ~https_client();
  https_client(const https_client&) = delete;
  https_client& operator=(const https_client&) = delete;

  void set_token(std::string token);
  void set_timeout(std::chrono::milliseconds t);

  /// Sends one request; throws std::runtime_error on connection failure or timeout.
  client_response request(std::string_view method, std::string_view target, std::string_view body = {},
                          const std::vector<std::pair<std::string, std::string>>& headers = {});
  client_response get(std::string_view target) { return request("GET", target); }
  client_response put(std::string_view target, std::string_view body) { return request("PUT", target, body); }
  client_response post(std::string_view target, std::string_view body) { return request("POST", target, body); }
  client_response del(std::string_view target) { return request("DELETE", target); }

  /// Opens a fresh TLS connection, writes `bytes` as they are, and returns what the server
  /// sends until it closes the connection or `wait` passes.
  std::string raw_exchange(std::string_view bytes, std::chrono::milliseconds wait);

  void disconnect();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Percent-encodes a path segment or query value (RFC 3986 unreserved characters stay).
std::string url_encode(std::string_view s);

}  // namespace shardd::net
