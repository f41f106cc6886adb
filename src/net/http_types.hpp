#pragma once
// HTTP request and response as plain values: what handlers see. No Beast here, so handler
// code and its tests compile without it.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shardd::net {

enum class http_method : std::uint8_t { get, head, put, post, delete_, other };

/// The method's name as HTTP writes it; empty for `other`.
inline std::string_view method_name(http_method m) {
  switch (m) {
    case http_method::get: return "GET";
    case http_method::head: return "HEAD";
    case http_method::put: return "PUT";
    case http_method::post: return "POST";
    case http_method::delete_: return "DELETE";
    default: return "";
  }
}

struct http_request {
  http_method method = http_method::get;
  std::string method_text;    ///< as sent, for 405 messages
  std::string target;         ///< origin-form: path and query, still percent-encoded
  std::string authorization;  ///< the Authorization header
  std::string content_type;
  std::string if_none_match;  ///< for conditional GETs of versioned resources
  std::string if_match;       ///< for changes made against a version (a rebalance plan's map)
  std::string body;
  std::string remote;  ///< peer address, for logs
  /// The request's id: the client's X-Request-Id when it is usable, else one made up; carried
  /// to the nodes the request is forwarded to, returned in X-Request-Id and in problem bodies.
  std::string request_id;
};

struct http_response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  ///< extra headers

  void set_header(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
};

}  // namespace shardd::net
