#pragma once
// A node's REST API without sockets: a real store, ring actor and controller on an
// io_context, requests handed straight to rest_api::handle. For unit tests and the REST fuzzer.

#include "node/controller.hpp"
#include "node/monitor.hpp"
#include "node/rest_api.hpp"

#include "support/temp_dir.hpp"

#include <functional>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <thread>

namespace shardd::test {

namespace asio = boost::asio;

constexpr const char* token = "unit-test-token-0123456789";

/// A control plane that keeps the map in this node only: the controller's changes are
/// installed in the ring actor and go nowhere else.
class local_plane final : public control_plane {
 public:
  explicit local_plane(ring_actor& r) : ring_(r) {}
  asio::awaitable<result<snapshot_ptr>> load() override { co_return ring_.snapshot(); }
  asio::awaitable<result<snapshot_ptr>> compare_and_set(std::uint64_t expected, partition_map next) override {
    if (ring_.snapshot()->map->version != expected) co_return make_error(errc::conflict, "stale");
    co_return co_await ring_.install(std::move(next));
  }
  void watch(std::function<void(const snapshot_ptr&)> f) override { ring_.on_install(std::move(f)); }
  asio::awaitable<result<void>> register_node(node_entry) override { co_return result<void>{}; }
  std::string elect_controller() override { return "n1"; }
  bool controller_reachable() const noexcept override { return true; }
  void set_load_source(load_source) override {}
  std::optional<std::uint64_t> heartbeat_rtt_us() const noexcept override { return std::nullopt; }
  std::chrono::milliseconds handover_wait() const override { return handover; }

  /// How long a change waits for a controller (as etcd's plane does through a handover).
  std::chrono::milliseconds handover{0};

 private:
  ring_actor& ring_;
};

struct api_fixture {
  temp_dir dir;
  node_config cfg;
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  asio::thread_pool pool{1};
  std::atomic<bool> stopping{false};
  std::unique_ptr<storage::store> store;
  std::unique_ptr<ring_actor> ring;
  std::unique_ptr<local_plane> plane;
  controller_slot controllers;
  controller* ctl = nullptr;
  std::unique_ptr<monitor> mon;
  std::unique_ptr<rest_api> api;
  std::thread runner;

  /// `tune` changes the config before anything starts.
  explicit api_fixture(std::uint32_t monitor_interval_ms = 5000, const std::function<void(node_config&)>& tune = {}) {
    cfg.monitor_interval_ms = monitor_interval_ms;
    cfg.node_id = "n1";
    cfg.token = token;
    cfg.bootstrap = true;
    cfg.default_shards = 4;
    cfg.max_doc_bytes = 1000;
    if (tune) tune(cfg);
    auto s = storage::store::open(storage::store_options{dir.sub("db")});
    if (!s) throw std::runtime_error("store: " + s.error().detail);
    store = std::move(*s);
    ring = std::make_unique<ring_actor>(ioc.get_executor(), cfg, *store);
    if (!ring->load()) throw std::runtime_error("ring load failed");
    ring->start();
    plane = std::make_unique<local_plane>(*ring);
    ctl = controllers.install(std::make_unique<controller>(ioc.get_executor(), cfg, *plane));
    ctl->begin();
    mon = std::make_unique<monitor>(ioc.get_executor(), cfg, *store, *ring);
    mon->start();
    ctl->set_local_load([m = mon.get()] { return m->latest_load(); });
    ctl->set_local_events({[m = mon.get()](std::size_t n) { return m->pending_events(n); },
                           [m = mon.get()](std::uint64_t seq) { m->acknowledge_events(seq); }, mon->incarnation()});
    api = std::make_unique<rest_api>(
        node_context{cfg, *store, *ring, pool, stopping, nullptr, plane.get(), &controllers, nullptr, mon.get()});
    runner = std::thread([this] { ioc.run(); });
  }
  ~api_fixture() {
    mon->stop();
    ctl->end();
    ring->stop();
    work.reset();
    ioc.stop();
    runner.join();
    pool.join();
    store->close();
  }

  net::http_response call(net::http_method m, std::string target, std::string body = {}, bool auth = true) {
    net::http_request req;
    req.method = m;
    req.method_text = m == net::http_method::get ? "GET" : m == net::http_method::put ? "PUT" : m == net::http_method::post ? "POST" : m == net::http_method::delete_ ? "DELETE" : m == net::http_method::head ? "HEAD" : "PATCH";
    req.target = std::move(target);
    req.body = std::move(body);
    if (auth) req.authorization = std::string("Bearer ") + token;
    return asio::co_spawn(ioc, api->handle(std::move(req)), asio::use_future).get();
  }
  net::http_response get(std::string t) { return call(net::http_method::get, std::move(t)); }
  net::http_response put(std::string t, std::string b) { return call(net::http_method::put, std::move(t), std::move(b)); }
};

}  // namespace shardd::test
