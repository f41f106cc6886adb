#include "node/rest_api.hpp"

#include "common/log.hpp"
#include "node/control_plane.hpp"
#include "node/rest_internal.hpp"
#include "shardd/key_codec.hpp"
#include "shardd/text.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/encoding_opts.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <openssl/crypto.h>

#include <chrono>

namespace shardd {

rest_api::rest_api(node_context ctx)
    : ctx_(ctx), shards_(ctx.config, ctx.store, ctx.ring, ctx.read_pool, ctx.peer == nullptr, ctx.disk, ctx.bulk_pool),
      cluster_(ctx.config, ctx.ring, ctx.peer, shards_), token_digest_(sha256(ctx.config.token)) {}

namespace {

/// A liveness or readiness probe: answered without a token.
bool is_probe(std::string_view target) {
  const auto q = target.find('?');
  const auto path = target.substr(0, q);
  // The probes, and the dashboard's static files: the page asks for the token and sends it
  // with every API call it makes.
  return path == "/v1/health" || path == "/v1/health/ready" || path == "/ui" || path == "/ui/app.js" || path == "/ui/app.css";
}

}  // namespace

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

std::optional<http_response> rest_api::check_header(const net::http_request& head) const {
  // /v1/health and /v1/health/ready answer without a token (probes); everything else needs
  // one, checked before the body.
  if (is_probe(head.target)) return std::nullopt;
  if (authorized(head)) return std::nullopt;
  auto res = net::problem(401, "unauthorized",
                          head.authorization.empty() ? "missing Authorization: Bearer <token> header" : "invalid bearer token");
  res.set_header("WWW-Authenticate", "Bearer realm=\"shardd\"");
  return res;
}

awaitable<http_response> rest_api::handle(net::http_request req) {
  call c{req, {}, {}, ctx_.ring.snapshot(), {}, {}, false, 0, {}, 0};
  co_return co_await run(c);
}

awaitable<http_response> rest_api::handle_forwarded(net::http_request req, std::uint64_t sender_version) {
  const auto started = std::chrono::steady_clock::now();
  call c{req, {}, {}, ctx_.ring.snapshot(), {}, {}, false, 0, {}, 0};
  c.forwarded = true;
  c.sender_version = sender_version;
  auto res = co_await run(c);
  // The relaying node logs the request as its client sent it; this line is the owner's half,
  // under the same request id.
  if (ctx_.config.access_log) {
    log::access_entry e;
    e.method = req.method_text;
    e.target = req.target;
    e.remote = req.remote;
    e.request_id = req.request_id;
    e.forwarded_from = req.remote.starts_with("peer:") ? std::string_view(req.remote).substr(5) : std::string_view(req.remote);
    e.status = res.status;
    e.bytes = res.body.size();
    e.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    log::access(e, ctx_.config.access_log_sample);
  }
  co_return res;
}

awaitable<http_response> rest_api::run(call& c) {
  c.pinned = c.snap;
  auto url = boost::urls::parse_origin_form(c.req.target);
  if (!url) co_return net::problem(400, "malformed-request", "request target is not a valid origin-form URL: " + c.req.target);
  c.path = std::string(url->encoded_path());
  for (auto seg : url->segments()) c.segments.push_back(seg);
  // `+` in a query value is a plus, as in a path: `?key=a+b` and `/records/a+b` name one key.
  // (A space is %20.) Boost.URL's default decoding would read it as a space, as HTML forms do.
  boost::urls::encoding_opts literal_plus;
  literal_plus.space_as_plus = false;
  for (auto p : url->params(literal_plus)) c.params.emplace_back(p.key, p.value);

  http_response res;
  if (!c.forwarded && !is_probe(c.req.target) && !authorized(c.req)) {
    res = c.fail(401, "unauthorized",
                 c.req.authorization.empty() ? "missing Authorization: Bearer <token> header" : "invalid bearer token");
    res.set_header("WWW-Authenticate", "Bearer realm=\"shardd\"");
  } else {
    res = co_await dispatch(c);
  }
  // ?pretty once, on the node the client asked: a forwarded request's answer is relayed through
  // that node's run(), which indents it.
  if (auto p = c.param("pretty"); !c.forwarded && p && *p != "false" && res.content_type.find("json") != std::string::npos)
    if (auto nice = pretty_json(res.body)) res.body = std::move(*nice);
  auto& counted = ctx_.ring.loads().node();
  counted.rest_requests.fetch_add(1, std::memory_order_relaxed);
  if (res.status >= 500) counted.rest_errors.fetch_add(1, std::memory_order_relaxed);
  // A relayed answer keeps the owner's node and map version.
  if (!has_header(res, "X-Shardd-Node")) res.set_header("X-Shardd-Node", ctx_.config.node_id);
  if (!has_header(res, "X-Shardd-Map-Version")) res.set_header("X-Shardd-Map-Version", std::to_string(c.snap->map->version));
  co_return res;
}

// --- routes ---------------------------------------------------------------------------------

namespace {

/// The answer of a handler that does not wait, as an awaitable. (Handlers are plain functions
/// returning the awaitable of a member: every argument they pass lives in the call, never in
/// a temporary the lazy coroutine would outlive.)
awaitable<http_response> ready(http_response r) { co_return r; }

/// Matches `pattern` ("/v1/indexes/{index}/records/{key*}") against the path's segments; on a
/// match fills `args`.
bool match(std::string_view pattern, const std::vector<std::string>& segs,
           std::vector<std::pair<std::string_view, std::string>>& args) {
  args.clear();
  std::size_t i = 0;
  pattern.remove_prefix(1);
  while (!pattern.empty()) {
    const auto slash = pattern.find('/');
    const auto part = pattern.substr(0, slash);
    pattern = slash == std::string_view::npos ? std::string_view() : pattern.substr(slash + 1);
    if (i >= segs.size()) return false;
    if (part.size() > 2 && part.front() == '{' && part.back() == '}') {
      auto name = part.substr(1, part.size() - 2);
      if (name.back() == '*') {
        // The rest of the path: "a/b" may be sent as records/a/b or as records/a%2Fb.
        std::string rest = segs[i];
        for (std::size_t j = i + 1; j < segs.size(); ++j) rest.append("/").append(segs[j]);
        args.emplace_back(name.substr(0, name.size() - 1), std::move(rest));
        return pattern.empty();
      }
      args.emplace_back(name, segs[i]);
    } else if (part != segs[i]) {
      return false;
    }
    ++i;
  }
  return i == segs.size();
}

}  // namespace

// Each handler is a plain function that unpacks the route's arguments and calls the member
// that does the work; the table is the one place that says which URL reaches which code.
const std::vector<rest_api::route>& rest_api::routes() {
  using M = http_method;
  static const std::vector<route> table = {
      {M::get, "/v1/health", {}, [](rest_api& a, call& c) { return ready(a.health(c)); }},
      {M::get, "/v1/health/ready", {}, [](rest_api& a, call& c) { return a.health_ready(c); }},
      {M::get, "/v1/openapi.json", {}, [](rest_api& a, call& c) { return ready(a.openapi(c)); }},
      {M::get, "/ui", {}, [](rest_api& a, call& c) { return ready(a.ui_file(c)); }},
      {M::get, "/ui/app.js", {}, [](rest_api& a, call& c) { return ready(a.ui_file(c)); }},
      {M::get, "/ui/app.css", {}, [](rest_api& a, call& c) { return ready(a.ui_file(c)); }},
      {M::get, "/v1/cluster", {"format"}, [](rest_api& a, call& c) { return a.get_cluster(c); }},
      {M::get, "/v1/cluster/health", {"format"}, [](rest_api& a, call& c) { return a.cluster_health(c); }},
      {M::get, "/v1/cluster/load", {"format"}, [](rest_api& a, call& c) { return a.cluster_load(c); }, true},
      {M::get, "/v1/stats", {"window", "scope", "format"}, [](rest_api& a, call& c) { return a.stats(c); }},
      {M::get, "/v1/events", {"since", "type", "limit", "format"}, [](rest_api& a, call& c) { return a.events(c); }, true},
      {M::get, "/v1/anomalies", {"scope", "state", "limit", "format"}, [](rest_api& a, call& c) { return a.anomalies(c); }},
      {M::get, "/v1/forecast",
       {"window", "scope", "shard_bytes_limit", "shard_records_limit", "disk_watermark_percent", "format"},
       [](rest_api& a, call& c) { return a.forecast(c); }},
      {M::get, "/v1/stats/history", {"window", "points", "top", "index", "shard", "scope"},
       [](rest_api& a, call& c) { return a.stats_history(c); }},
      {M::get, "/v1/monitor/settings", {"scope"}, [](rest_api& a, call& c) { return a.monitor_settings_endpoint(c); }},
      {M::put, "/v1/monitor/settings", {"scope"}, [](rest_api& a, call& c) { return a.monitor_settings_endpoint(c); }},
      {M::get, "/metrics", {}, [](rest_api& a, call& c) { return a.metrics(c); }},
      {M::get, "/v1/cluster/nodes/{node}", {}, [](rest_api& a, call& c) { return a.get_node(c, c.arg("node")); }, true},
      {M::put, "/v1/cluster/nodes/{node}", {}, [](rest_api& a, call& c) { return a.set_node(c, c.arg("node")); }, true},
      {M::delete_, "/v1/cluster/nodes/{node}", {"force"},
       [](rest_api& a, call& c) { return a.remove_node(c, c.arg("node")); }, true},
      {M::post, "/v1/cluster/nodes/{node}/decommission", {},
       [](rest_api& a, call& c) { return a.decommission(c, c.arg("node")); }, true},
      {M::get, "/v1/ring", {"format", "vnodes"}, [](rest_api& a, call& c) { return ready(a.get_ring(c)); }},
      {M::get, "/v1/ring/lookup", {"index", "key", "routing"},
       [](rest_api& a, call& c) { return ready(a.ring_lookup(c)); }},
      {M::get, "/v1/partition-map", {},
       [](rest_api& a, call& c) { return ready(a.get_partition_map(c)); }},
      {M::get, "/v1/shards", {"format", "index"}, [](rest_api& a, call& c) { return a.list_shards(c); }},
      {M::get, "/v1/shards/{index}/{shard}/hot-keys", {"limit", "format"},
       [](rest_api& a, call& c) { return a.on_shard_owner(c, &rest_api::hot_keys); }},
      {M::post, "/v1/shards/{index}/{shard}/migrate", {},
       [](rest_api& a, call& c) { return a.migrate_shard(c, c.arg("index"), c.shard_no); }, true},
      {M::post, "/v1/shards/{index}/{shard}/verify", {},
       [](rest_api& a, call& c) { return a.on_shard_owner(c, &rest_api::verify_shard); }},
      {M::post, "/v1/shards/{index}/{shard}/split", {},
       [](rest_api& a, call& c) { return a.split_shard(c, c.arg("index"), c.shard_no); }, true},
      {M::get, "/v1/migrations", {"state", "format"}, [](rest_api& a, call& c) { return a.list_migrations(c, nullptr); }, true},
      {M::get, "/v1/migrations/settings", {}, [](rest_api& a, call& c) { return a.migration_settings(c); }},
      {M::put, "/v1/migrations/settings", {}, [](rest_api& a, call& c) { return a.migration_settings(c); }, true},
      {M::get, "/v1/migrations/{id}", {}, [](rest_api& a, call& c) { return a.list_migrations(c, &c.arg("id")); }, true},
      {M::post, "/v1/migrations/{id}/pause", {}, [](rest_api& a, call& c) { return a.control_migration(c, c.arg("id"), c.segments.back()); }, true},
      {M::post, "/v1/migrations/{id}/resume", {}, [](rest_api& a, call& c) { return a.control_migration(c, c.arg("id"), c.segments.back()); }, true},
      {M::post, "/v1/migrations/{id}/cancel", {}, [](rest_api& a, call& c) { return a.control_migration(c, c.arg("id"), c.segments.back()); }, true},
      {M::post, "/v1/rebalance/plan", {}, [](rest_api& a, call& c) { return a.rebalance_plan(c); }, true},
      {M::get, "/v1/rebalance/explain", {"format"}, [](rest_api& a, call& c) { return a.rebalance_explain(c); }, true},
      {M::post, "/v1/rebalance/plans/{id}/apply", {"if_match"},
       [](rest_api& a, call& c) { return a.rebalance_apply(c, c.arg("id")); }, true},
      {M::get, "/v1/rebalance/settings", {}, [](rest_api& a, call& c) { return a.rebalance_settings_endpoint(c); }},
      {M::post, "/v1/simulate", {}, [](rest_api& a, call& c) { return a.simulate(c); }, true},
      {M::put, "/v1/rebalance/settings", {}, [](rest_api& a, call& c) { return a.rebalance_settings_endpoint(c); }, true},
      {M::get, "/v1/indexes", {"format"}, [](rest_api& a, call& c) { return a.list_indexes(c); }},
      {M::get, "/v1/indexes/{index}", {"format"}, [](rest_api& a, call& c) { return a.get_index(c, c.arg("index")); }},
      {M::put, "/v1/indexes/{index}", {}, [](rest_api& a, call& c) { return a.put_index(c, c.arg("index")); }, true},
      {M::delete_, "/v1/indexes/{index}", {}, [](rest_api& a, call& c) { return a.delete_index(c, c.arg("index")); }, true},
      {M::get, "/v1/indexes/{index}/records", {"start", "end", "prefix", "limit", "cursor", "format"},
       [](rest_api& a, call& c) { return a.with_index(c, &rest_api::scan); }},
      {M::get, "/v1/indexes/{index}/records/{key*}", {"routing"},
       [](rest_api& a, call& c) { return a.with_index(c, &rest_api::record); }},
      {M::put, "/v1/indexes/{index}/records/{key*}", {"routing"},
       [](rest_api& a, call& c) { return a.with_index(c, &rest_api::record); }},
      {M::delete_, "/v1/indexes/{index}/records/{key*}", {"routing"},
       [](rest_api& a, call& c) { return a.with_index(c, &rest_api::record); }},
      {M::post, "/v1/indexes/{index}/bulk", {}, [](rest_api& a, call& c) { return a.with_index(c, &rest_api::bulk); }},
      {M::get, "/v1/indexes/{index}/count", {}, [](rest_api& a, call& c) { return a.with_index(c, &rest_api::count); }},
  };
  return table;
}

std::vector<std::string_view> rest_api::query_params(const route& r) {
  std::vector<std::string_view> out(r.params.begin(), r.params.end());
  if (std::find(out.begin(), out.end(), "format") != out.end())
    for (std::string_view p : {"v", "h", "s", "help", "bytes"}) out.push_back(p);
  out.push_back("pretty");
  return out;
}

awaitable<http_response> rest_api::with_index(call& c, awaitable<http_response> (rest_api::*f)(call&, const index_entry&)) {
  const auto& name = c.arg("index");
  const index_entry* ix = c.snap->map->find_index(name);
  if (!ix) co_return c.fail(404, "not-found", "index " + quoted(name) + " does not exist");
  co_return co_await (this->*f)(c, *ix);
}

awaitable<http_response> rest_api::on_shard_owner(
    call& c, awaitable<http_response> (rest_api::*f)(call&, const index_entry&, const shard_entry&)) {
  const auto& name = c.arg("index");
  const index_entry* ix = c.snap->map->find_index(name);
  if (!ix) co_return c.fail(404, "not-found", "index " + quoted(name) + " does not exist");
  const shard_entry* s = ix->find_shard(c.shard_no);
  if (!s) co_return c.fail(404, "not-found", "index " + quoted(name) + " has no shard " + std::to_string(c.shard_no));
  if (s->owner == ctx_.config.node_id) co_return co_await (this->*f)(c, *ix, *s);
  if (c.forwarded) co_return moved_response();
  if (auto u = owner_unavailable(c, *ix, *s)) co_return *u;
  co_return co_await forward(c, s->owner);
}

awaitable<http_response> rest_api::dispatch(call& c) {
  const auto& table = routes();
  // The first pattern that matches the path decides; its methods are what the path allows.
  const route* chosen = nullptr;
  std::string allow;
  std::string_view matched;
  // HEAD is GET without the body (the server leaves it out): it reaches the GET route.
  const bool head = c.req.method == http_method::head;
  for (const auto& r : table) {
    if (!matched.empty() && r.pattern != matched) continue;
    if (matched.empty() && !match(r.pattern, c.segments, c.args)) continue;
    matched = r.pattern;
    if (!allow.empty()) allow += ", ";
    allow += method_name(r.method);
    if (r.method == http_method::get) allow += ", HEAD";
    if ((r.method == c.req.method || (head && r.method == http_method::get)) && !chosen) chosen = &r;
  }
  if (head && chosen) c.req.method = http_method::get;
  if (matched.empty()) co_return c.fail(404, "not-found", "unknown path " + c.path);
  if (!chosen) {
    auto r = c.fail(405, "method-not-allowed",
                    "method " + c.req.method_text + " is not allowed on " + c.path + "; allowed: " + allow);
    r.set_header("Allow", allow);
    co_return r;
  }
  match(chosen->pattern, c.segments, c.args);
  // Query parameters each endpoint takes; any other is a mistake worth reporting.
  const auto allowed_params = query_params(*chosen);
  for (const auto& [k, v] : c.params)
    if (std::find(allowed_params.begin(), allowed_params.end(), k) == allowed_params.end()) {
      std::string allowed;
      for (const auto& p : allowed_params) allowed.append(allowed.empty() ? "" : ", ").append(p);
      co_return c.fail(400, "invalid-argument",
                       "unknown query parameter " + quoted(k) + " for " + std::string(method_name(chosen->method)) + " " +
                           std::string(chosen->pattern) + "; it takes " + allowed);
    }
  if (auto f = c.param("format"); f && *f != "text" && *f != "json")
    co_return c.fail(400, "invalid-argument", "format must be text or json");
  if (auto f = c.param("format"); f && *f == "json" && c.cat().any())
    co_return c.fail(400, "invalid-argument", "v, h, s, help and bytes shape text tables; they do not go with format=json");
  for (const auto& [name, value] : c.args) {
    if (name == "index") {
      if (auto v = validate_index_name(value); !v) co_return c.fail(v.error());
    } else if (name == "shard") {
      const auto n = parse_decimal(value, 0, UINT32_MAX);
      if (!n) co_return c.fail(400, "invalid-argument", "shard must be a shard number, not " + quoted(value));
      c.shard_no = static_cast<std::uint32_t>(*n);
    } else if (name == "key") {
      if (auto v = validate_key(value); !v) co_return c.fail(v.error());
      if (auto r = c.param("routing"); r && r->empty()) co_return c.fail(400, "invalid-argument", "routing must not be empty");
    }
  }
  if (chosen->controller && !ctx_.ctl) {
    auto relayed = co_await to_controller(c);
    if (relayed) co_return std::move(*relayed);
    // This node became the controller while the change waited for one: it makes the change.
  }
  co_return co_await chosen->handler(*this, c);
}

// --- forwarding -----------------------------------------------------------------------------

awaitable<http_response> rest_api::forward(call& c, const std::string& node) {
  auto r = co_await cluster_.forward(node, c.req, c.snap->map->version);
  if (!r) co_return c.fail(r.error().code == errc::unavailable ? 503 : 502,
                           r.error().code == errc::unavailable ? "unavailable" : "bad-gateway", r.error().detail);
  if (r->moved) co_return moved_response();
  co_return std::move(r->response);
}

namespace {

/// Whether a relayed answer is the controller's `not-controller`: it stepped down (or was not
/// elected) and changed nothing, so the change may be asked of the next one.
bool says_not_controller(const http_response& r) {
  if (r.status != 503) return false;
  boost::system::error_code ec;
  auto v = boost::json::parse(r.body, ec);
  if (ec || !v.is_object()) return false;
  const auto* t = v.as_object().if_contains("type");
  return t && t->is_string() && t->get_string() == "urn:shardd:problem:not-controller";
}

}  // namespace

awaitable<std::optional<http_response>> rest_api::to_controller(call& c) {
  // Changes of the map are made by the controller; other nodes relay the request to it. When
  // the controller changes at run time (etcd), a relay that finds none, or one that answers it
  // is not the controller any more, waits for the map naming the next one and asks it.
  const auto wait = ctx_.plane ? ctx_.plane->handover_wait() : std::chrono::milliseconds(0);
  const auto until = std::chrono::steady_clock::now() + wait;
  auto remaining = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
  };
  for (;;) {
    const std::string controller_id = ctx_.plane ? ctx_.plane->elect_controller() : std::string();
    if (c.forwarded || !ctx_.peer || controller_id.empty() || controller_id == ctx_.config.node_id) {
      if (!c.forwarded && controller_id == ctx_.config.node_id && remaining().count() > 0) {
        // The map names this node: it won the election and its controller starts right after
        // that map is installed (or it stepped down, and a newer map will name the next one).
        // No other node will take the change: wait for this one's controller, or that map.
        if (ctx_.ctl) co_return std::nullopt;
        (void)co_await await_newer_map(c, std::min(remaining(), std::chrono::milliseconds(10)));
        continue;
      }
      if (!c.forwarded && ctx_.peer && remaining().count() > 0 && co_await await_newer_map(c, remaining())) continue;
      const auto why = ctx_.plane ? ctx_.plane->no_controller_reason() : std::string();
      // A relayed change that reached a node running no controller: the relay may ask the next.
      const bool handing_over = c.forwarded && ctx_.plane && ctx_.plane->handover_wait().count() > 0;
      co_return c.fail(503, handing_over ? "not-controller" : "unavailable",
                       why.empty() ? "this node cannot change the map and cannot reach the controller" : why);
    }
    // The peer protocol relays no headers: a plan's If-Match travels as ?if_match= instead.
    auto relayed = c.req;
    if (!relayed.if_match.empty() && c.path.ends_with("/apply") && !c.param("if_match"))
      relayed.target += std::string(relayed.target.find('?') == std::string::npos ? "?" : "&") + "if_match=" +
                        (parse_version_tag(relayed.if_match) ? std::to_string(*parse_version_tag(relayed.if_match)) : "invalid");
    auto r = co_await cluster_.forward(controller_id, relayed, c.snap->map->version);
    if (r && !r->moved && says_not_controller(r->response) && remaining().count() > 0) {
      SHARDD_LOG(info, "controller_handover_wait", "asked", controller_id, "target", c.req.target);
      if (co_await await_newer_map(c, remaining())) continue;
    }
    if (!r && r.error().code == errc::unavailable) {
      const auto why = ctx_.plane->no_controller_reason();
      co_return c.fail(503, "unavailable", "the controller " + quoted(controller_id) +
                                               " is unreachable; index and membership changes wait for it" +
                                               (why.empty() ? std::string() : " (" + why + ")"));
    }
    if (!r) co_return c.fail(502, "bad-gateway", r.error().detail);
    if (r->moved) co_return c.fail(503, "unavailable", "the controller " + quoted(controller_id) + " answered moved; retry");
    co_return std::move(r->response);
  }
}

std::optional<http_response> rest_api::owner_unavailable(call& c, const index_entry& ix, const shard_entry& s) {
  const auto* n = c.snap->map->find_node(s.owner);
  if (n && n->state == node_state::up) return std::nullopt;
  return c.fail(503, "unavailable", "shard " + std::to_string(s.id) + " of index " + quoted(ix.name) + " is on node " +
                                        quoted(s.owner) + ", which is " + (n ? std::string(to_string(n->state)) : "unknown"));
}

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

}  // namespace shardd
