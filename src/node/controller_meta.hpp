#pragma once
// Where the controller keeps what must outlive it (DESIGN §6): migration records, the event
// journal and the next plan number. On the embedded plane that is the controller node's own
// store (its meta column family); on etcd it is etcd, under the cluster's prefix, so the node
// elected next finds them, and every write there is guarded by the writer's election.

#include "node/store_ops.hpp"
#include "storage/store.hpp"

#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shardd {

class controller_meta {
 public:
  using entries = std::vector<std::pair<std::string, std::string>>;
  virtual ~controller_meta() = default;
  /// Every key under `prefix`, in key order.
  virtual boost::asio::awaitable<result<entries>> scan(std::string prefix) = 0;
  virtual boost::asio::awaitable<result<std::optional<std::string>>> get(std::string key) = 0;
  /// `meta_put` and `meta_del` ops, all or none.
  virtual boost::asio::awaitable<result<void>> write(std::vector<storage::write_op> ops) = 0;
};

/// The embedded plane's: the node's store.
class store_meta final : public controller_meta {
 public:
  explicit store_meta(storage::store& s) : store_(s) {}
  boost::asio::awaitable<result<entries>> scan(std::string prefix) override { co_return store_.scan_meta(prefix); }
  boost::asio::awaitable<result<std::optional<std::string>>> get(std::string key) override { co_return store_.get_meta(key); }
  boost::asio::awaitable<result<void>> write(std::vector<storage::write_op> ops) override {
    auto w = co_await async_write(store_, std::move(ops));
    if (!w) co_return w.error();
    co_return result<void>{};
  }

 private:
  storage::store& store_;
};

}  // namespace shardd
