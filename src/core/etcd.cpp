#include "shardd/etcd.hpp"

#include "shardd/key_codec.hpp"
#include "shardd/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <charconv>

namespace shardd::etcd {

namespace json = boost::json;

namespace {

/// A 64-bit integer field: the gateway writes them as strings ("12"), a number is taken too;
/// missing is 0.
template <class T>
result<T> integer(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (!v) return T{0};
  if (v->is_int64()) return static_cast<T>(v->get_int64());
  if (v->is_uint64()) return static_cast<T>(v->get_uint64());
  if (v->is_string()) {
    const auto& s = v->get_string();
    T out{};
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec == std::errc{} && p == s.data() + s.size()) return out;
  }
  return make_error(errc::corrupt, "etcd answer: " + std::string(name) + " is not an integer");
}

result<std::string> bytes_field(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (!v) return std::string();
  if (!v->is_string()) return make_error(errc::corrupt, "etcd answer: " + std::string(name) + " is not a string");
  auto d = base64_decode(v->get_string());
  if (!d) return make_error(errc::corrupt, "etcd answer: " + std::string(name) + " is not base64");
  return std::move(*d);
}

result<json::object> parse_object(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return make_error(errc::corrupt, "etcd answer is not a JSON object");
  auto& o = v.get_object();
  // {"error":"...","code":14,"message":"..."}: the gateway's own failure.
  if (o.contains("error") || (o.contains("code") && o.contains("message") && !o.contains("header"))) {
    std::string msg = o.contains("message") && o.at("message").is_string() ? std::string(o.at("message").get_string())
                      : o.at("error").is_string()                         ? std::string(o.at("error").get_string())
                                                                           : std::string("error");
    return make_error(errc::unavailable, "etcd: " + msg);
  }
  return std::move(o);
}

result<header> read_header(const json::object& o) {
  header h;
  const auto* hv = o.if_contains("header");
  if (!hv) return h;
  if (!hv->is_object()) return make_error(errc::corrupt, "etcd answer: header is not an object");
  const auto& ho = hv->get_object();
  auto rev = integer<std::int64_t>(ho, "revision");
  auto cid = integer<std::uint64_t>(ho, "cluster_id");
  auto mid = integer<std::uint64_t>(ho, "member_id");
  auto term = integer<std::int64_t>(ho, "raft_term");
  if (!rev) return rev.error();
  if (!cid) return cid.error();
  if (!mid) return mid.error();
  if (!term) return term.error();
  h.revision = *rev;
  h.cluster_id = *cid;
  h.member_id = *mid;
  h.raft_term = *term;
  return h;
}

result<kv> read_kv(const json::value& v) {
  if (!v.is_object()) return make_error(errc::corrupt, "etcd answer: a kv is not an object");
  const auto& o = v.get_object();
  kv out;
  auto key = bytes_field(o, "key");
  if (!key) return key.error();
  auto value = bytes_field(o, "value");
  if (!value) return value.error();
  out.key = std::move(*key);
  out.value = std::move(*value);
  for (auto [name, field] : {std::pair{"create_revision", &out.create_revision}, std::pair{"mod_revision", &out.mod_revision},
                             std::pair{"version", &out.version}, std::pair{"lease", &out.lease}}) {
    auto n = integer<std::int64_t>(o, name);
    if (!n) return n.error();
    *field = *n;
  }
  return out;
}

result<std::vector<kv>> read_kvs(const json::object& o) {
  std::vector<kv> out;
  const auto* a = o.if_contains("kvs");
  if (!a) return out;
  if (!a->is_array()) return make_error(errc::corrupt, "etcd answer: kvs is not an array");
  for (const auto& e : a->get_array()) {
    auto k = read_kv(e);
    if (!k) return k.error();
    out.push_back(std::move(*k));
  }
  return out;
}

json::object key_fields(std::string_view key, bool prefix) {
  json::object o;
  o["key"] = base64_encode(key);
  if (prefix) {
    // Every key that starts with it: up to its successor, or to the end of the key space.
    auto end = prefix_successor(key);
    o["range_end"] = end ? base64_encode(*end) : base64_encode(std::string(1, '\0'));
  }
  return o;
}

std::string text(const json::object& o) { return json::serialize(o); }

}  // namespace

std::string base64_encode(std::string_view bytes) { return shardd::base64_encode(bytes); }
std::optional<std::string> base64_decode(std::string_view text) { return shardd::base64_decode(text); }

request range(std::string_view key, bool prefix, std::int64_t limit) {
  auto o = key_fields(key, prefix);
  if (limit > 0) o["limit"] = std::to_string(limit);
  return {"/v3/kv/range", text(o)};
}

request put(std::string_view key, std::string_view value, std::int64_t lease) {
  auto o = key_fields(key, false);
  o["value"] = base64_encode(value);
  if (lease) o["lease"] = std::to_string(lease);
  return {"/v3/kv/put", text(o)};
}

request remove(std::string_view key, bool prefix) { return {"/v3/kv/deleterange", text(key_fields(key, prefix))}; }

namespace {

/// A txn: `then` if `key`'s mod revision is `mod_revision`, else a read of the key.
request if_mod_revision(std::string_view key, std::int64_t mod_revision, const char* op, json::object then_request) {
  json::object cmp;
  cmp["key"] = base64_encode(key);
  cmp["target"] = "MOD";
  cmp["result"] = "EQUAL";
  cmp["mod_revision"] = std::to_string(mod_revision);
  json::object then, otherwise;
  then[op] = std::move(then_request);
  otherwise["request_range"] = key_fields(key, false);
  json::object o;
  o["compare"] = json::array{std::move(cmp)};
  o["success"] = json::array{std::move(then)};
  o["failure"] = json::array{std::move(otherwise)};
  return {"/v3/kv/txn", text(o)};
}

}  // namespace

request put_if(std::string_view key, std::string_view value, std::int64_t mod_revision, std::int64_t lease) {
  json::object p = key_fields(key, false);
  p["value"] = base64_encode(value);
  if (lease) p["lease"] = std::to_string(lease);
  return if_mod_revision(key, mod_revision, "request_put", std::move(p));
}

request remove_if(std::string_view key, std::int64_t mod_revision) {
  return if_mod_revision(key, mod_revision, "request_delete_range", key_fields(key, false));
}

request txn(const std::vector<compare>& when, const std::vector<write>& then, const std::vector<std::string>& read_back) {
  json::array cmps, success, failure;
  for (const auto& c : when) {
    json::object o;
    o["key"] = base64_encode(c.key);
    o["result"] = "EQUAL";
    if (c.what == compare::target::mod) {
      o["target"] = "MOD";
      o["mod_revision"] = std::to_string(c.revision);
    } else {
      o["target"] = "CREATE";
      o["create_revision"] = std::to_string(c.revision);
    }
    cmps.push_back(std::move(o));
  }
  for (const auto& w : then) {
    json::object op;
    if (w.value) {
      json::object p = key_fields(w.key, false);
      p["value"] = base64_encode(*w.value);
      if (w.lease) p["lease"] = std::to_string(w.lease);
      op["request_put"] = std::move(p);
    } else {
      op["request_delete_range"] = key_fields(w.key, false);
    }
    success.push_back(std::move(op));
  }
  for (const auto& k : read_back) {
    json::object op;
    op["request_range"] = key_fields(k, false);
    failure.push_back(std::move(op));
  }
  json::object o;
  o["compare"] = std::move(cmps);
  o["success"] = std::move(success);
  o["failure"] = std::move(failure);
  return {"/v3/kv/txn", text(o)};
}

request authenticate(std::string_view name, std::string_view password) {
  json::object o;
  o["name"] = name;
  o["password"] = password;
  return {"/v3/auth/authenticate", text(o)};
}

request lease_grant(std::int64_t ttl_seconds) {
  json::object o;
  o["TTL"] = std::to_string(ttl_seconds);
  return {"/v3/lease/grant", text(o)};
}

request lease_keepalive(std::int64_t id) {
  json::object o;
  o["ID"] = std::to_string(id);
  return {"/v3/lease/keepalive", text(o)};
}

request lease_revoke(std::int64_t id) {
  json::object o;
  o["ID"] = std::to_string(id);
  return {"/v3/lease/revoke", text(o)};
}

request watch(std::string_view key, std::int64_t start_revision, bool prefix) {
  auto c = key_fields(key, prefix);
  if (start_revision > 0) c["start_revision"] = std::to_string(start_revision);
  json::object o;
  o["create_request"] = std::move(c);
  return {"/v3/watch", text(o)};
}

result<header> parse_header(std::string_view t) {
  auto o = parse_object(t);
  if (!o) return o.error();
  return read_header(*o);
}

result<range_reply> parse_range(std::string_view t) {
  auto o = parse_object(t);
  if (!o) return o.error();
  range_reply r;
  auto h = read_header(*o);
  if (!h) return h.error();
  r.head = *h;
  auto kvs = read_kvs(*o);
  if (!kvs) return kvs.error();
  r.kvs = std::move(*kvs);
  auto n = integer<std::int64_t>(*o, "count");
  if (!n) return n.error();
  r.count = *n;
  return r;
}

result<txn_reply> parse_txn(std::string_view t) {
  auto o = parse_object(t);
  if (!o) return o.error();
  txn_reply r;
  auto h = read_header(*o);
  if (!h) return h.error();
  r.head = *h;
  if (const auto* s = o->if_contains("succeeded")) {
    if (!s->is_bool()) return make_error(errc::corrupt, "etcd answer: succeeded is not a boolean");
    r.succeeded = s->get_bool();
  }
  if (const auto* rs = o->if_contains("responses"); rs && rs->is_array())
    for (const auto& e : rs->get_array()) {
      if (!e.is_object()) continue;
      if (const auto* rr = e.get_object().if_contains("response_range"); rr && rr->is_object()) {
        auto kvs = read_kvs(rr->get_object());
        if (!kvs) return kvs.error();
        for (auto& k : *kvs) r.current.push_back(std::move(k));
      }
    }
  return r;
}

result<std::string> parse_token(std::string_view t) {
  auto o = parse_object(t);
  if (!o) return o.error();
  const auto* tok = o->if_contains("token");
  if (!tok || !tok->is_string() || tok->get_string().empty()) return make_error(errc::corrupt, "etcd answer: no token");
  return std::string(tok->get_string());
}

result<lease_reply> parse_lease(std::string_view t) {
  auto o = parse_object(t);
  if (!o) return o.error();
  // A keepalive answer wraps its fields in "result".
  const json::object* body = &*o;
  if (const auto* inner = o->if_contains("result"); inner && inner->is_object()) body = &inner->get_object();
  lease_reply r;
  auto h = read_header(*body);
  if (!h) return h.error();
  r.head = *h;
  auto id = integer<std::int64_t>(*body, "ID");
  auto ttl = integer<std::int64_t>(*body, "TTL");
  if (!id) return id.error();
  if (!ttl) return ttl.error();
  r.id = *id;
  r.ttl = *ttl;
  return r;
}

result<watch_reply> parse_watch(std::string_view t) {
  auto o = parse_object(t);
  if (!o) return o.error();
  const auto* inner = o->if_contains("result");
  if (!inner || !inner->is_object()) return make_error(errc::corrupt, "etcd watch answer has no result");
  const auto& b = inner->get_object();
  watch_reply r;
  auto h = read_header(b);
  if (!h) return h.error();
  r.head = *h;
  if (const auto* v = b.if_contains("created"); v && v->is_bool()) r.created = v->get_bool();
  if (const auto* v = b.if_contains("canceled"); v && v->is_bool()) r.canceled = v->get_bool();
  if (const auto* v = b.if_contains("cancel_reason"); v && v->is_string()) r.cancel_reason = std::string(v->get_string());
  auto cr = integer<std::int64_t>(b, "compact_revision");
  if (!cr) return cr.error();
  r.compact_revision = *cr;
  if (const auto* evs = b.if_contains("events")) {
    if (!evs->is_array()) return make_error(errc::corrupt, "etcd watch answer: events is not an array");
    for (const auto& e : evs->get_array()) {
      if (!e.is_object()) return make_error(errc::corrupt, "etcd watch answer: an event is not an object");
      watch_event ev;
      if (const auto* ty = e.get_object().if_contains("type"); ty && ty->is_string()) ev.deleted = ty->get_string() == "DELETE";
      if (const auto* k = e.get_object().if_contains("kv")) {
        auto item = read_kv(*k);
        if (!item) return item.error();
        ev.item = std::move(*item);
      }
      r.events.push_back(std::move(ev));
    }
  }
  return r;
}

}  // namespace shardd::etcd
