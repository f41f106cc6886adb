#pragma once
// Typed etcd operations for the control plane on etcd (DESIGN §6): reads, compare-and-set on
// a key's mod revision, leases, and a watch that resumes where it broke off. Built on the
// core's gateway codec (shardd/etcd.hpp) and the net layer's transport.

#include "net/etcd_transport.hpp"
#include "shardd/etcd.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace shardd {

class etcd_client {
 public:
  etcd_client(boost::asio::any_io_executor ex, net::etcd_options o);

  /// The key, or nullopt when it does not exist; `revision` gets the store's revision then.
  boost::asio::awaitable<result<std::optional<etcd::kv>>> get(std::string key, std::int64_t* revision = nullptr);
  /// Every key under `prefix`, in key order.
  boost::asio::awaitable<result<std::vector<etcd::kv>>> list(std::string prefix);
  /// The store's revision after the put.
  boost::asio::awaitable<result<std::int64_t>> put(std::string key, std::string value, std::int64_t lease = 0);
  boost::asio::awaitable<result<void>> remove(std::string key);

  struct cas_outcome {
    bool done = false;
    std::int64_t revision = 0;       ///< done: the key's new mod revision
    std::optional<etcd::kv> current;  ///< not done: the key as it is (nullopt: absent)
  };
  /// Writes `value` if `key`'s mod revision is `mod_revision` (0: only if absent).
  boost::asio::awaitable<result<cas_outcome>> put_if(std::string key, std::string value, std::int64_t mod_revision,
                                                     std::int64_t lease = 0);
  struct txn_outcome {
    bool done = false;
    std::int64_t revision = 0;         ///< done: the store's revision after the writes
    std::vector<etcd::kv> current;     ///< not done: the keys of `read_back` that exist
  };
  /// Every write of `then` at one revision if every condition of `when` holds (etcd::txn).
  boost::asio::awaitable<result<txn_outcome>> txn(std::vector<etcd::compare> when, std::vector<etcd::write> then,
                                                  std::vector<std::string> read_back = {});
  /// Deletes `key` if its mod revision is `mod_revision`; false if it was not.
  boost::asio::awaitable<result<bool>> remove_if(std::string key, std::int64_t mod_revision);

  /// A lease of `ttl` (etcd may grant more); its id and TTL.
  boost::asio::awaitable<result<etcd::lease_reply>> grant(std::chrono::seconds ttl);
  /// Renews a lease; the seconds it has left (0: it is gone, and its keys with it).
  boost::asio::awaitable<result<std::int64_t>> keepalive(std::int64_t lease);
  boost::asio::awaitable<result<void>> revoke(std::int64_t lease);

  /// Calls `on_event` with every change of `key` (or of the keys under it, `prefix`) from
  /// revision `from` on, in order, each once: when the stream breaks (a member dies) it is
  /// opened again from the revision after the last event seen, on the next member. Returns
  /// when `on_event` returns false, or with `conflict` when `from` was compacted away (the
  /// caller reads the key again and watches from there), or with `unavailable` after
  /// `give_up` without any member to watch on.
  boost::asio::awaitable<result<void>> watch(std::string key, bool prefix, std::int64_t from,
                                             std::function<bool(const etcd::watch_event&)> on_event,
                                             std::chrono::milliseconds give_up = std::chrono::seconds(30));

  /// Ends the open watches, for good (shutdown): they return without opening again.
  void close_watches() {
    closing_ = true;
    transport_.close_streams();
  }
  net::etcd_transport& transport() { return transport_; }
  /// Whether some member answered the last request (true before the first).
  bool reachable() const noexcept { return reachable_.load(); }

 private:
  boost::asio::awaitable<result<std::string>> post(const etcd::request& req);
  /// A token for the configured user (etcd's auth), set on the transport.
  boost::asio::awaitable<result<void>> authenticate();
  boost::asio::any_io_executor ex_;
  std::string user_, password_;  ///< etcd's auth (empty user: none)
  std::atomic<bool> authenticated_{false};
  net::etcd_transport transport_;
  std::atomic<bool> closing_{false};
  std::atomic<bool> reachable_{true};
};

}  // namespace shardd
