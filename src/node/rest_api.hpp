#pragma once
// The REST API (DESIGN §10): a route table from method and path to handlers, in a cluster.

#include "common/config.hpp"
#include "net/http_types.hpp"
#include "node/cluster_client.hpp"
#include "node/controller_slot.hpp"
#include "node/ring_actor.hpp"
#include "node/shard_service.hpp"
#include "shardd/sha256.hpp"
#include "storage/store.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <optional>
#include <string_view>
#include <vector>

namespace boost::json {
class array;
class object;
}  // namespace boost::json

namespace shardd {

class peers;
class control_plane;
class controller;
class migrator;
class monitor;
struct cluster_facts;

/// What handlers may use. Everything here is owned by the node and outlives the API. Without
/// `peer` (unit tests) every shard is served locally.
class disk_guard;

struct node_context {
  const node_config& config;
  storage::store& store;
  ring_actor& ring;
  boost::asio::thread_pool& read_pool;  ///< blocking storage reads (scans, cache misses)
  const std::atomic<bool>& stopping;
  peers* peer = nullptr;
  control_plane* plane = nullptr;
  controller_ref ctl;  ///< the controller this node runs (false: none; see controller_slot)
  migrator* mig = nullptr;
  monitor* mon = nullptr;  ///< the node's monitor (null in unit tests that need none)
  const disk_guard* disk = nullptr;  ///< the data disk against its watermarks (null: not checked)
  /// Long scans an operator asks for (a shard's full check), apart from the read pool so that
  /// no GET queues behind them: the migration threads. Null: the read pool.
  boost::asio::thread_pool* bulk_pool = nullptr;
};

/// Turns HTTP requests into answers. Stateless between requests; safe to call from many
/// strands at once. Each request reads one map snapshot; a record whose shard lives on
/// another node is forwarded to its owner (through `cluster_client`) and the owner's answer is
/// relayed; counts, listings, scans and bulks fan out to every owner involved.
///
/// The handlers live in one file per resource: `rest_indexes.cpp` (indexes, shards),
/// `rest_records.cpp` (records, bulk, scans, counts), `rest_cluster.cpp` (health, cluster,
/// nodes, ring, partition map), `rest_migrations.cpp` (moves, splits, migrations,
/// decommission). `rest_api.cpp` holds the route table, authentication and the forwarding
/// glue.
class rest_api {
 public:
  explicit rest_api(node_context ctx);

  boost::asio::awaitable<net::http_response> handle(net::http_request req);

  /// A request another node forwarded: no token check (the peer is authenticated by mutual
  /// TLS), never forwarded again. `sender_version` is the sender's map version.
  boost::asio::awaitable<net::http_response> handle_forwarded(net::http_request req, std::uint64_t sender_version);

  /// The `moved` answer: a forwarded record request reached a node that does not own the
  /// shard in its newer map.
  static constexpr unsigned moved_status = 421;

  struct call;

  /// One entry of the route table: a method and a path pattern of literal segments,
  /// `{name}` (one segment) and `{name*}` (the rest of the path, one segment or more), the
  /// query parameters the endpoint takes, and its handler. Arguments named `index`, `shard`
  /// and `key` are validated before the handler runs. A `controller` route changes the map
  /// or reads what only the controller holds: a node that is not the controller relays it
  /// there (one place for that, here, instead of in each handler).
  struct route {
    net::http_method method;
    std::string_view pattern;
    std::vector<std::string_view> params;
    boost::asio::awaitable<net::http_response> (*handler)(rest_api&, call&);
    bool controller = false;
  };
  /// Every route, in matching order (the first pattern that matches a path decides which
  /// methods it allows).
  static const std::vector<route>& routes();
  /// Every query parameter `r` takes: its own, the _cat ones (`v`, `h`, `s`, `help`, `bytes`)
  /// where it has `format`, and `pretty` everywhere.
  static std::vector<std::string_view> query_params(const route& r);

 private:
  boost::asio::awaitable<net::http_response> run(call& c);
  boost::asio::awaitable<net::http_response> dispatch(call& c);

  // forwarding glue (rest_api.cpp)
  /// nullopt: this node runs the controller now (it was elected while the change waited), so
  /// the caller makes the change here.
  boost::asio::awaitable<std::optional<net::http_response>> to_controller(call& c);
  boost::asio::awaitable<net::http_response> forward(call& c, const std::string& node);
  std::optional<net::http_response> owner_unavailable(call& c, const index_entry& ix, const shard_entry& s);
  boost::asio::awaitable<bool> await_newer_map(call& c, std::chrono::milliseconds limit);
  /// await_newer_map, then, if none came in time, the controller's map (taken if newer). An
  /// error only when the controller cannot be asked.
  boost::asio::awaitable<result<void>> catch_up_map(call& c, std::chrono::milliseconds limit);
  /// Runs `f` with the index named by the route's {index}, or answers 404.
  boost::asio::awaitable<net::http_response> with_index(
      call& c, boost::asio::awaitable<net::http_response> (rest_api::*f)(call&, const index_entry&));
  /// Runs `f` where the shard named by the route's {index} and {shard} lives: here when this
  /// node owns it, else on its owner (forwarded; 503 when the owner is not up, moved when a
  /// forwarded request finds the shard elsewhere). 404 when the index or the shard is unknown.
  boost::asio::awaitable<net::http_response> on_shard_owner(
      call& c, boost::asio::awaitable<net::http_response> (rest_api::*f)(call&, const index_entry&, const shard_entry&));
  bool authorized(const net::http_request& req) const;

 public:
  /// What the header alone decides, before the body is read: a missing or wrong token (401).
  std::optional<net::http_response> check_header(const net::http_request& head) const;

 private:

  // indexes and shards (rest_indexes.cpp)
  boost::asio::awaitable<net::http_response> put_index(call& c, const std::string& name);
  boost::asio::awaitable<net::http_response> get_index(call& c, const std::string& name, unsigned status = 200);
  boost::asio::awaitable<net::http_response> list_indexes(call& c);
  boost::asio::awaitable<net::http_response> delete_index(call& c, const std::string& name);
  boost::asio::awaitable<net::http_response> list_shards(call& c);

  // records (rest_records.cpp)
  boost::asio::awaitable<net::http_response> record(call& c, const index_entry& ix);
  boost::asio::awaitable<net::http_response> put_record(call& c, const index_entry& ix, const std::string& key);
  boost::asio::awaitable<net::http_response> get_record(call& c, const index_entry& ix, const std::string& key);
  boost::asio::awaitable<net::http_response> delete_record(call& c, const index_entry& ix, const std::string& key);
  boost::asio::awaitable<net::http_response> bulk(call& c, const index_entry& ix);
  boost::asio::awaitable<net::http_response> scan(call& c, const index_entry& ix);
  boost::asio::awaitable<net::http_response> count(call& c, const index_entry& ix);

  // cluster, nodes, ring, partition map, health (rest_cluster.cpp)
  boost::asio::awaitable<net::http_response> get_cluster(call& c);
  boost::asio::awaitable<cluster_facts> gather_cluster(call& c);
  boost::asio::awaitable<net::http_response> get_node(call& c, const std::string& id);
  boost::asio::awaitable<net::http_response> remove_node(call& c, const std::string& id);
  boost::asio::awaitable<net::http_response> set_node(call& c, const std::string& id);
  net::http_response get_ring(call& c);
  net::http_response ring_lookup(call& c);
  net::http_response get_partition_map(call& c);
  net::http_response health(call& c);
  net::http_response openapi(call& c);
  /// GET /ui, /ui/app.js, /ui/app.css: the dashboard (src/ui/), compiled in.
  net::http_response ui_file(call& c);
  boost::asio::awaitable<net::http_response> health_ready(call& c);
  boost::asio::awaitable<net::http_response> cluster_health(call& c);

  // monitoring (rest_monitor.cpp)
  boost::asio::awaitable<net::http_response> stats(call& c);
  boost::asio::awaitable<net::http_response> stats_history(call& c);
  boost::asio::awaitable<net::http_response> anomalies(call& c);
  boost::asio::awaitable<net::http_response> events(call& c);
  boost::asio::awaitable<net::http_response> forecast(call& c);
  boost::asio::awaitable<net::http_response> hot_keys(call& c, const index_entry& ix, const shard_entry& s);
  /// `mine` and the same GET of `target` answered by every other node that is up (the rest
  /// listed with why not), for the views with `?scope=cluster`.
  /// Asks every other up node for `target` (as a forwarded request: GET, or `method` with
  /// `body`) and lists their answers after `mine`, with an error for each node that did not.
  boost::asio::awaitable<boost::json::array> fan_out(call& c, std::string target, boost::json::object mine,
                                                     net::http_method method = net::http_method::get,
                                                     std::string body = {});
  /// `?scope=node|cluster`: sets `cluster` (never for a forwarded request); an error text if bad.
  std::optional<std::string> parse_scope(call& c, bool& cluster);
  boost::asio::awaitable<net::http_response> metrics(call& c);
  boost::asio::awaitable<net::http_response> monitor_settings_endpoint(call& c);
  boost::asio::awaitable<net::http_response> cluster_load(call& c);

  // migrations (rest_migrations.cpp)
  boost::asio::awaitable<net::http_response> migrate_shard(call& c, const std::string& index, std::uint32_t shard);
  boost::asio::awaitable<net::http_response> split_shard(call& c, const std::string& index, std::uint32_t shard);
  boost::asio::awaitable<net::http_response> verify_shard(call& c, const index_entry& ix, const shard_entry& s);
  boost::asio::awaitable<net::http_response> list_migrations(call& c, const std::string* id);
  boost::asio::awaitable<net::http_response> control_migration(call& c, const std::string& id, const std::string& command);
  boost::asio::awaitable<net::http_response> migration_settings(call& c);
  boost::asio::awaitable<net::http_response> decommission(call& c, const std::string& id);
  // rest_rebalance.cpp
  boost::asio::awaitable<net::http_response> rebalance_plan(call& c);
  boost::asio::awaitable<net::http_response> rebalance_explain(call& c);
  boost::asio::awaitable<net::http_response> rebalance_apply(call& c, const std::string& id);
  boost::asio::awaitable<net::http_response> rebalance_settings_endpoint(call& c);
  boost::asio::awaitable<net::http_response> simulate(call& c);

  node_context ctx_;
  shard_service shards_;
  cluster_client cluster_;
  digest256 token_digest_;
};

}  // namespace shardd
