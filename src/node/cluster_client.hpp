#pragma once
// Requests the REST layer makes to other nodes: forwarding, writes and scans on a shard's
// owner, and the fan-out of shard stats.

#include "common/config.hpp"
#include "net/http_types.hpp"
#include "node/ring_actor.hpp"
#include "node/shard_service.hpp"
#include "shardd/peer_messages.hpp"

#include <boost/asio/awaitable.hpp>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace shardd {

class peers;

/// Shard stats gathered from the owners of a map's shards.
struct cluster_stats {
  std::map<std::pair<std::uint32_t, std::uint32_t>, storage::shard_stats> shards;  ///< (index id, shard id)
  std::map<std::string, std::string> unreachable;                                 ///< node → why

  const storage::shard_stats* find(const index_entry& ix, const shard_entry& s) const {
    auto it = shards.find({ix.id, s.id});
    return it == shards.end() ? nullptr : &it->second;
  }
};

/// What the REST layer asks of other nodes, each call to this node's own shards served by the
/// local `shard_service` instead. Errors are typed: `unavailable` when the node cannot be
/// reached or does not answer in `rest.request_timeout_ms`, `conflict` when the node says it
/// does not hold the shard, `internal` for an answer that does not decode. Without peers
/// (unit tests) every node is this one. Stateless; safe from any strand. Owned by the REST API.
class cluster_client {
 public:
  cluster_client(const node_config& cfg, ring_actor& ring, peers* p, shard_service& local)
      : cfg_(cfg), ring_(ring), peers_(p), local_(local) {}

  bool clustered() const noexcept { return peers_ != nullptr; }
  bool is_local(const std::string& node) const { return !peers_ || node == cfg_.node_id; }

  /// An HTTP request relayed to `node` as a forwarded request carrying `map_version`.
  struct relayed {
    net::http_response response;
    bool moved = false;  ///< the node's newer map says the shard is elsewhere: re-route
  };
  boost::asio::awaitable<result<relayed>> forward(const std::string& node, const net::http_request& req,
                                                  std::uint64_t map_version);

  /// Writes on the node that owns the shard of `index_id` (local ones through the store).
  boost::asio::awaitable<result<std::vector<storage::op_status>>> write_on(const std::string& node, std::uint32_t index_id,
                                                                          std::vector<storage::write_op> ops);

  /// One page of a shard scan on `node`.
  boost::asio::awaitable<result<peer::scan_reply>> scan_on(const std::string& node, peer::scan_request q,
                                                           std::uint64_t map_version);

  /// Stats of every shard of `m` (of one index if `only_index`): local ones from the store,
  /// the others from their owners, all asked at once. Owners that are not up or do not
  /// answer are listed in `unreachable`.
  boost::asio::awaitable<cluster_stats> collect_stats(const partition_map& m, const std::string* only_index);

 private:
  const node_config& cfg_;
  ring_actor& ring_;
  peers* peers_;
  shard_service& local_;
};

}  // namespace shardd
