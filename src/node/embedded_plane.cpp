#include "node/embedded_plane.hpp"

#include "node/disk_guard.hpp"

#include "node/gather.hpp"
#include "common/log.hpp"
#include "shardd/peer_messages.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

namespace shardd {

namespace asio = boost::asio;
using asio::awaitable;

namespace {
constexpr auto push_timeout = std::chrono::milliseconds(1000);
constexpr auto join_timeout = std::chrono::milliseconds(3000);
}  // namespace

embedded_plane::embedded_plane(asio::any_io_executor ex, const node_config& cfg, ring_actor& ring, storage::store& store,
                               peers& p)
    : ex_(std::move(ex)), cfg_(cfg), ring_(ring), store_(store), peers_(p),
      timer_(std::make_shared<asio::steady_timer>(ex_)) {}

std::string embedded_plane::elect_controller() {
  const auto snap = ring_.snapshot();
  return snap->map->controller.empty() ? (cfg_.join ? std::string() : cfg_.node_id) : snap->map->controller;
}

void embedded_plane::watch(std::function<void(const snapshot_ptr&)> f) { ring_.on_install(std::move(f)); }

void embedded_plane::stop() {
  stopping_ = true;
  asio::post(ex_, [t = timer_] { t->cancel(); });
}

std::string embedded_plane::controller_address() const {
  const auto snap = ring_.snapshot();
  if (const auto* c = snap->map->find_node(snap->map->controller)) return c->peer_address;
  if (!join_address_.empty()) return join_address_;
  return cfg_.join ? cfg_.join->to_string() : std::string();
}

awaitable<result<peer::frame>> embedded_plane::call_controller(peer::frame f, std::chrono::milliseconds timeout) {
  const auto snap = ring_.snapshot();
  if (!snap->map->controller.empty() && snap->map->find_node(snap->map->controller))
    co_return co_await peers_.call(snap->map->controller, std::move(f), timeout);
  co_return co_await peers_.call_address(controller_address(), std::move(f), timeout);
}

namespace {

/// A map that comes from the controller names its sender as controller.
result<partition_map> map_from_controller(const peer::frame& reply) {
  auto m = from_json(reply.payload);
  if (!m) return m.error();
  if (m->controller != reply.sender)
    return make_error(errc::forbidden, "a map from '" + reply.sender + "' names '" + m->controller + "' as controller");
  return m;
}

}  // namespace

awaitable<result<snapshot_ptr>> embedded_plane::load() {
  if (is_controller(cfg_.node_id)) co_return ring_.snapshot();
  auto f = make_frame(peer::frame_type::map_get, {}, ring_.snapshot()->map->version);
  auto r = co_await call_controller(std::move(f), join_timeout);
  if (!r) co_return r.error();
  auto m = map_from_controller(*r);
  if (!m) co_return m.error();
  co_return co_await ring_.install(std::move(*m));
}

awaitable<result<snapshot_ptr>> embedded_plane::compare_and_set(std::uint64_t expected, partition_map next) {
  if (!is_controller(cfg_.node_id))
    co_return make_error(errc::conflict, "only the controller (" + elect_controller() + ") changes the map");
  const auto current = ring_.snapshot();
  if (current->map->version != expected)
    co_return make_error(errc::conflict, "map version is " + std::to_string(current->map->version) + ", not " +
                                             std::to_string(expected));
  if (next.version <= expected) co_return make_error(errc::invalid_argument, "the next map must have a newer version");
  auto installed = co_await ring_.install(std::move(next));
  if (!installed) co_return installed;
  co_await push(*installed);
  co_return installed;
}

awaitable<void> embedded_plane::push(snapshot_ptr snap) {
  const std::string json = to_json(*snap->map);
  std::vector<awaitable<result<peer::frame>>> sends;
  std::vector<std::string> targets;
  for (const auto& [id, n] : snap->map->nodes) {
    if (id == cfg_.node_id || n.state != node_state::up) continue;
    targets.push_back(id);
    sends.push_back(peers_.call(id, make_frame(peer::frame_type::map_push, json, snap->map->version), push_timeout));
  }
  if (sends.empty()) co_return;
  auto results = co_await gather(std::move(sends));
  for (std::size_t i = 0; i < results.size(); ++i)
    if (!results[i])
      SHARDD_LOG(warn, "map_push_failed", "peer", targets[i], "map_version", snap->map->version, "error",
                 results[i].error().detail);
}

awaitable<result<void>> embedded_plane::join_once(const node_entry& self) {
  peer::join_request j{self.id, self.rest_address, self.peer_address, self.weight};
  auto f = make_frame(peer::frame_type::join, peer::encode(j), ring_.snapshot()->map->version);
  if (controller_address().empty())
    co_return make_error(errc::invalid_argument, "no controller address: start with --join HOST:PORT");
  auto r = co_await call_controller(std::move(f), join_timeout);
  if (!r) co_return r.error();
  if (r->header.type != peer::frame_type::join_ok) co_return make_error(errc::internal, "unexpected answer to join");
  auto m = map_from_controller(*r);
  if (!m) co_return m.error();
  auto installed = co_await ring_.install(std::move(*m));
  if (!installed) co_return installed.error();
  co_return result<void>{};
}

awaitable<result<void>> embedded_plane::register_node(node_entry self) {
  if (is_controller(cfg_.node_id)) co_return result<void>{};  // the controller registers itself at start
  // A new member must join before it can serve; a known member serves with its stored map
  // and joins in the background.
  const bool has_map = ring_.snapshot()->map->version > 0;
  if (!has_map) {
    result<void> last = make_error(errc::unavailable, "not tried");
    for (int attempt = 0; attempt < 30 && !stopping_; ++attempt) {
      last = co_await join_once(self);
      if (last) break;
      SHARDD_LOG(warn, "join_failed", "controller", controller_address(), "attempt", attempt + 1, "error", last.error().detail);
      timer_->expires_after(std::chrono::seconds(1));
      co_await timer_->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (!last) co_return make_error(errc::unavailable, "cannot join the cluster through " + controller_address() + ": " +
                                                           last.error().detail);
    SHARDD_LOG(info, "joined", "controller", controller_address(), "map_version", ring_.snapshot()->map->version);
  }
  start_heartbeats(std::move(self));
  co_return result<void>{};
}

void embedded_plane::start_heartbeats(node_entry self) { asio::co_spawn(ex_, heartbeat_loop(std::move(self)), asio::detached); }

awaitable<void> embedded_plane::heartbeat_loop(node_entry self) {
  // Join once per run (so a restarted node's addresses and weight are current), and again
  // whenever the controller says it does not know us; heartbeat otherwise.
  bool need_join = true;
  int failures = 0;
  while (!stopping_) {
    if (is_controller(self.id)) {
      // On etcd the elected node is the map's controller: it sends itself nothing.
      reachable_ = true;
      need_join = true;  // a join when it is a member again (its addresses are current)
    } else if (need_join) {
      if (auto r = co_await join_once(self); r) {
        need_join = false;
        reachable_ = true;
      }
    } else {
      const auto snap = ring_.snapshot();
      peer::heartbeat hb;
      hb.node_id = self.id;
      hb.map_version = snap->map->version;
      for (const auto& r : local_ranges(*snap->map, self.id, true))
        if (auto st = store_.stats(r.index_id, r.shard_id)) {
          ++hb.shards;
          hb.records += st->records;
          hb.bytes += st->bytes;
        }
      if (load_source_)
        if (auto load = load_source_()) {
          hb.load = load->shards;
          hb.anomalies_open = load->anomalies_open;
        }
      if (disk_) {
        const auto d = disk_->usage();
        hb.disk_used = d.used;
        hb.disk_total = d.total;
      }
      if (event_source_.pending) {
        hb.incarnation = event_source_.incarnation;
        hb.events = event_source_.pending(16);
      }
      auto f = make_frame(peer::frame_type::heartbeat, peer::encode(hb), snap->map->version);
      const auto sent = std::chrono::steady_clock::now();
      auto reply = co_await call_controller(std::move(f), std::chrono::milliseconds(cfg_.heartbeat_interval_ms * 2));
      if (reply) {
        const auto rtt = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - sent).count();
        rtt_us_.store(static_cast<std::uint64_t>(std::max<std::int64_t>(rtt, 1)), std::memory_order_relaxed);
        if (failures > 0) SHARDD_LOG(info, "controller_reachable", "controller", controller_address());
        failures = 0;
        reachable_ = true;
        if (!hb.events.empty() && event_source_.acknowledge) event_source_.acknowledge(hb.events.back().seq);
        if (!reply->payload.empty()) {
          // The controller has a newer map than the one we announced.
          if (auto m = map_from_controller(*reply); m) (void)co_await ring_.install_from_controller(std::move(*m));
        }
      } else {
        if (reply.error().code == errc::not_found) need_join = true;  // forgotten: join again
        if (failures++ == 0 || failures % 30 == 0)
          SHARDD_LOG(warn, "heartbeat_failed", "controller", controller_address(), "failures", failures, "error",
                     reply.error().detail);
        reachable_ = false;
      }
    }
    timer_->expires_after(std::chrono::milliseconds(cfg_.heartbeat_interval_ms));
    co_await timer_->async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

}  // namespace shardd
