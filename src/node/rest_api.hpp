#pragma once
// The REST API (DESIGN §10): routing of HTTP requests to handlers.

#include "net/http_types.hpp"
#include "node/config.hpp"
#include "node/ring_actor.hpp"
#include "shardd/sha256.hpp"
#include "storage/store.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>

namespace shardd {

/// What handlers may use. Everything here is owned by the node and outlives the API.
struct rest_context {
  const node_config& config;
  storage::store& store;
  ring_actor& ring;
  boost::asio::thread_pool& read_pool;  ///< blocking storage reads (scans, cache misses)
  const std::atomic<bool>& stopping;
};

/// Turns HTTP requests into answers. Stateless between requests; safe to call from many
/// strands at once. Each handler reads one map snapshot, so a request sees one map version.
class rest_api {
 public:
  explicit rest_api(rest_context ctx);

  boost::asio::awaitable<net::http_response> handle(net::http_request req);

 private:
  struct call;
  boost::asio::awaitable<net::http_response> dispatch(call& c);

  boost::asio::awaitable<net::http_response> put_index(call& c, const std::string& name);
  net::http_response get_index(call& c, const std::string& name);
  net::http_response list_indexes(call& c);
  boost::asio::awaitable<net::http_response> delete_index(call& c, const std::string& name);
  boost::asio::awaitable<net::http_response> put_record(call& c, const index_entry& ix, const std::string& key);
  boost::asio::awaitable<net::http_response> get_record(call& c, const index_entry& ix, const std::string& key);
  boost::asio::awaitable<net::http_response> delete_record(call& c, const index_entry& ix, const std::string& key);
  boost::asio::awaitable<net::http_response> bulk(call& c, const index_entry& ix);
  boost::asio::awaitable<net::http_response> scan(call& c, const index_entry& ix);
  net::http_response count(call& c, const index_entry& ix);
  net::http_response list_shards(call& c);
  net::http_response health(call& c);

  bool authorized(const net::http_request& req) const;

  rest_context ctx_;
  digest256 token_digest_;
};

}  // namespace shardd
