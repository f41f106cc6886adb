#pragma once
// The REST API (DESIGN §10): routing of HTTP requests to handlers, in a cluster.

#include "net/http_types.hpp"
#include "common/config.hpp"
#include "node/ring_actor.hpp"
#include "shardd/peer_messages.hpp"
#include "shardd/sha256.hpp"
#include "storage/store.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <map>

namespace shardd {

class peers;
class control_plane;
class controller;
class migrator;

/// What handlers may use. Everything here is owned by the node and outlives the API. Without
/// `peer` (unit tests) every shard is served locally.
struct node_context {
  const node_config& config;
  storage::store& store;
  ring_actor& ring;
  boost::asio::thread_pool& read_pool;  ///< blocking storage reads (scans, cache misses)
  const std::atomic<bool>& stopping;
  peers* peer = nullptr;
  control_plane* plane = nullptr;
  controller* ctl = nullptr;  ///< set on the controller node only
  migrator* mig = nullptr;
};

/// Turns HTTP requests into answers. Stateless between requests; safe to call from many
/// strands at once. Each request reads one map snapshot; a record whose shard lives on
/// another node is forwarded to its owner over the peer protocol and the owner's answer is
/// relayed; counts, listings, scans and bulks fan out to every owner involved.
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

  // Shard-level operations, also used by the peer service for requests from other nodes.
  boost::asio::awaitable<result<peer::scan_reply>> local_scan(peer::scan_request req);
  result<peer::stats_reply> local_stats() const;
  /// The median user key of a local range shard, for a split.
  boost::asio::awaitable<result<peer::median_reply>> local_median(peer::median_request req);

 private:
  struct call;
  boost::asio::awaitable<net::http_response> run(call& c);
  boost::asio::awaitable<net::http_response> dispatch(call& c);

  // cluster-wide
  boost::asio::awaitable<net::http_response> to_controller(call& c);
  boost::asio::awaitable<net::http_response> forward(call& c, const std::string& node);
  struct stats_view;
  boost::asio::awaitable<stats_view> collect_stats(const partition_map& m, const std::string* only_index);
  std::optional<net::http_response> owner_unavailable(call& c, const index_entry& ix, const shard_entry& s);

  boost::asio::awaitable<net::http_response> put_index(call& c, const std::string& name);
  boost::asio::awaitable<net::http_response> get_index(call& c, const std::string& name, unsigned status = 200);
  boost::asio::awaitable<net::http_response> list_indexes(call& c);
  boost::asio::awaitable<net::http_response> delete_index(call& c, const std::string& name);
  boost::asio::awaitable<net::http_response> record(call& c, const index_entry& ix, const std::string& key);
  boost::asio::awaitable<net::http_response> put_record(call& c, const index_entry& ix, const std::string& key);
  boost::asio::awaitable<net::http_response> get_record(call& c, const index_entry& ix, const std::string& key);
  boost::asio::awaitable<net::http_response> delete_record(call& c, const index_entry& ix, const std::string& key);
  boost::asio::awaitable<net::http_response> bulk(call& c, const index_entry& ix);
  boost::asio::awaitable<net::http_response> scan(call& c, const index_entry& ix);
  boost::asio::awaitable<net::http_response> count(call& c, const index_entry& ix);
  boost::asio::awaitable<net::http_response> list_shards(call& c);
  boost::asio::awaitable<net::http_response> get_cluster(call& c);
  boost::asio::awaitable<net::http_response> set_node(call& c, const std::string& id);
  boost::asio::awaitable<net::http_response> migrate_shard(call& c, const std::string& index, std::uint32_t shard);
  boost::asio::awaitable<net::http_response> split_shard(call& c, const std::string& index, std::uint32_t shard);
  boost::asio::awaitable<net::http_response> list_migrations(call& c, const std::string* id);
  boost::asio::awaitable<net::http_response> control_migration(call& c, const std::string& id, const std::string& command);
  boost::asio::awaitable<net::http_response> migration_settings(call& c);
  boost::asio::awaitable<net::http_response> decommission(call& c, const std::string& id);
  boost::asio::awaitable<bool> await_newer_map(call& c, std::chrono::milliseconds limit);
  /// await_newer_map, then, if none came in time, the controller's map (taken if newer). An
  /// error only when the controller cannot be asked.
  boost::asio::awaitable<result<void>> catch_up_map(call& c, std::chrono::milliseconds limit);
  net::http_response get_ring(call& c);
  net::http_response ring_lookup(call& c);
  net::http_response get_partition_map(call& c);
  net::http_response health(call& c);

  boost::asio::awaitable<result<std::vector<storage::op_status>>> write_on(const std::string& node, std::uint32_t index_id,
                                                                          std::vector<storage::write_op> ops);
  bool authorized(const net::http_request& req) const;

  node_context ctx_;
  digest256 token_digest_;
};

}  // namespace shardd
