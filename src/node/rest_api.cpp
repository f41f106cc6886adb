#include "node/rest_api.hpp"

#include "net/http_server.hpp"
#include "node/control_plane.hpp"
#include "node/controller.hpp"
#include "node/faults.hpp"
#include "node/gather.hpp"
#include "common/log.hpp"
#include "node/migrator.hpp"
#include "node/peers.hpp"
#include "node/store_ops.hpp"
#include "shardd/json_fields.hpp"
#include "shardd/placement.hpp"
#include "shardd/routing.hpp"
#include "shardd/text.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <openssl/crypto.h>

#include <chrono>
#include <initializer_list>
#include <set>

namespace shardd {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;
using net::http_method;
using net::http_response;

namespace {

constexpr std::size_t default_scan_limit = 100;
constexpr std::size_t max_scan_limit = 10000;
constexpr std::size_t max_scan_examined = 100000;  // keys looked at per scan request
// Keys and values one shard returns per scan request: a page of large documents ends early
// (with a cursor) instead of making a reply too large for a peer frame.
constexpr std::size_t max_scan_bytes = 16u << 20;
constexpr std::size_t max_reported_errors = 100;    // per-line errors listed by a bulk answer

unsigned status_of(errc e) {
  switch (e) {
    case errc::invalid_argument: return 400;
    case errc::not_found: return 404;
    case errc::already_exists: return 409;
    case errc::conflict: return 409;
    case errc::unavailable: return 503;
    case errc::too_large: return 413;
    default: return 500;
  }
}

std::string slug_of(errc e) {
  std::string s(to_string(e));
  std::replace(s.begin(), s.end(), '_', '-');
  return s;
}

http_response json_response(unsigned status, std::string body) {
  http_response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

http_response text_response(std::string body) {
  http_response r;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

bool has_header(const http_response& r, std::string_view name) {
  for (const auto& [n, v] : r.headers)
    if (n == name) return true;
  return false;
}

/// Runs a blocking function on the read pool and resumes the caller on its own executor.
template <class F>
awaitable<std::invoke_result_t<F>> on_pool(asio::thread_pool& pool, F f) {
  using R = std::invoke_result_t<F>;
  // Named: GCC 12 destroys temporaries in a co_await operand twice.
  auto task = [f = std::move(f)]() mutable -> awaitable<R> { co_return f(); };
  co_return co_await asio::co_spawn(pool, std::move(task), asio::use_awaitable);
}

std::string_view method_name(http_method m) {
  switch (m) {
    case http_method::get: return "GET";
    case http_method::head: return "HEAD";
    case http_method::put: return "PUT";
    case http_method::post: return "POST";
    case http_method::delete_: return "DELETE";
    default: return "";
  }
}


}  // namespace

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

  const std::string* param(std::string_view name) const {
    const std::string* found = nullptr;
    for (const auto& [k, v] : params)
      if (k == name) found = &v;  // the last one wins
    return found;
  }
  bool text() const {
    auto f = param("format");
    return f && *f == "text";
  }
  std::optional<std::string_view> routing() const {
    auto r = param("routing");
    return r ? std::optional<std::string_view>(*r) : std::nullopt;
  }
  http_response fail(unsigned status, std::string_view slug, std::string_view detail) const {
    return net::problem(status, slug, detail, path);
  }
  http_response fail(const error& e) const { return fail(status_of(e.code), slug_of(e.code), e.detail); }
};

struct rest_api::stats_view {
  std::map<std::pair<std::uint32_t, std::uint32_t>, storage::shard_stats> shards;  ///< (index id, shard id)
  std::map<std::string, std::string> unreachable;                                 ///< node → why

  const storage::shard_stats* find(const index_entry& ix, const shard_entry& s) const {
    auto it = shards.find({ix.id, s.id});
    return it == shards.end() ? nullptr : &it->second;
  }
};

rest_api::rest_api(node_context ctx) : ctx_(ctx), token_digest_(sha256(ctx.config.token)) {}

bool rest_api::authorized(const net::http_request& req) const {
  constexpr std::string_view scheme = "Bearer ";
  std::string_view h = req.authorization;
  if (h.size() < scheme.size() || !std::equal(scheme.begin(), scheme.end(), h.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
      }))
    return false;
  // Compare digests in constant time: the time taken says nothing about the token.
  auto given = sha256(h.substr(scheme.size()));
  return CRYPTO_memcmp(given.data(), token_digest_.data(), given.size()) == 0;
}

awaitable<http_response> rest_api::handle(net::http_request req) {
  call c{req, {}, {}, ctx_.ring.snapshot(), {}, {}};
  co_return co_await run(c);
}

awaitable<http_response> rest_api::handle_forwarded(net::http_request req, std::uint64_t sender_version) {
  call c{req, {}, {}, ctx_.ring.snapshot(), {}, {}};
  c.forwarded = true;
  c.sender_version = sender_version;
  co_return co_await run(c);
}

awaitable<http_response> rest_api::run(call& c) {
  c.pinned = c.snap;
  auto url = boost::urls::parse_origin_form(c.req.target);
  if (!url) co_return net::problem(400, "malformed-request", "request target is not a valid origin-form URL: " + c.req.target);
  c.path = std::string(url->encoded_path());
  for (auto seg : url->segments()) c.segments.push_back(seg);
  for (auto p : url->params()) c.params.emplace_back(p.key, p.value);

  http_response res;
  const bool is_health = c.segments.size() == 2 && c.segments[0] == "v1" && c.segments[1] == "health";
  if (!c.forwarded && !is_health && !authorized(c.req)) {
    res = c.fail(401, "unauthorized",
                 c.req.authorization.empty() ? "missing Authorization: Bearer <token> header" : "invalid bearer token");
    res.set_header("WWW-Authenticate", "Bearer realm=\"shardd\"");
  } else {
    res = co_await dispatch(c);
  }
  // A relayed answer keeps the owner's node and map version.
  if (!has_header(res, "X-Shardd-Node")) res.set_header("X-Shardd-Node", ctx_.config.node_id);
  if (!has_header(res, "X-Shardd-Map-Version")) res.set_header("X-Shardd-Map-Version", std::to_string(c.snap->map->version));
  co_return res;
}

awaitable<http_response> rest_api::dispatch(call& c) {
  const auto& s = c.segments;
  const auto method = c.req.method;
  auto not_allowed = [&](std::string allow) {
    auto r = c.fail(405, "method-not-allowed", "method " + c.req.method_text + " is not allowed on " + c.path +
                                                   "; allowed: " + allow);
    r.set_header("Allow", allow);
    return r;
  };
  // Query parameters each endpoint takes; any other is a mistake worth reporting.
  auto unknown_param = [&](std::initializer_list<std::string_view> allowed) -> std::optional<http_response> {
    for (const auto& [k, v] : c.params)
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
        return c.fail(400, "invalid-argument", "unknown query parameter " + quoted(k));
    if (auto f = c.param("format"); f && *f != "text" && *f != "json")
      return c.fail(400, "invalid-argument", "format must be text or json");
    return std::nullopt;
  };

  if (s.empty() || s[0] != "v1") co_return c.fail(404, "not-found", "unknown path " + c.path);

  if (s.size() == 2 && s[1] == "health") {
    if (method != http_method::get) co_return not_allowed("GET");
    co_return health(c);
  }
  if (s.size() == 2 && s[1] == "shards") {
    if (method != http_method::get) co_return not_allowed("GET");
    if (auto e = unknown_param({"format", "index"})) co_return *e;
    co_return co_await list_shards(c);
  }
  if (s.size() == 5 && s[1] == "shards" && (s[4] == "migrate" || s[4] == "split")) {
    if (method != http_method::post) co_return not_allowed("POST");
    if (auto e = unknown_param({})) co_return *e;
    if (auto v = validate_index_name(s[2]); !v) co_return c.fail(v.error());
    const auto n = parse_decimal(s[3], 0, UINT32_MAX);
    if (!n) co_return c.fail(400, "invalid-argument", "shard must be a shard number, not " + quoted(s[3]));
    if (s[4] == "migrate") co_return co_await migrate_shard(c, s[2], static_cast<std::uint32_t>(*n));
    co_return co_await split_shard(c, s[2], static_cast<std::uint32_t>(*n));
  }
  if (s.size() >= 2 && s[1] == "migrations") {
    if (s.size() == 2) {
      if (method != http_method::get) co_return not_allowed("GET");
      if (auto e = unknown_param({"state", "format"})) co_return *e;
      co_return co_await list_migrations(c, nullptr);
    }
    if (s.size() == 3 && s[2] == "settings") {
      if (method != http_method::get && method != http_method::put) co_return not_allowed("GET, PUT");
      if (auto e = unknown_param({})) co_return *e;
      co_return co_await migration_settings(c);
    }
    if (s.size() == 3) {
      if (method != http_method::get) co_return not_allowed("GET");
      if (auto e = unknown_param({})) co_return *e;
      co_return co_await list_migrations(c, &s[2]);
    }
    if (s.size() == 4 && (s[3] == "pause" || s[3] == "resume" || s[3] == "cancel")) {
      if (method != http_method::post) co_return not_allowed("POST");
      if (auto e = unknown_param({})) co_return *e;
      co_return co_await control_migration(c, s[2], s[3]);
    }
  }
  if (s.size() == 5 && s[1] == "cluster" && s[2] == "nodes" && s[4] == "decommission") {
    if (method != http_method::post) co_return not_allowed("POST");
    if (auto e = unknown_param({})) co_return *e;
    co_return co_await decommission(c, s[3]);
  }
  if (s.size() == 2 && s[1] == "cluster") {
    if (method != http_method::get) co_return not_allowed("GET");
    if (auto e = unknown_param({"format"})) co_return *e;
    co_return co_await get_cluster(c);
  }
  if (s.size() == 4 && s[1] == "cluster" && s[2] == "nodes") {
    if (method != http_method::put) co_return not_allowed("PUT");
    if (auto e = unknown_param({})) co_return *e;
    co_return co_await set_node(c, s[3]);
  }
  if (s.size() == 2 && s[1] == "ring") {
    if (method != http_method::get) co_return not_allowed("GET");
    if (auto e = unknown_param({"format"})) co_return *e;
    co_return get_ring(c);
  }
  if (s.size() == 3 && s[1] == "ring" && s[2] == "lookup") {
    if (method != http_method::get) co_return not_allowed("GET");
    if (auto e = unknown_param({"index", "key", "routing"})) co_return *e;
    co_return ring_lookup(c);
  }
  if (s.size() == 2 && s[1] == "partition-map") {
    if (method != http_method::get) co_return not_allowed("GET");
    if (auto e = unknown_param({})) co_return *e;
    co_return get_partition_map(c);
  }
  if (s.size() >= 2 && s[1] == "indexes") {
    if (s.size() == 2) {
      if (method != http_method::get) co_return not_allowed("GET");
      if (auto e = unknown_param({"format"})) co_return *e;
      co_return co_await list_indexes(c);
    }
    const std::string& name = s[2];
    if (auto v = validate_index_name(name); !v) co_return c.fail(v.error());
    if (s.size() == 3) {
      switch (method) {
        case http_method::put:
          if (auto e = unknown_param({})) co_return *e;
          co_return co_await put_index(c, name);
        case http_method::get:
          if (auto e = unknown_param({"format"})) co_return *e;
          co_return co_await get_index(c, name);
        case http_method::delete_:
          if (auto e = unknown_param({})) co_return *e;
          co_return co_await delete_index(c, name);
        default: co_return not_allowed("GET, PUT, DELETE");
      }
    }
    const index_entry* ix = c.snap->map->find_index(name);
    auto missing = [&] { return c.fail(404, "not-found", "index " + quoted(name) + " does not exist"); };
    if (s[3] == "records") {
      if (s.size() == 4) {
        if (method != http_method::get) co_return not_allowed("GET");
        if (auto e = unknown_param({"start", "end", "prefix", "limit", "cursor", "format"})) co_return *e;
        if (!ix) co_return missing();
        co_return co_await scan(c, *ix);
      }
      // Everything after records/ is the key, so "a/b" may be sent as records/a/b or a%2Fb.
      std::string key = s[4];
      for (std::size_t i = 5; i < s.size(); ++i) key.append("/").append(s[i]);
      if (method != http_method::get && method != http_method::put && method != http_method::delete_)
        co_return not_allowed("GET, PUT, DELETE");
      if (auto e = unknown_param({"routing"})) co_return *e;
      if (auto v = validate_key(key); !v) co_return c.fail(v.error());
      if (auto r = c.param("routing"); r && r->empty()) co_return c.fail(400, "invalid-argument", "routing must not be empty");
      if (!ix) co_return missing();
      co_return co_await record(c, *ix, key);
    }
    if (s.size() == 4 && s[3] == "bulk") {
      if (method != http_method::post) co_return not_allowed("POST");
      if (auto e = unknown_param({})) co_return *e;
      if (!ix) co_return missing();
      co_return co_await bulk(c, *ix);
    }
    if (s.size() == 4 && s[3] == "count") {
      if (method != http_method::get) co_return not_allowed("GET");
      if (auto e = unknown_param({})) co_return *e;
      if (!ix) co_return missing();
      co_return co_await count(c, *ix);
    }
  }
  co_return c.fail(404, "not-found", "unknown path " + c.path);
}

// --- cluster plumbing -----------------------------------------------------------------------

awaitable<http_response> rest_api::forward(call& c, const std::string& node) {
  peer::forward_request fr{std::string(method_name(c.req.method)), c.req.target, c.req.content_type, c.req.body};
  if (fr.method.empty()) fr.method = c.req.method_text;
  auto frame = make_frame(peer::frame_type::forward, peer::encode(fr), c.snap->map->version);
  auto r = co_await ctx_.peer->call(node, std::move(frame), std::chrono::milliseconds(ctx_.config.request_timeout_ms));
  if (!r) {
    co_return c.fail(503, "unavailable", "node " + quoted(node) + " did not answer: " + r.error().detail);
  }
  if (r->header.type == peer::frame_type::moved) {
    http_response m;
    m.status = moved_status;
    m.body = std::to_string(r->header.map_version);
    co_return m;
  }
  auto fr2 = peer::decode_forward_response(r->payload);
  if (!fr2) co_return c.fail(502, "bad-gateway", "unreadable answer from node " + quoted(node));
  http_response out;
  out.status = fr2->status;
  out.content_type = std::move(fr2->content_type);
  out.headers = std::move(fr2->headers);
  out.body = std::move(fr2->body);
  co_return out;
}

awaitable<http_response> rest_api::to_controller(call& c) {
  // Changes of the map are made by the controller; other nodes relay the request to it.
  const std::string controller_id = ctx_.plane ? ctx_.plane->elect_controller() : std::string();
  if (c.forwarded || !ctx_.peer || controller_id.empty())
    co_return c.fail(503, "unavailable", "this node cannot change the map and cannot reach the controller");
  auto res = co_await forward(c, controller_id);
  if (res.status == 503 && res.body.find("did not answer") != std::string::npos)
    co_return c.fail(503, "unavailable", "the controller " + quoted(controller_id) +
                                             " is unreachable; index and membership changes wait for it");
  co_return res;
}

std::optional<http_response> rest_api::owner_unavailable(call& c, const index_entry& ix, const shard_entry& s) {
  const auto* n = c.snap->map->find_node(s.owner);
  if (n && n->state == node_state::up) return std::nullopt;
  return c.fail(503, "unavailable", "shard " + std::to_string(s.id) + " of index " + quoted(ix.name) + " is on node " +
                                        quoted(s.owner) + ", which is " + (n ? std::string(to_string(n->state)) : "unknown"));
}

awaitable<rest_api::stats_view> rest_api::collect_stats(const partition_map& m, const std::string* only_index) {
  stats_view view;
  std::set<std::string> remote;
  for (const auto& [name, ix] : m.indexes) {
    if (only_index && name != *only_index) continue;
    for (const auto& s : ix.shards) {
      if (s.owner == ctx_.config.node_id || !ctx_.peer) {
        if (auto st = ctx_.store.stats(ix.id, s.id)) view.shards[{ix.id, s.id}] = *st;
      } else {
        remote.insert(s.owner);
      }
    }
  }
  std::vector<std::string> asked;
  std::vector<awaitable<result<peer::frame>>> calls;
  for (const auto& node : remote) {
    const auto* n = m.find_node(node);
    if (!n || n->state != node_state::up) {
      view.unreachable[node] = n ? std::string(to_string(n->state)) : "unknown";
      continue;
    }
    asked.push_back(node);
    calls.push_back(ctx_.peer->call(node, make_frame(peer::frame_type::node_stats, {}, m.version),
                                    std::chrono::milliseconds(ctx_.config.request_timeout_ms)));
  }
  auto replies = co_await gather(std::move(calls));
  for (std::size_t i = 0; i < replies.size(); ++i) {
    if (!replies[i]) {
      view.unreachable[asked[i]] = replies[i].error().detail;
      continue;
    }
    auto st = peer::decode_stats_reply(replies[i]->payload);
    if (!st) {
      view.unreachable[asked[i]] = "unreadable stats";
      continue;
    }
    for (const auto& s : st->shards) view.shards[{s.index_id, s.shard_id}] = {s.records, s.bytes};
  }
  co_return view;
}

result<peer::stats_reply> rest_api::local_stats() const {
  peer::stats_reply out;
  const auto snap = ctx_.ring.snapshot();
  // Owned shards only: a shard being imported here is counted by its owner until the commit.
  for (const auto& r : local_ranges(*snap->map, ctx_.config.node_id, true))
    if (auto st = ctx_.store.stats(r.index_id, r.shard_id)) out.shards.push_back({r.index_id, r.shard_id, st->records, st->bytes});
  return out;
}

awaitable<result<std::vector<storage::op_status>>> rest_api::write_on(const std::string& node, std::uint32_t index_id,
                                                                      std::vector<storage::write_op> ops) {
  if (node == ctx_.config.node_id || !ctx_.peer) co_return co_await async_write(ctx_.store, std::move(ops));
  peer::write_request w;
  w.index_id = index_id;
  w.ops.reserve(ops.size());
  for (auto& op : ops)
    w.ops.push_back({static_cast<std::uint8_t>(op.kind == storage::op_kind::put ? 0 : 1), std::move(op.key), std::move(op.value)});
  auto frame = make_frame(peer::frame_type::write_ops, peer::encode(w), ctx_.ring.snapshot()->map->version);
  auto r = co_await ctx_.peer->call(node, std::move(frame), std::chrono::milliseconds(ctx_.config.request_timeout_ms));
  if (!r) co_return r.error();
  auto reply = peer::decode_write_reply(r->payload);
  if (!reply) co_return reply.error();
  if (reply->statuses.size() != w.ops.size()) co_return make_error(errc::internal, "write reply of the wrong size");
  std::vector<storage::op_status> out;
  for (auto st : reply->statuses) out.push_back(static_cast<storage::op_status>(st));
  co_return out;
}

// --- health ---------------------------------------------------------------------------------

http_response rest_api::health(call& c) {
  json::object o;
  const bool stopping = ctx_.stopping.load();
  o["status"] = stopping ? "stopping" : "ok";
  o["node"] = ctx_.config.node_id;
  o["cluster"] = ctx_.config.cluster_id;
  o["role"] = ctx_.ctl ? "controller" : "member";
  o["map_version"] = c.snap->map->version;
  o["version"] = SHARDD_VERSION;
  return json_response(stopping ? 503 : 200, json::serialize(o));
}

// --- indexes --------------------------------------------------------------------------------

namespace {

json::object shard_json(const index_entry& ix, const shard_entry& s, const storage::shard_stats* st) {
  json::object o;
  o["index"] = ix.name;
  o["shard"] = s.id;
  o["start"] = bound_to_text(ix.strategy, s.start);
  if (s.end)
    o["end"] = bound_to_text(ix.strategy, *s.end);
  else
    o["end"] = nullptr;
  o["node"] = s.owner;
  o["state"] = to_string(s.state);
  if (!s.target.empty()) o["target"] = s.target;
  if (st) {
    o["records"] = st->records;
    o["bytes"] = st->bytes;
  } else {
    o["records"] = nullptr;  // the owner did not answer
    o["bytes"] = nullptr;
  }
  return o;
}

std::vector<std::string> shard_row(const index_entry& ix, const shard_entry& s, const storage::shard_stats* st) {
  return {ix.name, std::to_string(s.id), bound_to_text(ix.strategy, s.start), s.end ? bound_to_text(ix.strategy, *s.end) : "-",
          s.owner, std::string(to_string(s.state)), st ? std::to_string(st->records) : "?",
          st ? std::to_string(st->bytes) : "?"};
}

json::array unreachable_json(const std::map<std::string, std::string>& u) {
  json::array a;
  for (const auto& [node, why] : u) {
    json::object o;
    o["node"] = node;
    o["reason"] = why;
    a.push_back(std::move(o));
  }
  return a;
}

}  // namespace

awaitable<http_response> rest_api::get_index(call& c, const std::string& name, unsigned status) {
  const auto* ix = c.snap->map->find_index(name);
  if (!ix) co_return c.fail(404, "not-found", "index " + quoted(name) + " does not exist");
  auto view = co_await collect_stats(*c.snap->map, &name);
  json::array shards;
  std::uint64_t records = 0, bytes = 0;
  bool complete = true;
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : ix->shards) {
    const auto* st = view.find(*ix, s);
    if (st) {
      records += st->records;
      bytes += st->bytes;
    } else {
      complete = false;
    }
    rows.push_back(shard_row(*ix, s, st));
    shards.push_back(shard_json(*ix, s, st));
  }
  if (c.text()) {
    for (auto& r : rows) r.erase(r.begin());
    co_return text_response(render_table({"shard", "start", "end", "node", "state", "records", "bytes"}, rows));
  }
  json::object o;
  o["name"] = ix->name;
  o["id"] = ix->id;
  o["partitioning"] = to_string(ix->strategy);
  o["shard_count"] = ix->shards.size();
  o["records"] = records;
  o["bytes"] = bytes;
  o["complete"] = complete;  // false: some owners did not answer; records and bytes are partial
  if (!view.unreachable.empty()) o["unreachable"] = unreachable_json(view.unreachable);
  o["map_version"] = c.snap->map->version;
  o["shards"] = std::move(shards);
  co_return json_response(status, json::serialize(o));
}

awaitable<http_response> rest_api::list_indexes(call& c) {
  auto view = co_await collect_stats(*c.snap->map, nullptr);
  json::array list;
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, ix] : c.snap->map->indexes) {
    std::uint64_t records = 0, bytes = 0;
    bool complete = true;
    for (const auto& s : ix.shards) {
      if (const auto* st = view.find(ix, s)) {
        records += st->records;
        bytes += st->bytes;
      } else {
        complete = false;
      }
    }
    rows.push_back({name, std::string(to_string(ix.strategy)), std::to_string(ix.shards.size()),
                    complete ? std::to_string(records) : "?", complete ? std::to_string(bytes) : "?"});
    json::object o;
    o["name"] = name;
    o["partitioning"] = to_string(ix.strategy);
    o["shards"] = ix.shards.size();
    o["records"] = records;
    o["bytes"] = bytes;
    o["complete"] = complete;
    list.push_back(std::move(o));
  }
  if (c.text()) co_return text_response(render_table({"index", "partitioning", "shards", "records", "bytes"}, rows));
  json::object o;
  o["indexes"] = std::move(list);
  if (!view.unreachable.empty()) o["unreachable"] = unreachable_json(view.unreachable);
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, json::serialize(o));
}

awaitable<http_response> rest_api::put_index(call& c, const std::string& name) {
  index_spec spec;
  spec.shards = ctx_.config.default_shards;
  const auto body_start = c.req.body.find_first_not_of(" \t\r\n");
  if (body_start != std::string::npos) {
    auto parsed = parse_json(c.req.body, "request body");
    if (!parsed) co_return c.fail(parsed.error());
    if (!parsed->is_object()) co_return c.fail(400, "invalid-argument", "index settings must be a JSON object");
    json_fields f(parsed->get_object(), "");
    auto p = f.opt_string("partitioning");
    if (!p) co_return c.fail(p.error());
    if (*p) {
      auto strategy = parse_partitioning(**p);
      if (!strategy) co_return c.fail(400, "invalid-argument", "partitioning: must be \"hash\" or \"range\"");
      spec.strategy = *strategy;
    }
    const bool has_shards = f.find("shards") != nullptr;
    auto shards = f.opt_u64("shards", spec.shards, 1, max_shards_per_index);
    if (!shards) co_return c.fail(shards.error());
    spec.shards = static_cast<std::uint32_t>(*shards);
    auto points = f.opt_array("split_points");
    if (!points) co_return c.fail(points.error());
    if (*points) {
      for (const auto& v : **points) {
        if (!v.is_string()) co_return c.fail(400, "invalid-argument", "split_points: every split point must be a string");
        spec.split_points.emplace_back(v.get_string());
      }
    }
    if (auto fin = f.finish(); !fin) co_return c.fail(fin.error());
    if (spec.strategy == partitioning::range && has_shards)
      co_return c.fail(400, "invalid-argument",
                       "shards: applies to hash partitioning; a range index starts with one shard per split_points interval");
    if (spec.strategy == partitioning::hash && *points)
      co_return c.fail(400, "invalid-argument", "split_points: applies to range partitioning only");
  }
  if (!ctx_.ctl) co_return co_await to_controller(c);
  auto r = co_await ctx_.ctl->create_index(name, std::move(spec));
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  auto res = co_await get_index(c, name, 201);
  res.set_header("Location", "/v1/indexes/" + name);
  co_return res;
}

awaitable<http_response> rest_api::delete_index(call& c, const std::string& name) {
  if (!ctx_.ctl) co_return co_await to_controller(c);
  auto r = co_await ctx_.ctl->drop_index(name);
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  json::object o;
  o["acknowledged"] = true;
  o["index"] = name;
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, json::serialize(o));
}

awaitable<http_response> rest_api::count(call& c, const index_entry& ix) {
  auto view = co_await collect_stats(*c.snap->map, &ix.name);
  std::uint64_t n = 0;
  for (const auto& s : ix.shards) {
    const auto* st = view.find(ix, s);
    if (!st) {
      // A count must be exact: a shard whose owner does not answer makes it unknowable.
      auto why = view.unreachable.count(s.owner) ? view.unreachable[s.owner] : "no stats";
      co_return c.fail(503, "unavailable", "shard " + std::to_string(s.id) + " of index " + quoted(ix.name) +
                                               " is on node " + quoted(s.owner) + ", which did not answer (" + why + ")");
    }
    n += st->records;
  }
  json::object o;
  o["index"] = ix.name;
  o["count"] = n;
  o["shards"] = ix.shards.size();
  co_return json_response(200, json::serialize(o));
}

awaitable<http_response> rest_api::list_shards(call& c) {
  const std::string* only = c.param("index");
  if (only && !c.snap->map->find_index(*only))
    co_return c.fail(404, "not-found", "index " + quoted(*only) + " does not exist");
  auto view = co_await collect_stats(*c.snap->map, only);
  json::array list;
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, ix] : c.snap->map->indexes) {
    if (only && name != *only) continue;
    for (const auto& s : ix.shards) {
      const auto* st = view.find(ix, s);
      rows.push_back(shard_row(ix, s, st));
      list.push_back(shard_json(ix, s, st));
    }
  }
  if (c.text())
    co_return text_response(render_table({"index", "shard", "start", "end", "node", "state", "records", "bytes"}, rows));
  json::object o;
  o["shards"] = std::move(list);
  if (!view.unreachable.empty()) o["unreachable"] = unreachable_json(view.unreachable);
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, json::serialize(o));
}

// --- records --------------------------------------------------------------------------------

namespace {

/// Parses and re-serialises a document: the stored form is compact, canonical JSON.
result<std::string> normalize_doc(std::string_view body, std::size_t max_bytes) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos)
    return make_error(errc::invalid_argument, "the body must be a JSON document; it is empty");
  auto v = parse_json(body, "document");
  if (!v) return v.error();
  auto out = json::serialize(*v);
  if (out.size() > max_bytes)
    return make_error(errc::too_large, "document is " + std::to_string(out.size()) + " bytes; the limit is " +
                                           std::to_string(max_bytes));
  return out;
}

std::string record_json(const index_entry& ix, std::uint32_t shard, std::string_view key, std::string_view doc) {
  std::string out;
  out.reserve(doc.size() + key.size() + ix.name.size() + 48);
  out.append("{\"index\":");
  append_json_string(out, ix.name);
  out.append(",\"key\":");
  append_json_string(out, key);
  out.append(",\"shard\":").append(std::to_string(shard));
  out.append(",\"doc\":").append(doc);
  out.push_back('}');
  return out;
}

std::string write_json(const index_entry& ix, std::uint32_t shard, std::string_view key, std::string_view result) {
  std::string out = "{\"index\":";
  append_json_string(out, ix.name);
  out.append(",\"key\":");
  append_json_string(out, key);
  out.append(",\"shard\":").append(std::to_string(shard));
  out.append(",\"result\":\"").append(result).append("\"}");
  return out;
}

}  // namespace

awaitable<http_response> rest_api::record(call& c, const index_entry& ix_in, const std::string& key) {
  const index_entry* ix = &ix_in;
  for (int attempt = 0;; ++attempt) {
    const auto rt = route_key(*ix, key, c.routing());
    const auto& s = ix->shards[rt.shard_pos];
    if (s.owner == ctx_.config.node_id || !ctx_.peer) {
      http_response res;
      switch (c.req.method) {
        case http_method::put: res = co_await put_record(c, *ix, key); break;
        case http_method::get: res = co_await get_record(c, *ix, key); break;
        default: res = co_await delete_record(c, *ix, key); break;
      }
      if (res.status != moved_status) co_return res;
      // The shard is fenced for a cutover or just moved away: once the map says where it
      // lives now, serve the request there. A forwarded request tells its sender instead.
      if (c.forwarded || attempt >= 2) co_return res;
      if (!co_await await_newer_map(c, std::chrono::milliseconds(5000)))
        co_return c.fail(503, "unavailable", "shard " + std::to_string(s.id) + " of index " + quoted(ix->name) +
                                                 " is being moved; retry");
      ix = c.snap->map->find_index(ix_in.name);
      if (!ix) co_return c.fail(404, "not-found", "index " + quoted(ix_in.name) + " does not exist");
      continue;
    }
    if (c.forwarded) {
      // The sender thinks we own this shard. If our map is newer, tell it who does; if it is
      // older, we cannot tell.
      if (c.snap->map->version > c.sender_version) {
        http_response moved;
        moved.status = moved_status;
        co_return moved;
      }
      co_return c.fail(503, "unavailable", "node " + quoted(ctx_.config.node_id) + " has map version " +
                                               std::to_string(c.snap->map->version) + ", older than the sender's; retry");
    }
    if (auto u = owner_unavailable(c, *ix, s)) co_return *u;
    auto res = co_await forward(c, s.owner);
    if (res.status != moved_status) co_return res;
    if (attempt > 1 || !ctx_.plane)
      co_return c.fail(503, "unavailable", "the owner of the record moved twice meanwhile; retry");
    // Our map is stale, or the owner is in a cutover: wait for the newest map and retry, like a
    // Redis MOVED the client never sees.
    if (auto caught = co_await catch_up_map(c, std::chrono::milliseconds(5000)); !caught)
      co_return c.fail(503, "unavailable", "map out of date and the controller is unreachable: " + caught.error().detail);
    ix = c.snap->map->find_index(ix_in.name);
    if (!ix) co_return c.fail(404, "not-found", "index " + quoted(ix_in.name) + " does not exist");
  }
}

awaitable<http_response> rest_api::put_record(call& c, const index_entry& ix, const std::string& key) {
  auto doc = normalize_doc(c.req.body, ctx_.config.max_doc_bytes);
  if (!doc) co_return c.fail(doc.error());
  auto rt = route_key(ix, key, c.routing());
  const auto shard_id = ix.shards[rt.shard_pos].id;
  std::vector<storage::write_op> ops;
  ops.push_back(storage::write_op{storage::op_kind::put, std::move(rt.storage_key), std::move(*doc)});
  auto r = co_await async_write(ctx_.store, std::move(ops));
  if (!r) co_return c.fail(r.error());
  switch ((*r)[0]) {
    case storage::op_status::created: co_return json_response(201, write_json(ix, shard_id, key, "created"));
    case storage::op_status::updated: co_return json_response(200, write_json(ix, shard_id, key, "updated"));
    default: {
      http_response moved;
      moved.status = moved_status;  // fenced, or no longer here: the caller re-routes
      co_return moved;
    }
  }
}

awaitable<http_response> rest_api::get_record(call& c, const index_entry& ix, const std::string& key) {
  auto rt = route_key(ix, key, c.routing());
  const auto shard_id = ix.shards[rt.shard_pos].id;
  if (ctx_.store.is_fenced(rt.storage_key)) {
    // A cutover is moving this shard: the new owner may take writes before this node learns
    // of it, so reads wait for the new map too.
    http_response moved;
    moved.status = moved_status;
    co_return moved;
  }
  std::string value;
  auto st = ctx_.store.get_cached(rt.storage_key, value);
  if (st == storage::store::read_status::would_block) {
    // Not in memory: read from disk on the pool, never on this strand. (A named closure:
    // GCC 12 destroys temporaries inside a co_await operand twice.)
    auto read = [&s = ctx_.store, k = rt.storage_key] { return s.get(k); };
    auto got = co_await on_pool(ctx_.read_pool, std::move(read));
    if (!got) co_return c.fail(got.error());
    if (*got) {
      value = std::move(**got);
      st = storage::store::read_status::found;
    } else {
      st = storage::store::read_status::not_found;
    }
  }
  if (st == storage::store::read_status::not_found)
    co_return c.fail(404, "not-found", "record " + quoted(key) + " not found in index " + quoted(ix.name));
  co_return json_response(200, record_json(ix, shard_id, key, value));
}

awaitable<http_response> rest_api::delete_record(call& c, const index_entry& ix, const std::string& key) {
  auto rt = route_key(ix, key, c.routing());
  const auto shard_id = ix.shards[rt.shard_pos].id;
  std::vector<storage::write_op> ops;
  ops.push_back(storage::write_op{storage::op_kind::del, std::move(rt.storage_key), {}});
  auto r = co_await async_write(ctx_.store, std::move(ops));
  if (!r) co_return c.fail(r.error());
  switch ((*r)[0]) {
    case storage::op_status::deleted: co_return json_response(200, write_json(ix, shard_id, key, "deleted"));
    case storage::op_status::not_found:
      co_return c.fail(404, "not-found", "record " + quoted(key) + " not found in index " + quoted(ix.name));
    default: {
      http_response moved;
      moved.status = moved_status;
      co_return moved;
    }
  }
}

awaitable<http_response> rest_api::bulk(call& c, const index_entry& ix) {
  // NDJSON: one {"op":"put","key":K,"doc":D[,"routing":R]} or {"op":"delete","key":K[,"routing":R]}
  // per line. Bad lines are reported with their line number; the good lines are split by the
  // node owning their shard and applied, in order per owner, one group commit per owner, all
  // owners at once.
  const auto started = std::chrono::steady_clock::now();
  struct line_error {
    std::size_t line;
    unsigned status;
    std::string detail;
  };
  std::vector<line_error> errors;
  std::size_t error_count = 0;
  auto add_error = [&](std::size_t line, unsigned status, std::string detail) {
    ++error_count;
    if (errors.size() < max_reported_errors) errors.push_back({line, status, std::move(detail)});
  };

  struct owner_batch {
    std::vector<storage::write_op> ops;
    std::vector<std::size_t> lines;
  };
  std::map<std::string, owner_batch> batches;
  std::string_view body = c.req.body;
  std::size_t line_no = 0, lines = 0;
  unsigned char buffer[16384];
  json::parse_options popts;
  popts.max_depth = 64;
  json::parser parser(json::storage_ptr(), popts);
  while (!body.empty()) {
    auto nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    ++lines;
    json::monotonic_resource mr(buffer, sizeof(buffer));
    parser.reset(json::storage_ptr(&mr));
    boost::system::error_code ec;
    parser.write(line.data(), line.size(), ec);
    if (ec) {
      add_error(line_no, 400, "invalid JSON: " + ec.message());
      continue;
    }
    json::value v = parser.release();
    if (!v.is_object()) {
      add_error(line_no, 400, "each line must be a JSON object");
      continue;
    }
    const auto& obj = v.get_object();
    std::string_view op, key;
    std::optional<std::string_view> routing;
    const json::value* doc = nullptr;
    std::string bad;
    for (const auto& kv : obj) {
      if (kv.key() == "op" && kv.value().is_string())
        op = kv.value().get_string();
      else if (kv.key() == "key" && kv.value().is_string())
        key = kv.value().get_string();
      else if (kv.key() == "routing" && kv.value().is_string())
        routing = std::string_view(kv.value().get_string());
      else if (kv.key() == "doc")
        doc = &kv.value();
      else
        bad = kv.key() == "op" || kv.key() == "key" || kv.key() == "routing"
                  ? std::string(kv.key()) + " must be a string"
                  : "unknown field " + quoted(kv.key());
    }
    if (!bad.empty()) {
      add_error(line_no, 400, bad);
      continue;
    }
    if (op != "put" && op != "delete") {
      add_error(line_no, 400, op.empty() ? "op is required (\"put\" or \"delete\")" : "op must be \"put\" or \"delete\"");
      continue;
    }
    if (auto kv = validate_key(key); !kv) {
      add_error(line_no, 400, key.empty() ? "key is required" : kv.error().detail);
      continue;
    }
    if (routing && routing->empty()) {
      add_error(line_no, 400, "routing must not be empty");
      continue;
    }
    auto rt = route_key(ix, key, routing);
    storage::write_op wop;
    if (op == "put") {
      if (!doc) {
        add_error(line_no, 400, "doc is required for put");
        continue;
      }
      std::string text = json::serialize(*doc);
      if (text.size() > ctx_.config.max_doc_bytes) {
        add_error(line_no, 413, "document is " + std::to_string(text.size()) + " bytes; the limit is " +
                                    std::to_string(ctx_.config.max_doc_bytes));
        continue;
      }
      wop = storage::write_op{storage::op_kind::put, std::move(rt.storage_key), std::move(text)};
    } else {
      if (doc) {
        add_error(line_no, 400, "delete takes no doc");
        continue;
      }
      wop = storage::write_op{storage::op_kind::del, std::move(rt.storage_key), {}};
    }
    const auto& owner = ix.shards[rt.shard_pos].owner;
    auto& b = batches[ctx_.peer ? owner : ctx_.config.node_id];
    b.ops.push_back(std::move(wop));
    b.lines.push_back(line_no);
  }

  std::uint64_t created = 0, updated = 0, deleted = 0, not_found = 0;
  std::vector<std::string> owners;
  std::vector<std::vector<std::size_t>> owner_lines;
  std::vector<std::vector<storage::write_op>> sent_ops;
  std::vector<awaitable<result<std::vector<storage::op_status>>>> writes;
  for (auto& [owner, b] : batches) {
    const auto* n = c.snap->map->find_node(owner);
    if (owner != ctx_.config.node_id && (!n || n->state != node_state::up)) {
      for (auto line : b.lines)
        add_error(line, 503, "its shard is on node " + quoted(owner) + ", which is " +
                                 (n ? std::string(to_string(n->state)) : "unknown"));
      continue;
    }
    owners.push_back(owner);
    owner_lines.push_back(std::move(b.lines));
    sent_ops.push_back(b.ops);  // kept for a retry of ops that meet a fence
    writes.push_back(write_on(owner, ix.id, std::move(b.ops)));
  }
  auto results = co_await gather(std::move(writes));
  // Ops that met a fence or a shard that moved are sent again, once, where the newest map
  // says their shards live.
  for (int round = 0; round < 2; ++round) {
    std::map<std::string, owner_batch> retry;
    std::vector<std::pair<std::size_t, std::size_t>> slots;  // (owner result, op) to overwrite
    for (std::size_t o = 0; o < results.size(); ++o) {
      if (!results[o]) continue;
      for (std::size_t i = 0; i < results[o]->size(); ++i) {
        const auto st = (*results[o])[i];
        if (st != storage::op_status::fenced && st != storage::op_status::no_shard) continue;
        slots.emplace_back(o, i);
      }
    }
    if (slots.empty() || !ctx_.peer) break;
    if (!co_await await_newer_map(c, std::chrono::milliseconds(5000))) break;
    const auto* now_ix = c.snap->map->find_index(ix.name);
    if (!now_ix || now_ix->id != ix.id) break;
    // Rebuild the ops from their lines' batches.
    std::vector<std::pair<std::string, std::size_t>> where;  // new owner, position in its retry batch
    for (const auto& [o, i] : slots) {
      const auto& op = sent_ops[o][i];
      const auto pos = shard_position(*now_ix, std::string_view(op.key).substr(index_prefix_bytes, now_ix->strategy == partitioning::hash ? token_bytes : std::string::npos));
      const auto& owner = now_ix->shards[pos].owner;
      auto& b = retry[owner];
      where.emplace_back(owner, b.ops.size());
      b.ops.push_back(op);
      b.lines.push_back(owner_lines[o][i]);
    }
    std::vector<std::string> retry_owners;
    std::vector<awaitable<result<std::vector<storage::op_status>>>> again;
    for (auto& [owner, b] : retry) {
      retry_owners.push_back(owner);
      again.push_back(write_on(owner, ix.id, b.ops));
    }
    auto retried = co_await gather(std::move(again));
    for (std::size_t k = 0; k < slots.size(); ++k) {
      const auto [o, i] = slots[k];
      const auto& [owner, pos] = where[k];
      const auto ro = static_cast<std::size_t>(std::find(retry_owners.begin(), retry_owners.end(), owner) - retry_owners.begin());
      if (retried[ro]) (*results[o])[i] = (*retried[ro])[pos];
    }
  }
  for (std::size_t o = 0; o < results.size(); ++o) {
    const auto& lines_of = owner_lines[o];
    if (!results[o]) {
      for (auto line : lines_of)
        add_error(line, status_of(results[o].error().code), "node " + quoted(owners[o]) + ": " + results[o].error().detail);
      continue;
    }
    const auto& statuses = *results[o];
    for (std::size_t i = 0; i < statuses.size(); ++i) {
      switch (statuses[i]) {
        case storage::op_status::created: ++created; break;
        case storage::op_status::updated: ++updated; break;
        case storage::op_status::deleted: ++deleted; break;
        case storage::op_status::not_found: ++not_found; break;
        case storage::op_status::no_shard:
        case storage::op_status::fenced:
          add_error(lines_of[i], 409, "node " + quoted(owners[o]) + " does not hold that shard (the index was "
                                      "deleted, or the map changed meanwhile); retry");
          break;
      }
    }
  }
  std::sort(errors.begin(), errors.end(), [](const line_error& a, const line_error& b) { return a.line < b.line; });
  json::object o;
  o["index"] = ix.name;
  o["lines"] = lines;
  o["applied"] = created + updated + deleted + not_found;
  o["created"] = created;
  o["updated"] = updated;
  o["deleted"] = deleted;
  o["not_found"] = not_found;
  o["error_count"] = error_count;
  json::array errs;
  for (auto& e : errors) {
    json::object eo;
    eo["line"] = e.line;
    eo["status"] = e.status;
    eo["detail"] = e.detail;
    errs.push_back(std::move(eo));
  }
  o["errors"] = std::move(errs);
  o["took_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  co_return json_response(200, json::serialize(o));
}

// --- scans ----------------------------------------------------------------------------------

awaitable<result<peer::scan_reply>> rest_api::local_scan(peer::scan_request q) {
  const auto snap = ctx_.ring.snapshot();
  const auto* ix = snap->map->find_index(q.index);
  if (!ix) co_return make_error(errc::not_found, "index " + quoted(q.index) + " does not exist");
  const auto* s = ix->find_shard(q.shard);
  if (!s || (ctx_.peer && s->owner != ctx_.config.node_id))
    co_return make_error(errc::conflict, "shard " + std::to_string(q.shard) + " of " + quoted(q.index) + " is not on node " +
                                             quoted(ctx_.config.node_id));
  const auto sr = shard_storage_range(*ix, *s);
  if (q.begin < sr.begin || q.end > sr.end || !(q.begin < q.end))
    co_return make_error(errc::invalid_argument, "scan range outside shard " + std::to_string(q.shard));
  // Hash indexes store keys in token order: bounds and prefix are a filter on the user key.
  std::function<bool(std::string_view)> keep;
  if (ix->strategy == partitioning::hash && (q.key_start || q.key_end || q.key_prefix)) {
    keep = [start = q.key_start, end = q.key_end, prefix = q.key_prefix](std::string_view k) {
      auto user = k.substr(index_prefix_bytes + token_bytes);
      if (start && user < *start) return false;
      if (end && user >= *end) return false;
      if (prefix && !user.starts_with(*prefix)) return false;
      return true;
    };
  }
  auto work = [&store = ctx_.store, q = std::move(q), keep = std::move(keep)]() -> result<peer::scan_reply> {
    auto got = store.scan(key_range{q.begin, q.end}, q.after, q.limit, keep, std::max<std::size_t>(q.max_examined, 1),
                          max_scan_bytes);
    if (!got) return got.error();
    peer::scan_reply out;
    out.records.reserve(got->records.size());
    for (auto& r : got->records) out.records.emplace_back(std::move(r.key), std::move(r.value));
    out.resume_after = std::move(got->resume_after);
    out.examined = static_cast<std::uint32_t>(got->examined);
    return out;
  };
  co_return co_await on_pool(ctx_.read_pool, std::move(work));
}

awaitable<http_response> rest_api::scan(call& c, const index_entry& ix) {
  std::size_t limit = default_scan_limit;
  if (auto l = c.param("limit")) {
    const auto v = parse_decimal(*l, 1, max_scan_limit);
    if (!v) co_return c.fail(400, "invalid-argument", "limit must be an integer from 1 to " + std::to_string(max_scan_limit));
    limit = static_cast<std::size_t>(*v);
  }
  const std::string* start = c.param("start");
  const std::string* end = c.param("end");
  const std::string* prefix = c.param("prefix");
  const auto whole = index_storage_range(ix);
  std::optional<std::string> after;
  if (auto cur = c.param("cursor")) {
    auto decoded = base64url_decode(*cur);
    if (!decoded || !whole.contains(*decoded))
      co_return c.fail(400, "invalid-argument", "cursor is not a cursor of index " + quoted(ix.name));
    after = std::move(*decoded);
  }

  // Range indexes keep keys in order: bounds narrow the storage range itself. Hash indexes
  // store keys in token order: bounds and prefix become a filter on the user key.
  key_range range = whole;
  std::optional<std::string> key_start, key_end, key_prefix;
  if (ix.strategy == partitioning::range) {
    std::string lo = start ? *start : std::string();
    std::optional<std::string> hi;
    if (end) hi = *end;
    if (prefix) {
      lo = std::max(lo, *prefix);
      auto succ = prefix_successor(*prefix);
      if (succ && (!hi || *succ < *hi)) hi = succ;
    }
    range = storage_range(ix.id, lo, hi);
  } else {
    if (start) key_start = *start;
    if (end) key_end = *end;
    if (prefix) key_prefix = *prefix;
  }

  // Walk the shards in order; each is one contiguous storage range, read where it lives.
  std::vector<std::pair<std::string, std::string>> records;
  std::optional<std::string> resume;
  std::size_t budget = max_scan_examined;
  std::size_t pos = 0;
  const index_entry* cur = &ix;
  int refreshes = 0;
  for (; pos < cur->shards.size(); ++pos) {
    const auto& s = cur->shards[pos];
    const auto sr = shard_storage_range(*cur, s);
    key_range r{std::max(sr.begin, range.begin), std::min(sr.end, range.end)};
    if (!(r.begin < r.end)) continue;
    if (after && *after >= r.end) continue;
    peer::scan_request q{ix.name, s.id, r.begin, r.end, after, static_cast<std::uint32_t>(limit - records.size()),
                         static_cast<std::uint32_t>(std::max<std::size_t>(budget, 1)), key_start, key_end, key_prefix};
    result<peer::scan_reply> page = make_error(errc::internal, "unset");
    if (s.owner == ctx_.config.node_id || !ctx_.peer) {
      page = co_await local_scan(std::move(q));
    } else {
      if (auto u = owner_unavailable(c, *cur, s)) co_return *u;
      auto frame = make_frame(peer::frame_type::scan_shard, peer::encode(q), c.snap->map->version);
      auto r2 = co_await ctx_.peer->call(s.owner, std::move(frame), std::chrono::milliseconds(ctx_.config.request_timeout_ms));
      if (!r2)
        page = make_error(r2.error().code == errc::conflict ? errc::conflict : errc::unavailable,
                          "node " + quoted(s.owner) + " (shard " + std::to_string(s.id) + "): " + r2.error().detail);
      else
        page = peer::decode_scan_reply(r2->payload);
    }
    if (!page && page.error().code == errc::conflict && refreshes < 2 && ctx_.peer) {
      // The shard is not where this map says: its move just committed and this map is stale,
      // or the owner has not installed the map that gave it the shard yet. Take the newest map
      // (or give the owner a moment), then go on from the last record taken, as a point read
      // does.
      ++refreshes;
      (void)co_await catch_up_map(c, std::chrono::milliseconds(1000));  // unreachable: retry as is
      const index_entry* now = c.snap->map->find_index(ix.name);
      if (!now || now->id != ix.id) co_return c.fail(404, "not-found", "index " + quoted(ix.name) + " does not exist");
      cur = now;
      if (!records.empty()) after = records.back().first;
      pos = static_cast<std::size_t>(-1);  // the loop's ++ starts again at the first shard;
      continue;                              // shards before `after` are skipped
    }
    if (!page) co_return c.fail(page.error());
    budget -= std::min<std::size_t>(budget, page->examined);
    for (auto& rec : page->records) records.push_back(std::move(rec));
    if (page->resume_after) {
      resume = std::move(page->resume_after);
      break;
    }
    if (records.size() >= limit) break;
  }
  if (!resume && records.size() >= limit && !records.empty()) {
    // Full at a shard's end: offer a cursor if a later shard can hold more. (The next page
    // may come back empty if they hold nothing.)
    for (std::size_t p = pos + 1; p < cur->shards.size(); ++p) {
      const auto sr = shard_storage_range(*cur, cur->shards[p]);
      if (std::max(sr.begin, range.begin) < std::min(sr.end, range.end)) {
        resume = records.back().first;
        break;
      }
    }
  }

  auto user_key = [&](std::string_view storage_key) {
    return ix.strategy == partitioning::hash ? storage_key.substr(index_prefix_bytes + token_bytes)
                                             : storage_key.substr(index_prefix_bytes);
  };
  if (c.text()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& [k, v] : records) rows.push_back({std::string(user_key(k)), v});
    co_return text_response(render_table({"key", "doc"}, rows));
  }
  std::string out = "{\"index\":";
  append_json_string(out, ix.name);
  out.append(",\"records\":[");
  bool first = true;
  for (const auto& [k, v] : records) {
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"key\":");
    append_json_string(out, user_key(k));
    out.append(",\"doc\":").append(v).push_back('}');
  }
  out.append("],\"count\":").append(std::to_string(records.size()));
  out.append(",\"next_cursor\":");
  if (resume)
    append_json_string(out, base64url_encode(*resume));
  else
    out.append("null");
  out.push_back('}');
  co_return json_response(200, std::move(out));
}


// --- migrations -------------------------------------------------------------------------------

awaitable<bool> rest_api::await_newer_map(call& c, std::chrono::milliseconds limit) {
  const auto seen = c.snap->map->version;
  const auto until = std::chrono::steady_clock::now() + limit;
  asio::steady_timer t(co_await asio::this_coro::executor);
  while (std::chrono::steady_clock::now() < until) {
    auto now = ctx_.ring.snapshot();
    if (now->map->version > seen) {
      c.snap = std::move(now);
      co_return true;
    }
    t.expires_after(std::chrono::milliseconds(2));
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return false;
}

awaitable<result<void>> rest_api::catch_up_map(call& c, std::chrono::milliseconds limit) {
  if (co_await await_newer_map(c, limit) || !ctx_.plane) co_return result<void>{};
  auto fresh = co_await ctx_.plane->load();
  if (!fresh) co_return fresh.error();
  if ((*fresh)->map->version > c.snap->map->version) c.snap = *fresh;
  co_return result<void>{};
}

namespace {

json::object migration_json(const migration_record& r) {
  auto v = json::parse(to_json(r)).as_object();
  // Progress and time left, from the bytes moved and the current rate.
  v["progress"] = migration_progress(r);
  if (r.rate_bytes_per_sec > 0 && r.bytes_total > r.bytes_done && !is_final(r.phase))
    v["eta_seconds"] = static_cast<double>(r.bytes_total - r.bytes_done) / static_cast<double>(r.rate_bytes_per_sec);
  else
    v["eta_seconds"] = nullptr;
  return v;
}

}  // namespace

awaitable<http_response> rest_api::migrate_shard(call& c, const std::string& index, std::uint32_t shard) {
  auto parsed = parse_json(c.req.body, "request body");
  if (!parsed) co_return c.fail(parsed.error());
  if (!parsed->is_object()) co_return c.fail(400, "invalid-argument", "migration settings must be a JSON object");
  json_fields f(parsed->get_object(), "");
  migrate_request q;
  q.index = index;
  q.shard = shard;
  auto target = f.req_string("target");
  if (!target) co_return c.fail(target.error());
  q.target = *target;
  auto pr = f.opt_string("priority");
  if (!pr) co_return c.fail(pr.error());
  if (*pr) {
    auto p = parse_priority(**pr);
    if (!p) co_return c.fail(400, "invalid-argument", "priority: must be \"high\", \"normal\" or \"low\"");
    q.priority = *p;
  }
  auto bps = f.opt_u64("max_bytes_per_sec", 0);
  if (!bps) co_return c.fail(bps.error());
  q.max_bytes_per_sec = *bps;
  if (auto fin = f.finish(); !fin) co_return c.fail(fin.error());
  if (!ctx_.ctl) co_return co_await to_controller(c);
  auto r = co_await ctx_.ctl->migrate(std::move(q));
  if (!r) co_return c.fail(r.error());
  auto res = json_response(202, to_json_text(migration_json(*r)));
  res.set_header("Location", "/v1/migrations/" + r->id);
  co_return res;
}

awaitable<http_response> rest_api::split_shard(call& c, const std::string& index, std::uint32_t shard) {
  if (!ctx_.ctl) co_return co_await to_controller(c);
  auto r = co_await ctx_.ctl->split(index, shard);
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  const auto* ix = c.snap->map->find_index(index);
  json::object o;
  o["index"] = index;
  o["split"] = shard;
  const shard_entry* upper = nullptr;
  for (const auto& sh : ix->shards)
    if (sh.id + 1 == ix->next_shard_id) upper = &sh;
  json::array halves;
  for (const auto* sh : {ix->find_shard(shard), upper})
    if (sh) halves.push_back(shard_json(*ix, *sh, nullptr));
  o["shards"] = std::move(halves);
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, json::serialize(o));
}

awaitable<http_response> rest_api::list_migrations(call& c, const std::string* id) {
  if (!ctx_.ctl) co_return co_await to_controller(c);
  // A named local: GCC 12 miscompiles a conditional expression inside a co_await operand.
  std::optional<std::string> which;
  if (id) which = *id;
  auto r = co_await ctx_.ctl->migrations(std::move(which));
  if (!r) co_return c.fail(r.error());
  if (id) co_return json_response(200, to_json_text(migration_json(r->front())));
  const std::string* state = c.param("state");
  if (state && *state != "active" && *state != "finished" && !parse_phase(*state))
    co_return c.fail(400, "invalid-argument", "state must be a phase, \"active\" or \"finished\"");
  json::array list;
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : *r) {
    if (state) {
      if (*state == "active" && is_final(m.phase)) continue;
      if (*state == "finished" && !is_final(m.phase)) continue;
      if (*state != "active" && *state != "finished" && to_string(m.phase) != *state) continue;
    }
    char pct[16];
    std::snprintf(pct, sizeof pct, "%.0f%%", 100.0 * migration_progress(m));
    rows.push_back({m.id, m.index, std::to_string(m.shard), m.source, m.target, std::string(to_string(m.phase)) + (m.paused ? " (paused)" : ""),
                    pct, std::to_string(m.records_done), std::to_string(m.bytes_done), std::to_string(m.rate_bytes_per_sec),
                    std::string(to_string(m.priority)), m.reason, m.error.empty() ? "-" : m.error});
    list.push_back(migration_json(m));
  }
  if (c.text())
    co_return text_response(render_table({"id", "index", "shard", "from", "to", "phase", "progress", "records", "bytes",
                                          "rate_bps", "priority", "reason", "error"},
                                         rows));
  json::object o;
  o["migrations"] = std::move(list);
  co_return json_response(200, to_json_text(o));
}

awaitable<http_response> rest_api::control_migration(call& c, const std::string& id, const std::string& command) {
  if (!ctx_.ctl) co_return co_await to_controller(c);
  auto r = co_await ctx_.ctl->control_migration(id, command);
  if (!r) co_return c.fail(r.error());
  co_return json_response(202, to_json_text(migration_json(*r)));
}

awaitable<http_response> rest_api::migration_settings(call& c) {
  const auto& cur = c.snap->map->settings;
  auto render = [](const cluster_settings& st, std::uint64_t version) {
    json::object o;
    o["max_bytes_per_sec"] = st.migration_bytes_per_sec;
    o["max_outgoing"] = st.max_outgoing;
    o["max_incoming"] = st.max_incoming;
    o["convergence"] = st.convergence;
    o["convergence_batch"] = st.convergence_batch;
    o["map_version"] = version;
    return json::serialize(o);
  };
  if (c.req.method == http_method::get) co_return json_response(200, render(cur, c.snap->map->version));
  auto parsed = parse_json(c.req.body, "request body");
  if (!parsed) co_return c.fail(parsed.error());
  if (!parsed->is_object()) co_return c.fail(400, "invalid-argument", "settings must be a JSON object");
  json_fields f(parsed->get_object(), "");
  cluster_settings next = cur;
  auto bps = f.opt_u64("max_bytes_per_sec", cur.migration_bytes_per_sec);
  if (!bps) co_return c.fail(bps.error());
  next.migration_bytes_per_sec = *bps;
  auto out = f.opt_u64("max_outgoing", cur.max_outgoing, 1, 1000);
  if (!out) co_return c.fail(out.error());
  next.max_outgoing = static_cast<std::uint32_t>(*out);
  auto in = f.opt_u64("max_incoming", cur.max_incoming, 1, 1000);
  if (!in) co_return c.fail(in.error());
  next.max_incoming = static_cast<std::uint32_t>(*in);
  auto conv = f.opt_bool("convergence", cur.convergence);
  if (!conv) co_return c.fail(conv.error());
  next.convergence = *conv;
  auto batch = f.opt_u64("convergence_batch", cur.convergence_batch, 1, 1000);
  if (!batch) co_return c.fail(batch.error());
  next.convergence_batch = static_cast<std::uint32_t>(*batch);
  if (auto fin = f.finish(); !fin) co_return c.fail(fin.error());
  if (!ctx_.ctl) co_return co_await to_controller(c);
  auto r = co_await ctx_.ctl->set_settings(next);
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  co_return json_response(200, render(c.snap->map->settings, c.snap->map->version));
}

awaitable<http_response> rest_api::decommission(call& c, const std::string& id) {
  if (!ctx_.ctl) co_return co_await to_controller(c);
  auto r = co_await ctx_.ctl->decommission(id);
  if (!r) co_return c.fail(r.error());
  json::object o;
  o["node"] = id;
  o["state"] = "draining";
  json::array ms;
  for (const auto& m : *r) ms.push_back(json::value(m.id));
  o["migrations"] = std::move(ms);
  co_return json_response(202, json::serialize(o));
}

awaitable<result<peer::median_reply>> rest_api::local_median(peer::median_request q) {
  const auto snap = ctx_.ring.snapshot();
  const auto* ix = snap->map->find_index(q.index);
  const auto* sh = ix ? ix->find_shard(q.shard) : nullptr;
  if (!sh || sh->owner != ctx_.config.node_id)
    co_return make_error(errc::conflict, "shard " + std::to_string(q.shard) + " of '" + q.index + "' is not on this node");
  const auto range = shard_storage_range(*ix, *sh);
  const auto total = ctx_.store.stats(ix->id, sh->id).value_or(storage::shard_stats{}).records;
  if (static const std::uint32_t delay_ms = test_fault("median_delay_ms"); delay_ms > 0) {
    asio::steady_timer t(co_await asio::this_coro::executor);  // a shard slow to walk, for tests
    t.expires_after(std::chrono::milliseconds(delay_ms));
    (void)co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  auto work = [&store = ctx_.store, range, total]() -> result<peer::median_reply> {
    peer::median_reply out;
    out.records = total;
    if (total < 2) return out;
    // Walk to the middle record; its key starts the upper half.
    std::uint64_t seen = 0;
    std::optional<std::string> after;
    while (seen <= total / 2) {
      auto page = store.scan(range, after, std::min<std::uint64_t>(10000, total / 2 - seen + 1));
      if (!page) return page.error();
      if (page->records.empty()) break;
      seen += page->records.size();
      if (seen > total / 2) {
        out.key = page->records.back().key.substr(index_prefix_bytes);
        break;
      }
      after = page->records.back().key;
    }
    return out;
  };
  co_return co_await on_pool(ctx_.read_pool, std::move(work));
}

// --- cluster, ring, partition map ----------------------------------------------------------

awaitable<http_response> rest_api::get_cluster(call& c) {
  bool reachable = true;
  if (!ctx_.ctl && ctx_.peer && ctx_.plane && !c.forwarded) {
    // The controller knows the leases; ask it, and fall back to what this node knows.
    const auto controller_id = ctx_.plane->elect_controller();
    auto res = co_await forward(c, controller_id);
    if (res.status == 200) co_return res;
    reachable = false;
  }
  std::map<std::string, member_status> members;
  std::map<std::string, std::uint32_t> moving_out, moving_in;
  if (ctx_.ctl) {
    auto m = co_await ctx_.ctl->members();
    if (m)
      for (auto& st : *m) members[st.node_id] = st;
    if (auto ms = co_await ctx_.ctl->migrations(std::nullopt); ms)
      for (const auto& mr : *ms)
        if (!is_final(mr.phase)) {
          ++moving_out[mr.source];
          ++moving_in[mr.target];
        }
  }
  const auto& map = *c.snap->map;
  std::map<std::string, std::uint32_t> shard_counts;
  for (const auto& [name, ix] : map.indexes)
    for (const auto& s : ix.shards) ++shard_counts[s.owner];
  std::uint64_t self_records = 0, self_bytes = 0;
  if (auto st = local_stats(); st)
    for (const auto& s : st->shards) {
      self_records += s.records;
      self_bytes += s.bytes;
    }
  json::array nodes;
  std::vector<std::vector<std::string>> rows;
  for (const auto& [id, n] : map.nodes) {
    json::object o;
    o["id"] = id;
    o["rest_address"] = n.rest_address;
    o["peer_address"] = n.peer_address;
    o["state"] = to_string(n.state);
    o["weight"] = n.weight;
    o["shards"] = shard_counts[id];
    o["controller"] = id == map.controller;
    o["migrations_out"] = moving_out[id];  // shards queued or moving off this node (draining: what is left)
    o["migrations_in"] = moving_in[id];
    std::optional<std::uint64_t> records, bytes;
    std::optional<std::int64_t> heartbeat;
    if (id == ctx_.config.node_id) {
      records = self_records;
      bytes = self_bytes;
      heartbeat = 0;
    } else if (auto it = members.find(id); it != members.end()) {
      if (it->second.since_heartbeat) {
        records = it->second.records;
        bytes = it->second.bytes;
        heartbeat = it->second.since_heartbeat->count();
      }
    }
    if (records) o["records"] = *records; else o["records"] = nullptr;
    if (bytes) o["bytes"] = *bytes; else o["bytes"] = nullptr;
    if (heartbeat) o["last_heartbeat_ms"] = *heartbeat; else o["last_heartbeat_ms"] = nullptr;
    rows.push_back({id, std::string(to_string(n.state)), std::to_string(n.weight), std::to_string(shard_counts[id]),
                    records ? std::to_string(*records) : "-", bytes ? std::to_string(*bytes) : "-",
                    heartbeat ? std::to_string(*heartbeat) : "-", n.rest_address, n.peer_address,
                    id == map.controller ? "*" : ""});
    nodes.push_back(std::move(o));
  }
  if (c.text())
    co_return text_response(render_table(
        {"node", "state", "weight", "shards", "records", "bytes", "heartbeat_ms", "rest", "peer", "controller"}, rows));
  json::object o;
  o["cluster_id"] = map.cluster_id;
  o["controller"] = map.controller;
  o["controller_reachable"] = reachable;
  o["map_version"] = map.version;
  o["answered_by"] = ctx_.config.node_id;
  o["nodes"] = std::move(nodes);
  co_return json_response(200, json::serialize(o));
}

awaitable<http_response> rest_api::set_node(call& c, const std::string& id) {
  auto parsed = parse_json(c.req.body, "request body");
  if (!parsed) co_return c.fail(parsed.error());
  if (!parsed->is_object()) co_return c.fail(400, "invalid-argument", "node settings must be a JSON object");
  json_fields f(parsed->get_object(), "");
  if (!f.find("weight")) co_return c.fail(400, "invalid-argument", "weight: is required");
  auto weight = f.opt_u64("weight", 1, 0, ring::max_weight);
  if (!weight) co_return c.fail(weight.error());
  if (auto fin = f.finish(); !fin) co_return c.fail(fin.error());
  if (!ctx_.ctl) co_return co_await to_controller(c);
  auto r = co_await ctx_.ctl->set_weight(id, static_cast<std::uint32_t>(*weight));
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  const auto* n = c.snap->map->find_node(id);
  json::object o;
  o["id"] = id;
  o["weight"] = n->weight;
  o["state"] = to_string(n->state);
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, json::serialize(o));
}

http_response rest_api::get_ring(call& c) {
  const auto& r = *c.snap->placement;
  const auto shares = r.ownership();
  json::array nodes;
  std::vector<std::vector<std::string>> rows;
  for (std::size_t o = 0; o < r.node_count(); ++o) {
    json::object n;
    n["id"] = r.nodes()[o];
    n["weight"] = r.weights()[o];
    n["vnodes"] = static_cast<std::uint64_t>(r.weights()[o]) * r.vnodes_per_weight();
    n["ownership"] = shares[o];
    char share[32];
    std::snprintf(share, sizeof share, "%.4f", shares[o]);
    rows.push_back({r.nodes()[o], std::to_string(r.weights()[o]),
                    std::to_string(static_cast<std::uint64_t>(r.weights()[o]) * r.vnodes_per_weight()), share});
    nodes.push_back(std::move(n));
  }
  if (c.text()) return text_response(render_table({"node", "weight", "vnodes", "ownership"}, rows));
  json::object out;
  out["vnodes_per_weight"] = r.vnodes_per_weight();
  out["vnode_count"] = r.vnode_count();
  out["memory_bytes"] = r.memory_bytes();
  out["nodes"] = std::move(nodes);
  out["map_version"] = c.snap->map->version;
  return json_response(200, json::serialize(out));
}

http_response rest_api::ring_lookup(call& c) {
  const auto* index = c.param("index");
  const auto* key = c.param("key");
  if (!index || !key) return c.fail(400, "invalid-argument", "index and key are required");
  if (auto v = validate_index_name(*index); !v) return c.fail(v.error());
  if (auto v = validate_key(*key); !v) return c.fail(v.error());
  const auto* ix = c.snap->map->find_index(*index);
  if (!ix) return c.fail(404, "not-found", "index " + quoted(*index) + " does not exist");
  const auto rt = route_key(*ix, *key, c.routing());
  const auto& s = ix->shards[rt.shard_pos];
  json::object o;
  o["index"] = ix->name;
  o["key"] = *key;
  o["partitioning"] = to_string(ix->strategy);
  if (ix->strategy == partitioning::hash) {
    o["token"] = to_hex(token_key(rt.token));
    if (!c.snap->placement->empty()) o["ring_node"] = c.snap->placement->lookup(rt.token);
  }
  o["shard"] = s.id;
  o["start"] = bound_to_text(ix->strategy, s.start);
  if (s.end) o["end"] = bound_to_text(ix->strategy, *s.end); else o["end"] = nullptr;
  o["owner"] = s.owner;
  const auto* n = c.snap->map->find_node(s.owner);
  o["owner_state"] = n ? to_string(n->state) : "unknown";
  if (!c.snap->placement->empty()) {
    // Where the controller converges: sticky placement from the current owners.
    auto desired = desired_owners(*ix, *c.snap->placement, ctx_.config.placement_epsilon);
    o["desired_owner"] = desired[rt.shard_pos];
  }
  o["map_version"] = c.snap->map->version;
  return json_response(200, json::serialize(o));
}

http_response rest_api::get_partition_map(call& c) {
  const std::string etag = "\"" + std::to_string(c.snap->map->version) + "\"";
  http_response r;
  if (c.req.if_none_match == etag) {
    r.status = 304;
  } else {
    r.body = to_json(*c.snap->map);
  }
  r.set_header("ETag", etag);
  return r;
}

}  // namespace shardd
