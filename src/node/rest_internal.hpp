#pragma once
// Shared by the REST layer's files (rest_*.cpp) only: the state of one request and small
// helpers for answers. Not a public interface.

#include "net/http_server.hpp"
#include "node/rest_api.hpp"
#include "shardd/cat_table.hpp"
#include "shardd/error.hpp"
#include "shardd/partition_map.hpp"
#include "storage/store.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shardd {

namespace rest {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;

using net::http_method;
using net::http_response;

constexpr std::size_t default_scan_limit = 100;
constexpr std::size_t max_scan_limit = 10000;
constexpr std::size_t max_scan_examined = 100000;  // keys looked at per scan request
constexpr std::size_t max_reported_errors = 100;    // per-line errors listed by a bulk answer

inline unsigned status_of(errc e) {
  switch (e) {
    case errc::invalid_argument: return 400;
    case errc::not_found: return 404;
    case errc::already_exists: return 409;
    case errc::conflict: return 409;
    case errc::unavailable: return 503;
    case errc::too_large: return 413;
    case errc::corrupt: return 502;
    case errc::forbidden: return 403;
    case errc::insufficient_storage: return 507;
    case errc::not_controller: return 503;
    default: return 500;
  }
}

inline std::string slug_of(errc e) {
  std::string s(to_string(e));
  std::replace(s.begin(), s.end(), '_', '-');
  return s;
}

inline http_response json_response(unsigned status, std::string body) {
  http_response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

inline http_response text_response(std::string body) {
  http_response r;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

inline std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

/// A map version as an entity tag: `"12"`, `W/"12"` or plain `12` (as ?if_match= carries it).
inline std::optional<std::uint64_t> parse_version_tag(std::string_view t) {
  if (t.starts_with("W/")) t.remove_prefix(2);
  if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = t.substr(1, t.size() - 2);
  if (t.empty() || t.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char ch : t) {
    if (ch < '0' || ch > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(ch - '0');
  }
  return v;
}

inline bool has_header(const http_response& r, std::string_view name) {
  for (const auto& [n, v] : r.headers)
    if (n == name) return true;
  return false;
}

using net::method_name;

/// Column kinds, short: the tables' declarations list many.
constexpr auto text_col = column_kind::text;
constexpr auto num_col = column_kind::number;
constexpr auto bytes_col = column_kind::bytes;

/// One shard as the API shows it; `st` null when its owner did not answer.
boost::json::object shard_json(const index_entry& ix, const shard_entry& s, const storage::shard_stats* st);

/// The answer that makes the caller re-route with a newer map (`rest_api::moved_status`).
inline http_response moved_response() {
  http_response r;
  r.status = rest_api::moved_status;
  return r;
}

}  // namespace rest

// The REST files speak of these by their short names.
using namespace rest;

/// One request: its parsed target, the map it routes with, and the path arguments of the
/// route it matched. Lives on the stack of `rest_api::handle` for the request's whole life.
struct rest_api::call {
  net::http_request& req;
  std::vector<std::string> segments;
  std::vector<std::pair<std::string, std::string>> params;
  snapshot_ptr snap;  ///< the map this request routes with; replaced when it waits for a newer one
  std::string path;
  /// The map the request started with, kept alive for the whole request: handlers hold
  /// references into it (an index_entry&) across waits that replace `snap`.
  snapshot_ptr pinned;
  bool forwarded = false;            ///< came from another node
  std::uint64_t sender_version = 0;  ///< the sender's map version (forwarded requests)
  /// Path arguments of the matched route ({index}, {key}, ...), already validated.
  std::vector<std::pair<std::string_view, std::string>> args;
  std::uint32_t shard_no = 0;  ///< {shard}, as a number

  /// A path argument of the matched route; the route table guarantees it is there.
  const std::string& arg(std::string_view name) const {
    for (const auto& [k, v] : args)
      if (k == name) return v;
    static const std::string none;
    return none;
  }

  const std::string* param(std::string_view name) const {
    const std::string* found = nullptr;
    for (const auto& [k, v] : params)
      if (k == name) found = &v;  // the last one wins
    return found;
  }
  /// A text table is asked for: `?format=text`, or a _cat parameter (`?v`, `?h=`, `?s=`,
  /// `?help`, `?bytes=`) without a format.
  bool text() const {
    auto f = param("format");
    return f ? *f == "text" : cat().any();
  }
  cat_query cat() const { return {param("v"), param("h"), param("s"), param("help"), param("bytes")}; }
  /// The answer of a `?format=text` view: `t` shaped by the request's _cat parameters (400 for
  /// a bad one, naming it and what it takes).
  net::http_response table(const cat_table& t) const {
    auto o = parse_cat_options(cat());
    if (!o) return fail(o.error());
    auto text = render_cat(t, *o);
    if (!text) return fail(text.error());
    return text_response(std::move(*text));
  }
  std::optional<std::string_view> routing() const {
    auto r = param("routing");
    return r ? std::optional<std::string_view>(*r) : std::nullopt;
  }
  net::http_response fail(unsigned status, std::string_view slug, std::string_view detail) const {
    return net::problem(status, slug, detail, path);
  }
  net::http_response fail(const error& e) const { return fail(rest::status_of(e.code), rest::slug_of(e.code), e.detail); }
};

}  // namespace shardd
