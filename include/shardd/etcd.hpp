#pragma once
// etcd 3.4's v3 JSON gateway, as text: the request bodies shardd sends and the answers it
// reads (DESIGN §6). Pure: no I/O. Keys and values travel base64-encoded; 64-bit integers
// come back as strings and fields at their default value are left out, so every reader here
// takes a missing field as its default.

#include "shardd/error.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardd::etcd {

/// Standard base64 with padding (RFC 4648 §4), as the gateway writes bytes.
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

struct header {
  std::int64_t revision = 0;
  std::uint64_t cluster_id = 0;
  std::uint64_t member_id = 0;
  std::int64_t raft_term = 0;
};

struct kv {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t version = 0;
  std::int64_t lease = 0;
};

/// A request: the gateway path and its JSON body.
struct request {
  std::string path;
  std::string body;
};

/// The value of `key` (or, with `prefix`, every key starting with it, in key order; `limit`
/// 0: all).
request range(std::string_view key, bool prefix = false, std::int64_t limit = 0);
request put(std::string_view key, std::string_view value, std::int64_t lease = 0);
request remove(std::string_view key, bool prefix = false);
/// Puts `value` if `key`'s mod revision is `mod_revision` (0: only if the key does not exist);
/// otherwise changes nothing and reads the key back (txn_reply::current).
request put_if(std::string_view key, std::string_view value, std::int64_t mod_revision, std::int64_t lease = 0);
/// Deletes `key` if its mod revision is `mod_revision`.
request remove_if(std::string_view key, std::int64_t mod_revision);
/// One condition of a transaction: `key`'s mod revision (or create revision) equals `revision`
/// (0: the key does not exist).
struct compare {
  enum class target : std::uint8_t { mod, create };
  std::string key;
  target what = target::mod;
  std::int64_t revision = 0;
};
/// One write of a transaction: a put of `value` (under `lease`), or a delete when `value` is
/// nullopt.
struct write {
  std::string key;
  std::optional<std::string> value;
  std::int64_t lease = 0;
};
/// A transaction: every write at one revision if every condition holds; otherwise nothing is
/// written and the keys of `read_back` are read (txn_reply::current, in that order).
request txn(const std::vector<compare>& when, const std::vector<write>& then, const std::vector<std::string>& read_back = {});
request lease_grant(std::int64_t ttl_seconds);
/// A token for `name` (etcd's auth); sent back in the Authorization header of each request.
request authenticate(std::string_view name, std::string_view password);
request lease_keepalive(std::int64_t id);
request lease_revoke(std::int64_t id);
/// A watch of `key` (or the prefix) from `start_revision` (0: from now); the answer is a
/// stream of JSON objects, one per line, each read with parse_watch.
request watch(std::string_view key, std::int64_t start_revision, bool prefix = false);

struct range_reply {
  header head;
  std::vector<kv> kvs;
  std::int64_t count = 0;
};
struct txn_reply {
  header head;
  bool succeeded = false;
  std::vector<kv> current;  ///< a failed put_if: the key as it is now (empty: it does not exist)
};
struct lease_reply {
  header head;
  std::int64_t id = 0;
  std::int64_t ttl = 0;  ///< seconds left; 0 or less from a keepalive: the lease is gone
};
struct watch_event {
  bool deleted = false;
  kv item;
};
struct watch_reply {
  header head;
  bool created = false;
  bool canceled = false;
  std::string cancel_reason;
  std::int64_t compact_revision = 0;  ///< set when the start revision was compacted away
  std::vector<watch_event> events;
};

/// Each fails with `unavailable` for an error object from the gateway ({"error","code",
/// "message"}), with `corrupt` for text that is not the answer it should be.
result<header> parse_header(std::string_view json);  ///< put and remove answers
result<range_reply> parse_range(std::string_view json);
result<txn_reply> parse_txn(std::string_view json);
result<lease_reply> parse_lease(std::string_view json);  ///< grant and keepalive answers
result<watch_reply> parse_watch(std::string_view json);
result<std::string> parse_token(std::string_view json);  ///< an authenticate answer

}  // namespace shardd::etcd
