#include "node/node.hpp"

#include "net/http_server.hpp"
#include "net/peer_transport.hpp"
#include "node/controller.hpp"
#include "node/disk_guard.hpp"
#include "node/embedded_plane.hpp"
#include "node/etcd_plane.hpp"
#include "common/log.hpp"
#include "node/migrator.hpp"
#include "node/monitor.hpp"
#include "node/peer_service.hpp"
#include "node/peers.hpp"
#include "node/rest_api.hpp"
#include "node/ring_actor.hpp"
#include "storage/store.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <latch>
#include <thread>

#include <sys/syscall.h>
#include <unistd.h>

#include <sys/resource.h>

namespace shardd {

namespace asio = boost::asio;

namespace {

/// Every REST connection and peer connection is a descriptor: take what the hard limit allows.
void raise_open_file_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  const auto before = lim.rlim_cur;
  lim.rlim_cur = lim.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &lim) == 0)
    SHARDD_LOG(debug, "open_file_limit_raised", "from", before, "to", lim.rlim_cur);
}

/// Lowers the CPU priority (nice +`step`) of each of a pool's `n` threads: background work
/// (a migration's SST files, imports, digests) yields the cores to the network threads, each of
/// which alone serves the connections dealt to it (Cassandra and RocksDB lower their compaction
/// threads the same way). One task per thread, held at a latch until all have started, so each
/// runs on a different thread.
void lower_pool_priority(asio::thread_pool& pool, std::uint32_t n, int step) {
  std::latch started(static_cast<std::ptrdiff_t>(n));
  std::latch done(static_cast<std::ptrdiff_t>(n));
  for (std::uint32_t i = 0; i < n; ++i)
    asio::post(pool, [&] {
      const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
      errno = 0;
      const int now = ::getpriority(PRIO_PROCESS, tid);
      if (errno == 0 && ::setpriority(PRIO_PROCESS, tid, now + step) != 0)
        SHARDD_LOG(debug, "thread_priority_unchanged", "error", std::strerror(errno));
      started.arrive_and_wait();
      done.count_down();
    });
  done.wait();
}

}  // namespace

/// An io_context whose services can be shut down before it is destroyed. A coroutine parked on
/// one network thread's context can own objects (a peer connection's socket) of another's; a
/// context's destructor shuts its services down and frees them at once, so whichever context
/// went second would destroy objects whose services were already freed. The node shuts all of
/// them down first (pending handlers destroyed while every service still exists), then lets
/// them be destroyed.
struct io_loop : asio::io_context {
  using asio::io_context::io_context;
  using asio::execution_context::shutdown;
};

struct node::impl {
  explicit impl(node_config c)
      : cfg(std::move(c)), ioc(1), read_pool(cfg.read_threads), migration_pool(cfg.migration_threads),
        migration_high_pool(cfg.migration_threads), signals(ioc, SIGINT, SIGTERM) {
    for (std::uint32_t i = 1; i < cfg.threads; ++i) {
      auto& c = session_iocs.emplace_back(std::make_unique<io_loop>(1));
      session_work.push_back(asio::make_work_guard(*c));
    }
  }

  node_config cfg;
  // One io_context per network thread, each run by that thread alone (as nginx runs a worker
  // per core): a connection's reads, handler and writes stay on one thread, so no request wakes
  // another thread or takes the scheduler's lock to hop between them. `ioc` (thread 0) also runs
  // the actors, the peer connections and the control plane; REST connections are dealt out over
  // it and the others.
  io_loop ioc;
  std::vector<std::unique_ptr<io_loop>> session_iocs;  // threads 1..threads-1
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> session_work;
  asio::thread_pool read_pool;
  asio::thread_pool migration_pool;  // a long digest or a stalled import never delays a GET
  asio::thread_pool migration_high_pool;  // the same work for moves of priority high, at a higher priority
  asio::signal_set signals;
  std::atomic<bool> stopping{false};
  std::unique_ptr<storage::store> store;
  std::unique_ptr<ring_actor> ring;
  std::unique_ptr<peers> peer_pool;
  std::unique_ptr<control_plane> plane;
  etcd_plane* etcd = nullptr;  ///< the plane, when it is on etcd
  controller_slot controllers;
  std::unique_ptr<migrator> mig;
  std::unique_ptr<monitor> mon;
  std::unique_ptr<disk_guard> disk;
  std::unique_ptr<rest_api> api;
  std::unique_ptr<peer_service> peer_svc;
  std::unique_ptr<net::peer_server> peer_listener;
  std::unique_ptr<net::http_server> http;
  int exit_code = 0;

  asio::awaitable<void> shutdown(int signal);
  ~impl() { shut_down_contexts(); }
  std::vector<asio::io_context*> network_contexts() {
    std::vector<asio::io_context*> all{&ioc};
    for (auto& c : session_iocs) all.push_back(c.get());
    return all;
  }
  /// Destroys what every network context still holds (see io_loop), while the node's parts
  /// those handlers may point to still exist.
  void shut_down_contexts() {
    for (auto& c : session_iocs) c->shutdown();
    ioc.shutdown();
  }
  /// Starts a controller on this node (it leads) and makes it the one the API and peers reach.
  controller* start_controller(controller_meta* meta) {
    auto c = std::make_unique<controller>(ioc.get_executor(), cfg, *plane, store.get(), peer_pool.get(), meta);
    c->set_local_load([m = mon.get()] { return m->latest_load(); });
    c->set_local_disk(disk.get());
    c->set_local_events({[m = mon.get()](std::size_t n) { return m->pending_events(n); },
                         [m = mon.get()](std::uint64_t seq) { m->acknowledge_events(seq); }, mon->incarnation()});
    c->begin();
    return controllers.install(std::move(c));
  }
  node_entry self_entry() const {
    return node_entry{cfg.node_id, cfg.rest_listen.to_string(), cfg.peer_listen.to_string(), cfg.weight, node_state::up};
  }
};

node::node(node_config cfg) : impl_(std::make_unique<impl>(std::move(cfg))) {}

node::~node() {
  impl_->shut_down_contexts();
  if (impl_->store) impl_->store->close();
}

result<void> node::start() {
  auto& m = *impl_;
  std::error_code ec;
  std::filesystem::create_directories(m.cfg.data_dir, ec);
  if (ec) return make_error(errc::invalid_argument, "data_dir: cannot create " + m.cfg.data_dir + ": " + ec.message());

  storage::store_options so;
  so.path = (std::filesystem::path(m.cfg.data_dir) / "db").string();
  so.mode = m.cfg.durability == durability_mode::fsync ? storage::durability::fsync : storage::durability::async;
  so.block_cache_bytes = m.cfg.block_cache_mb << 20;
  auto st = storage::store::open(so);
  if (!st) return st.error();
  m.store = std::move(*st);
  lower_pool_priority(m.migration_pool, m.cfg.migration_threads, static_cast<int>(m.cfg.migration_nice));
  lower_pool_priority(m.migration_high_pool, m.cfg.migration_threads, static_cast<int>(m.cfg.migration_high_nice));

  m.ring = std::make_unique<ring_actor>(m.ioc.get_executor(), m.cfg, *m.store);
  auto loaded = m.ring->load();
  if (!loaded) return loaded.error();
  m.ring->start();

  try {
    m.peer_pool = std::make_unique<peers>(m.ioc, m.cfg, *m.ring, m.network_contexts());
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument, e.what());
  }
  try {
    if (m.cfg.etcd.enabled()) {
      auto e = std::make_unique<etcd_plane>(asio::make_strand(m.ioc), m.cfg, *m.ring, *m.store, *m.peer_pool);
      m.etcd = e.get();
      m.plane = std::move(e);
    } else {
      m.plane = std::make_unique<embedded_plane>(asio::make_strand(m.ioc), m.cfg, *m.ring, *m.store, *m.peer_pool);
    }
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument, e.what());
  }
  m.disk = std::make_unique<disk_guard>(m.cfg);
  m.disk->refresh(m.ring->snapshot()->map->settings.rebalance.disk);
  m.plane->set_disk(m.disk.get());
  m.mon = std::make_unique<monitor>(m.ioc.get_executor(), m.cfg, *m.store, *m.ring);
  auto latest_load = [mon = m.mon.get()] { return mon->latest_load(); };
  m.plane->set_load_source(latest_load);
  control_plane::event_source events{[mon = m.mon.get()](std::size_t n) { return mon->pending_events(n); },
                                     [mon = m.mon.get()](std::uint64_t seq) { mon->acknowledge_events(seq); },
                                     m.mon->incarnation()};
  m.plane->set_event_source(events);
  // On etcd the node runs a controller while it leads; on the embedded plane, the bootstrap node always.
  const bool is_controller = !m.etcd && m.plane->is_controller(m.cfg.node_id);
  if (is_controller) m.start_controller(nullptr);
  if (m.etcd)
    m.etcd->on_leadership([&m](bool leads) {
      if (leads) {
        if (!m.stopping) m.start_controller(&m.etcd->meta());
        SHARDD_LOG(info, "controller_started", "map_version", m.ring->snapshot()->map->version);
      } else if (auto* c = m.controllers.retire()) {
        c->end();
        SHARDD_LOG(warn, "controller_stopped");
      }
    });
  m.mig = std::make_unique<migrator>(m.ioc.get_executor(), m.cfg, *m.store, *m.ring, *m.peer_pool, m.migration_pool,
                                        m.migration_high_pool);
  m.mig->set_foreground([mon = m.mon.get()] {
    const auto f = mon->foreground();
    return std::pair<std::uint64_t, std::uint64_t>(f.samples, f.p99_us);
  });

  node_context ctx{m.cfg, *m.store, *m.ring, m.read_pool, m.stopping, m.peer_pool.get(), m.plane.get(), &m.controllers,
                   m.mig.get(), m.mon.get(), m.disk.get()};
  ctx.bulk_pool = &m.migration_pool;
  m.api = std::make_unique<rest_api>(ctx);
  m.peer_svc = std::make_unique<peer_service>(ctx, [api = m.api.get()](net::http_request req, std::uint64_t v) {
    return api->handle_forwarded(std::move(req), v);
  });
  {
    // Moves that were cutting over take no write until the map is current (see migrator).
    auto prepared = asio::co_spawn(m.ioc, m.mig->prepare(), asio::use_future);
    while (prepared.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) m.ioc.run_one_for(std::chrono::milliseconds(10));
    prepared.get();
  }
  try {
    net::peer_server_options po;
    po.max_in_flight = m.cfg.peer_max_in_flight;
    po.write_timeout = std::chrono::milliseconds(m.cfg.peer_write_timeout_ms);
    po.idle_timeout = std::chrono::milliseconds(m.cfg.peer_idle_timeout_ms);
    po.session_contexts = m.network_contexts();
    m.peer_listener = std::make_unique<net::peer_server>(
        m.ioc, m.cfg.tls, net::peer_identity{m.cfg.cluster_id, m.cfg.node_id},
        [svc = m.peer_svc.get()](peer::frame f, std::string from) { return svc->handle(std::move(f), std::move(from)); }, po);
    m.peer_listener->start(m.cfg.peer_listen);
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument, e.what());
  }

  if (is_controller) {
    // Refresh this node's own entry (addresses or weight may have changed since last run).
    auto self = m.self_entry();
    asio::co_spawn(
        m.ioc,
        [ctl = m.controllers.current(), self]() -> asio::awaitable<void> {
          peer::join_request j{self.id, self.rest_address, self.peer_address, self.weight};
          auto r = co_await ctl->join(std::move(j));
          if (!r) SHARDD_LOG(err, "self_registration_failed", "error", r.error().detail);
        },
        asio::detached);
  } else {
    // A member registers with the controller; a new one must hold a map before it serves.
    auto registered = asio::co_spawn(m.ioc, m.plane->register_node(m.self_entry()), asio::use_future);
    while (registered.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready) m.ioc.run_one_for(std::chrono::milliseconds(50));
    if (auto r = registered.get(); !r) return r.error();
  }

  net::http_server_options ho;
  ho.max_body_bytes = m.cfg.max_body_bytes;
  ho.idle_timeout = std::chrono::milliseconds(m.cfg.idle_timeout_ms);
  ho.io_timeout = std::chrono::milliseconds(m.cfg.request_timeout_ms);
  ho.header_timeout = std::chrono::milliseconds(m.cfg.header_timeout_ms);
  ho.max_connections = m.cfg.max_connections;
  ho.node_id = m.cfg.node_id;
  ho.access_log = m.cfg.access_log;
  ho.access_log_sample = m.cfg.access_log_sample;
  ho.check = [api = m.api.get()](const net::http_request& head) { return api->check_header(head); };
  ho.session_contexts = m.network_contexts();
  raise_open_file_limit();
  try {
    m.http = std::make_unique<net::http_server>(
        m.ioc, m.cfg.tls, [api = m.api.get()](net::http_request req) { return api->handle(std::move(req)); }, ho);
    m.http->start(m.cfg.rest_listen);
  } catch (const std::exception& e) {
    return make_error(errc::invalid_argument, e.what());
  }
  // Outgoing migrations that were running when the node stopped continue (or roll back).
  m.mig->recover();
  monitor_sources sources;
  sources.rest_connections = [http = m.http.get()] { return http->open_connections(); };
  sources.peer_connections = [p = m.peer_listener.get()] { return p->open_connections(); };
  sources.heartbeat_rtt_us = [plane = m.plane.get()] { return plane->heartbeat_rtt_us(); };
  sources.ping = [pool = m.peer_pool.get(), ring = m.ring.get()](std::string id) -> asio::awaitable<result<std::uint64_t>> {
    const auto sent = std::chrono::steady_clock::now();
    auto f = make_frame(peer::frame_type::ping, {}, ring->snapshot()->map->version);
    auto r = check_reply(co_await pool->call(std::move(id), std::move(f), std::chrono::seconds(1)));
    if (!r) co_return r.error();
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - sent).count();
    co_return static_cast<std::uint64_t>(std::max<std::int64_t>(us, 1));
  };
  m.mon->set_sources(std::move(sources));
  m.mon->start();
  // The data disk against the map's watermarks, every heartbeat interval (the write path and
  // the heartbeats read the result), measured on the read pool: with storage.capacity_bytes it
  // walks the data directory, which must not hold up the io threads.
  asio::co_spawn(
      m.ioc,
      [&m]() -> asio::awaitable<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        while (!m.stopping) {
          timer.expires_after(std::chrono::milliseconds(m.cfg.heartbeat_interval_ms));
          auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
          if (ec || m.stopping) break;
          auto [e] = co_await asio::co_spawn(
              m.read_pool,
              [&m]() -> asio::awaitable<void> {
                m.disk->refresh(m.ring->snapshot()->map->settings.rebalance.disk);
                co_return;
              },
              asio::as_tuple(asio::use_awaitable));
          if (e) break;
        }
      },
      asio::detached);
  m.signals.async_wait([&m](boost::system::error_code e, int sig) {
    if (e) return;
    asio::co_spawn(m.ioc, m.shutdown(sig), asio::detached);
  });
  const auto snap = m.ring->snapshot();
  SHARDD_LOG(info, "node_started", "rest", m.cfg.rest_listen.to_string(), "peer", m.cfg.peer_listen.to_string(), "role",
             is_controller ? "controller" : "member", "map_version", snap->map->version, "durability",
             m.cfg.durability == durability_mode::fsync ? "fsync" : "async", "threads", m.cfg.threads, "version",
             SHARDD_VERSION);
  return {};
}

asio::awaitable<void> node::impl::shutdown(int sig) {
  SHARDD_LOG(info, "node_stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  stopping = true;
  co_await http->shutdown(std::chrono::milliseconds(cfg.shutdown_timeout_ms));
  plane->stop();
  mon->stop();
  co_await mig->stop(std::chrono::milliseconds(500));
  if (auto* c = controllers.retire()) c->end();
  if (etcd) co_await etcd->resign();
  peer_listener->stop();
  peer_pool->close_all();
  ring->stop();
  session_work.clear();
  for (auto& c : session_iocs) c->stop();
  ioc.stop();
}

int node::run() {
  auto& m = *impl_;
  std::vector<std::thread> threads;
  for (auto& c : m.session_iocs) threads.emplace_back([c = c.get()] { c->run(); });
  m.ioc.run();
  for (auto& t : threads) t.join();
  m.read_pool.join();
  m.migration_pool.join();
  m.migration_high_pool.join();
  m.shut_down_contexts();
  // The writer drains what was queued (every acknowledged write is already durable), then
  // RocksDB closes cleanly.
  m.store->close();
  SHARDD_LOG(info, "node_stopped");
  return m.exit_code;
}

}  // namespace shardd
