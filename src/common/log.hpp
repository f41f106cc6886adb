#pragma once
// One line per event, key=value fields: `ts=... level=info node=n1 event=index_created index=x`.
// Use: SHARDD_LOG(info, "index_created", "index", name, "shards", n);

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

namespace shardd::log {

/// Sets up the process-wide logger: key=value lines on stderr, with `node=` on every line.
void init(std::string_view node_id, std::string_view level);

/// Quotes a value when it holds a space, a quote or an '=' (so lines stay machine-readable).
std::string quote(std::string_view v);

inline void append_fields(std::string&) {}
template <class V, class... Rest>
void append_fields(std::string& out, std::string_view key, const V& value, const Rest&... rest) {
  out.push_back(' ');
  out.append(key);
  out.push_back('=');
  if constexpr (std::is_convertible_v<const V&, std::string_view>)
    out.append(quote(std::string_view(value)));
  else
    out.append(fmt::to_string(value));
  append_fields(out, rest...);
}

template <class... Fields>
std::string line(std::string_view event, const Fields&... fields) {
  std::string out = "event=";
  out.append(event);
  append_fields(out, fields...);
  return out;
}

/// One REST request as the access log has it.
struct access_entry {
  std::string_view method, target, remote, request_id;
  std::string_view forwarded_to;    ///< the node that answered, when not this one
  std::string_view forwarded_from;  ///< the node that relayed it here, when one did
  unsigned status = 0;
  std::size_t bytes = 0;  ///< response body bytes
  double ms = 0;          ///< from the end of the request's header to the answer
};

/// Writes the access line of `e` (event=access) when `sample` draws it: every request at 1,
/// none at 0; answers of 500 and above always.
void access(const access_entry& e, double sample);

/// A new request id: 16 hex digits, random.
std::string new_request_id();

/// Whether a client's X-Request-Id can be used as ours: 1 to 128 visible ASCII characters,
/// none of them a quote, a backslash or an '='.
bool usable_request_id(std::string_view id) noexcept;

}  // namespace shardd::log

#define SHARDD_LOG(lvl, event, ...)                                                      \
  do {                                                                                   \
    if (spdlog::should_log(spdlog::level::lvl))                                          \
      spdlog::log(spdlog::level::lvl, "{}", ::shardd::log::line(event, ##__VA_ARGS__));  \
  } while (0)
