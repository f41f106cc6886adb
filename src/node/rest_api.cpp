#include "node/rest_api.hpp"

#include "net/http_server.hpp"
#include "node/log.hpp"
#include "node/store_ops.hpp"
#include "shardd/json_fields.hpp"
#include "shardd/routing.hpp"
#include "shardd/text.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <openssl/crypto.h>

#include <chrono>
#include <initializer_list>

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

/// Runs a blocking function on the read pool and resumes the caller on its own executor.
template <class F>
awaitable<std::invoke_result_t<F>> on_pool(asio::thread_pool& pool, F f) {
  using R = std::invoke_result_t<F>;
  auto task = [f = std::move(f)]() mutable -> awaitable<R> { co_return f(); };  // named: GCC 12 destroys temporaries in a co_await operand twice
  co_return co_await asio::co_spawn(pool, std::move(task), asio::use_awaitable);
}

}  // namespace

struct rest_api::call {
  net::http_request& req;
  std::vector<std::string> segments;
  std::vector<std::pair<std::string, std::string>> params;
  snapshot_ptr snap;
  std::string path;

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
  http_response fail(unsigned status, std::string_view slug, std::string_view detail) const {
    return net::problem(status, slug, detail, path);
  }
  http_response fail(const error& e) const { return fail(status_of(e.code), slug_of(e.code), e.detail); }
};

rest_api::rest_api(rest_context ctx) : ctx_(ctx), token_digest_(sha256(ctx.config.token)) {}

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
  call c{req, {}, {}, ctx_.ring.snapshot(), {}};
  auto url = boost::urls::parse_origin_form(req.target);
  if (!url) {
    co_return net::problem(400, "malformed-request", "request target is not a valid origin-form URL: " + req.target);
  }
  c.path = std::string(url->encoded_path());
  for (auto seg : url->segments()) c.segments.push_back(seg);
  for (auto p : url->params()) c.params.emplace_back(p.key, p.value);

  http_response res;
  const bool is_health = c.segments.size() == 2 && c.segments[0] == "v1" && c.segments[1] == "health";
  if (!is_health && !authorized(req)) {
    res = c.fail(401, "unauthorized",
                 req.authorization.empty() ? "missing Authorization: Bearer <token> header" : "invalid bearer token");
    res.set_header("WWW-Authenticate", "Bearer realm=\"shardd\"");
  } else {
    res = co_await dispatch(c);
  }
  res.set_header("X-Shardd-Node", ctx_.config.node_id);
  res.set_header("X-Shardd-Map-Version", std::to_string(c.snap->map->version));
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
    co_return list_shards(c);
  }
  if (s.size() >= 2 && s[1] == "indexes") {
    if (s.size() == 2) {
      if (method != http_method::get) co_return not_allowed("GET");
      if (auto e = unknown_param({"format"})) co_return *e;
      co_return list_indexes(c);
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
          co_return get_index(c, name);
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
      if (method == http_method::put) co_return co_await put_record(c, *ix, key);
      if (method == http_method::get) co_return co_await get_record(c, *ix, key);
      co_return co_await delete_record(c, *ix, key);
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
      co_return count(c, *ix);
    }
  }
  co_return c.fail(404, "not-found", "unknown path " + c.path);
}

// --- health -------------------------------------------------------------------------------

http_response rest_api::health(call& c) {
  json::object o;
  const bool stopping = ctx_.stopping.load();
  o["status"] = stopping ? "stopping" : "ok";
  o["node"] = ctx_.config.node_id;
  o["cluster"] = ctx_.config.cluster_id;
  o["map_version"] = c.snap->map->version;
  o["version"] = SHARDD_VERSION;
  return json_response(stopping ? 503 : 200, json::serialize(o));
}

// --- indexes ------------------------------------------------------------------------------

namespace {

struct index_totals {
  std::uint64_t records = 0, bytes = 0;
};

json::object shard_json(const index_entry& ix, const shard_entry& s, const std::optional<storage::shard_stats>& st) {
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
    o["records"] = nullptr;
    o["bytes"] = nullptr;
  }
  return o;
}

}  // namespace

http_response rest_api::get_index(call& c, const std::string& name) {
  const auto* ix = c.snap->map->find_index(name);
  if (!ix) return c.fail(404, "not-found", "index " + quoted(name) + " does not exist");
  json::array shards;
  index_totals t;
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : ix->shards) {
    auto st = ctx_.store.stats(ix->id, s.id);
    if (st) {
      t.records += st->records;
      t.bytes += st->bytes;
    }
    if (c.text())
      rows.push_back({std::to_string(s.id), bound_to_text(ix->strategy, s.start), s.end ? bound_to_text(ix->strategy, *s.end) : "-",
                      s.owner, std::string(to_string(s.state)), st ? std::to_string(st->records) : "-",
                      st ? std::to_string(st->bytes) : "-"});
    shards.push_back(shard_json(*ix, s, st));
  }
  if (c.text()) return text_response(render_table({"shard", "start", "end", "node", "state", "records", "bytes"}, rows));
  json::object o;
  o["name"] = ix->name;
  o["id"] = ix->id;
  o["partitioning"] = to_string(ix->strategy);
  o["shard_count"] = ix->shards.size();
  o["records"] = t.records;
  o["bytes"] = t.bytes;
  o["map_version"] = c.snap->map->version;
  o["shards"] = std::move(shards);
  return json_response(200, json::serialize(o));
}

http_response rest_api::list_indexes(call& c) {
  json::array list;
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, ix] : c.snap->map->indexes) {
    index_totals t;
    for (const auto& s : ix.shards)
      if (auto st = ctx_.store.stats(ix.id, s.id)) {
        t.records += st->records;
        t.bytes += st->bytes;
      }
    rows.push_back({name, std::string(to_string(ix.strategy)), std::to_string(ix.shards.size()),
                    std::to_string(t.records), std::to_string(t.bytes)});
    json::object o;
    o["name"] = name;
    o["partitioning"] = to_string(ix.strategy);
    o["shards"] = ix.shards.size();
    o["records"] = t.records;
    o["bytes"] = t.bytes;
    list.push_back(std::move(o));
  }
  if (c.text()) return text_response(render_table({"index", "partitioning", "shards", "records", "bytes"}, rows));
  json::object o;
  o["indexes"] = std::move(list);
  o["map_version"] = c.snap->map->version;
  return json_response(200, json::serialize(o));
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
  auto r = co_await ctx_.ring.create_index(name, std::move(spec));
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  auto res = get_index(c, name);
  res.status = 201;
  res.set_header("Location", "/v1/indexes/" + name);
  co_return res;
}

awaitable<http_response> rest_api::delete_index(call& c, const std::string& name) {
  auto r = co_await ctx_.ring.drop_index(name);
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  json::object o;
  o["acknowledged"] = true;
  o["index"] = name;
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, json::serialize(o));
}

http_response rest_api::count(call&, const index_entry& ix) {
  std::uint64_t n = 0;
  for (const auto& s : ix.shards)
    if (auto st = ctx_.store.stats(ix.id, s.id)) n += st->records;
  json::object o;
  o["index"] = ix.name;
  o["count"] = n;
  o["shards"] = ix.shards.size();
  return json_response(200, json::serialize(o));
}

http_response rest_api::list_shards(call& c) {
  const std::string* only = c.param("index");
  if (only && !c.snap->map->find_index(*only))
    return c.fail(404, "not-found", "index " + quoted(*only) + " does not exist");
  json::array list;
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, ix] : c.snap->map->indexes) {
    if (only && name != *only) continue;
    for (const auto& s : ix.shards) {
      auto st = ctx_.store.stats(ix.id, s.id);
      rows.push_back({name, std::to_string(s.id), bound_to_text(ix.strategy, s.start),
                      s.end ? bound_to_text(ix.strategy, *s.end) : "-", s.owner, std::string(to_string(s.state)),
                      st ? std::to_string(st->records) : "-", st ? std::to_string(st->bytes) : "-"});
      list.push_back(shard_json(ix, s, st));
    }
  }
  if (c.text())
    return text_response(render_table({"index", "shard", "start", "end", "node", "state", "records", "bytes"}, rows));
  json::object o;
  o["shards"] = std::move(list);
  o["map_version"] = c.snap->map->version;
  return json_response(200, json::serialize(o));
}

// --- records ------------------------------------------------------------------------------

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

awaitable<http_response> rest_api::put_record(call& c, const index_entry& ix, const std::string& key) {
  auto doc = normalize_doc(c.req.body, ctx_.config.max_doc_bytes);
  if (!doc) co_return c.fail(doc.error());
  auto rt = route_key(ix, key, c.param("routing") ? std::optional<std::string_view>(*c.param("routing")) : std::nullopt);
  const auto shard_id = ix.shards[rt.shard_pos].id;
  std::vector<storage::write_op> ops;
  ops.push_back(storage::write_op{storage::op_kind::put, std::move(rt.storage_key), std::move(*doc)});
  auto r = co_await async_write(ctx_.store, std::move(ops));
  if (!r) co_return c.fail(r.error());
  switch ((*r)[0]) {
    case storage::op_status::created: co_return json_response(201, write_json(ix, shard_id, key, "created"));
    case storage::op_status::updated: co_return json_response(200, write_json(ix, shard_id, key, "updated"));
    default: co_return c.fail(404, "not-found", "index " + quoted(ix.name) + " was deleted meanwhile");
  }
}

awaitable<http_response> rest_api::get_record(call& c, const index_entry& ix, const std::string& key) {
  auto rt = route_key(ix, key, c.param("routing") ? std::optional<std::string_view>(*c.param("routing")) : std::nullopt);
  const auto shard_id = ix.shards[rt.shard_pos].id;
  std::string value;
  auto st = ctx_.store.get_cached(rt.storage_key, value);
  if (st == storage::store::read_status::would_block) {
    // Not in memory: read from disk on the pool, never on this strand.
    // A named closure: GCC 12 destroys temporaries inside a co_await operand twice.
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
  auto rt = route_key(ix, key, c.param("routing") ? std::optional<std::string_view>(*c.param("routing")) : std::nullopt);
  const auto shard_id = ix.shards[rt.shard_pos].id;
  std::vector<storage::write_op> ops;
  ops.push_back(storage::write_op{storage::op_kind::del, std::move(rt.storage_key), {}});
  auto r = co_await async_write(ctx_.store, std::move(ops));
  if (!r) co_return c.fail(r.error());
  switch ((*r)[0]) {
    case storage::op_status::deleted: co_return json_response(200, write_json(ix, shard_id, key, "deleted"));
    case storage::op_status::not_found:
      co_return c.fail(404, "not-found", "record " + quoted(key) + " not found in index " + quoted(ix.name));
    default: co_return c.fail(404, "not-found", "index " + quoted(ix.name) + " was deleted meanwhile");
  }
}

awaitable<http_response> rest_api::bulk(call& c, const index_entry& ix) {
  // NDJSON: one {"op":"put","key":K,"doc":D[,"routing":R]} or {"op":"delete","key":K[,"routing":R]}
  // per line. Bad lines are reported with their line number; every good line is applied, in
  // order, in one group commit.
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

  std::vector<storage::write_op> ops;
  std::vector<std::size_t> op_line;
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
      ops.push_back(storage::write_op{storage::op_kind::put, std::move(rt.storage_key), std::move(text)});
    } else {
      if (doc) {
        add_error(line_no, 400, "delete takes no doc");
        continue;
      }
      ops.push_back(storage::write_op{storage::op_kind::del, std::move(rt.storage_key), {}});
    }
    op_line.push_back(line_no);
  }

  std::uint64_t created = 0, updated = 0, deleted = 0, not_found = 0;
  if (!ops.empty()) {
    auto r = co_await async_write(ctx_.store, std::move(ops));
    if (!r) co_return c.fail(r.error());
    for (std::size_t i = 0; i < r->size(); ++i) {
      switch ((*r)[i]) {
        case storage::op_status::created: ++created; break;
        case storage::op_status::updated: ++updated; break;
        case storage::op_status::deleted: ++deleted; break;
        case storage::op_status::not_found: ++not_found; break;
        case storage::op_status::no_shard:
          add_error(op_line[i], 404, "index " + quoted(ix.name) + " was deleted meanwhile");
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

awaitable<http_response> rest_api::scan(call& c, const index_entry& ix) {
  std::size_t limit = default_scan_limit;
  if (auto l = c.param("limit")) {
    char* end = nullptr;
    unsigned long v = std::strtoul(l->c_str(), &end, 10);
    if (l->empty() || *end != '\0' || v < 1 || v > max_scan_limit)
      co_return c.fail(400, "invalid-argument", "limit must be an integer from 1 to " + std::to_string(max_scan_limit));
    limit = v;
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
  std::function<bool(std::string_view)> keep;
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
  } else if (start || end || prefix) {
    keep = [start = start ? std::optional<std::string>(*start) : std::nullopt,
            end = end ? std::optional<std::string>(*end) : std::nullopt,
            prefix = prefix ? std::optional<std::string>(*prefix) : std::nullopt](std::string_view k) {
      auto user = k.substr(index_prefix_bytes + token_bytes);
      if (start && user < *start) return false;
      if (end && user >= *end) return false;
      if (prefix && !user.starts_with(*prefix)) return false;
      return true;
    };
  }

  // Walk the shards in order; each is one contiguous storage range.
  struct page {
    std::vector<storage::record> records;
    std::optional<std::string> resume_after;
  };
  auto walk = [&]() -> shardd::result<page> {
    page out;
    std::size_t examined_budget = max_scan_examined;
    for (const auto& s : ix.shards) {
      auto sr = shard_storage_range(ix, s);
      key_range r{std::max(sr.begin, range.begin), std::min(sr.end, range.end)};
      if (!(r.begin < r.end)) continue;
      if (after && *after >= r.end) continue;
      // At least one key per shard, so a spent budget still yields a real key to resume after.
      auto got = ctx_.store.scan(r, after, limit - out.records.size(), keep, std::max<std::size_t>(examined_budget, 1));
      if (!got) return got.error();
      examined_budget -= std::min(examined_budget, got->examined);
      for (auto& rec : got->records) out.records.push_back(std::move(rec));
      if (got->resume_after) {
        out.resume_after = std::move(got->resume_after);
        return out;
      }
      if (out.records.size() >= limit) break;
    }
    if (out.records.size() >= limit && !out.records.empty()) {
      // The page is full at a shard's end: offer a cursor only if anything follows (a
      // zero-limit scan stops at the first key it finds). With a filter the next page may
      // still come back empty.
      const auto& last = out.records.back().key;
      key_range rest{last, range.end};
      auto probe = ctx_.store.scan(rest, last, 0);
      if (!probe) return probe.error();
      if (probe->resume_after) out.resume_after = last;
    }
    return out;
  };
  auto result = co_await on_pool(ctx_.read_pool, std::move(walk));
  if (!result) co_return c.fail(result.error());

  auto user_key = [&](std::string_view storage_key) {
    return ix.strategy == partitioning::hash ? storage_key.substr(index_prefix_bytes + token_bytes)
                                             : storage_key.substr(index_prefix_bytes);
  };
  if (c.text()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& r : result->records) rows.push_back({std::string(user_key(r.key)), r.value});
    co_return text_response(render_table({"key", "doc"}, rows));
  }
  std::string out = "{\"index\":";
  append_json_string(out, ix.name);
  out.append(",\"records\":[");
  bool first = true;
  for (const auto& r : result->records) {
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"key\":");
    append_json_string(out, user_key(r.key));
    out.append(",\"doc\":").append(r.value).push_back('}');
  }
  out.append("],\"count\":").append(std::to_string(result->records.size()));
  out.append(",\"next_cursor\":");
  if (result->resume_after)
    append_json_string(out, base64url_encode(*result->resume_after));
  else
    out.append("null");
  out.push_back('}');
  co_return json_response(200, std::move(out));
}

}  // namespace shardd
