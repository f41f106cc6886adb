#include "node/etcd_plane.hpp"

#include "common/log.hpp"
#include "shardd/cluster_plan.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

namespace shardd {

namespace asio = boost::asio;
using asio::awaitable;
using clock_type = std::chrono::steady_clock;

namespace {

net::etcd_options options_of(const node_config& c) {
  net::etcd_options o;
  o.endpoints = c.etcd.endpoints;
  o.tls = !c.etcd.ca.empty();
  o.ca = c.etcd.ca;
  o.cert = c.etcd.cert;
  o.key = c.etcd.key;
  o.user = c.etcd.user;
  o.password = c.etcd.password;
  o.timeout = std::chrono::milliseconds(c.etcd.timeout_ms);
  return o;
}

std::string entry_json(const node_entry& n) {
  boost::json::object o;
  o["id"] = n.id;
  o["rest_address"] = n.rest_address;
  o["peer_address"] = n.peer_address;
  o["weight"] = n.weight;
  o["version"] = SHARDD_VERSION;
  o["started_unix_ms"] =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  return boost::json::serialize(o);
}

}  // namespace

/// The controller's records in etcd, under `meta/`; every write is a transaction guarded by
/// this node's election, so a controller that lost it cannot write one more record.
class etcd_plane::etcd_meta final : public controller_meta {
 public:
  explicit etcd_meta(etcd_plane& p) : p_(p) {}

  awaitable<result<entries>> scan(std::string prefix) override {
    const auto root = p_.key("meta/");
    auto kvs = co_await p_.etcd_.list(root + prefix);
    if (!kvs) co_return kvs.error();
    entries out;
    out.reserve(kvs->size());
    for (auto& kv : *kvs) out.emplace_back(kv.key.substr(root.size()), std::move(kv.value));
    co_return out;
  }
  awaitable<result<std::optional<std::string>>> get(std::string key) override {
    auto kv = co_await p_.etcd_.get(p_.key("meta/") + key);
    if (!kv) co_return kv.error();
    if (!*kv) co_return std::optional<std::string>{};
    co_return std::optional<std::string>(std::move((*kv)->value));
  }
  awaitable<result<void>> write(std::vector<storage::write_op> ops) override {
    const auto rev = p_.election_revision_.load();
    if (rev == 0) co_return make_error(errc::not_controller, "this node is not the elected controller");
    std::vector<etcd::write> writes;
    writes.reserve(ops.size());
    for (auto& op : ops) {
      etcd::write w;
      w.key = p_.key("meta/") + op.key;
      if (op.kind == storage::op_kind::meta_put) w.value = std::move(op.value);
      writes.push_back(std::move(w));
    }
    // Named, not braced in the co_await operand (GCC 12 destroys such temporaries twice).
    std::vector<etcd::compare> when{{p_.key("controller"), etcd::compare::target::create, rev}};
    auto out = co_await p_.etcd_.txn(std::move(when), std::move(writes));
    if (!out) co_return out.error();
    if (!out->done) co_return make_error(errc::not_controller, "this node lost the controller election");
    co_return result<void>{};
  }

 private:
  etcd_plane& p_;
};

etcd_plane::etcd_plane(asio::any_io_executor ex, const node_config& cfg, ring_actor& ring, storage::store& store, peers& p)
    : ex_(ex), cfg_(cfg), ring_(ring), member_(ex, cfg, ring, store, p), etcd_(ex, options_of(cfg)),
      root_(cfg.etcd.prefix + cfg.cluster_id + "/"), meta_(std::make_unique<etcd_meta>(*this)),
      timer_(std::make_shared<asio::steady_timer>(ex)) {}

etcd_plane::~etcd_plane() = default;

void etcd_plane::watch(std::function<void(const snapshot_ptr&)> f) { ring_.on_install(std::move(f)); }

std::string etcd_plane::elect_controller() { return ring_.snapshot()->map->controller; }

bool etcd_plane::controller_reachable() const noexcept { return leading_.load() || member_.controller_reachable(); }

std::string etcd_plane::no_controller_reason() const {
  if (!etcd_reachable())
    return "etcd cannot be reached, so no controller can be elected and the map cannot change now; every node serves "
           "with the map it holds (version " + std::to_string(ring_.snapshot()->map->version) + ")";
  return "the controller is changing (elected through etcd); retry in a few seconds";
}

std::chrono::milliseconds etcd_plane::handover_wait() const {
  // The old controller's lease lapses within a TTL of its death; the next one is elected and
  // has written its map within about another.
  return std::chrono::milliseconds(2000 * std::max<std::uint32_t>(cfg_.etcd.election_ttl_s, 1) + 1000);
}

void etcd_plane::stop() {
  stopping_ = true;
  member_.stop();
  asio::post(ex_, [t = timer_] { t->cancel(); });
  etcd_.close_watches();
}

awaitable<void> etcd_plane::resign() {
  set_leading(false);
  if (const auto l = election_lease_.exchange(0)) (void)co_await etcd_.revoke(l);
  if (const auto l = registration_lease_.exchange(0)) (void)co_await etcd_.revoke(l);
}

awaitable<void> etcd_plane::pause(std::chrono::milliseconds d) {
  asio::steady_timer t(ex_);
  t.expires_after(d);
  (void)co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

void etcd_plane::set_leading(bool on) {
  if (leading_.exchange(on) == on) return;
  if (on_leadership_) on_leadership_(on);
}

awaitable<void> etcd_plane::take_map(const std::string& json, std::int64_t mod_revision) {
  auto m = from_json(json);
  if (!m) {
    SHARDD_LOG(err, "etcd_map_unreadable", "key", key("map"), "revision", mod_revision, "error", m.error().detail);
    co_return;
  }
  if (m->cluster_id != cfg_.cluster_id) {
    SHARDD_LOG(err, "etcd_map_of_other_cluster", "key", key("map"), "cluster", m->cluster_id);
    co_return;
  }
  {
    std::lock_guard lock(map_mu_);
    if (mod_revision > map_revision_) {
      map_revision_ = mod_revision;
      map_version_ = m->version;
    }
  }
  if (!m->find_node(cfg_.node_id)) {
    // Not a member yet: join through the controller this map names.
    if (const auto* c = m->find_node(m->controller)) member_.set_join_address(c->peer_address);
    co_return;
  }
  if (auto r = co_await ring_.install(std::move(*m)); !r)
    SHARDD_LOG(err, "etcd_map_not_installed", "revision", mod_revision, "error", r.error().detail);
}

awaitable<result<snapshot_ptr>> etcd_plane::load() {
  if (leading_) co_return ring_.snapshot();  // the only writer holds the newest
  auto kv = co_await etcd_.get(key("map"));
  if (!kv) {
    co_return make_error(errc::unavailable, "etcd cannot be reached: " + kv.error().detail);
  }
  if (*kv) co_await take_map((*kv)->value, (*kv)->mod_revision);
  co_return ring_.snapshot();
}

awaitable<result<snapshot_ptr>> etcd_plane::compare_and_set(std::uint64_t expected, partition_map next) {
  const auto election = election_revision_.load();
  if (!leading_ || election == 0)
    co_return make_error(errc::not_controller, "this node is not the elected controller (the map names '" + elect_controller() + "')");
  const auto current = ring_.snapshot();
  if (current->map->version != expected)
    co_return make_error(errc::conflict, "map version is " + std::to_string(current->map->version) + ", not " +
                                             std::to_string(expected));
  if (next.version <= expected) co_return make_error(errc::invalid_argument, "the next map must have a newer version");
  std::int64_t map_revision = 0;
  {
    std::lock_guard lock(map_mu_);
    if (map_version_ != expected)
      co_return make_error(errc::conflict, "the map in etcd is version " + std::to_string(map_version_) + ", not " +
                                               std::to_string(expected) + "; try again");
    map_revision = map_revision_;
  }
  const auto map_key = key("map"), controller_key = key("controller");
  // A transaction without an answer (a member that lost its leader drops a proposal and says
  // nothing until the timeout) is sent again while this node leads: the comparison on the map's
  // mod revision lets at most one of the copies write. When a copy did write and its answer was
  // lost, the next one fails its comparison and reads back this node's own map: done.
  const auto give_up = clock_type::now() + std::chrono::seconds(std::max<std::uint32_t>(cfg_.etcd.election_ttl_s, 1));
  const auto body = to_json(next);
  std::int64_t written = 0;
  for (;;) {
    std::vector<etcd::write> writes;
    writes.push_back({map_key, body, 0});
    std::vector<etcd::compare> when{{map_key, etcd::compare::target::mod, map_revision},
                                    {controller_key, etcd::compare::target::create, election}};
    std::vector<std::string> read_back{map_key, controller_key};
    auto out = co_await etcd_.txn(std::move(when), std::move(writes), std::move(read_back));
    if (!out) {
      if (leading_ && !stopping_ && !lost_ && clock_type::now() < give_up) {
        SHARDD_LOG(warn, "etcd_map_write_retried", "map_version", next.version, "error", out.error().detail);
        co_await pause(std::chrono::milliseconds(100));
        continue;
      }
      co_return make_error(errc::unavailable, "etcd cannot be reached, so the map cannot change now (nodes serve with map version " +
                                                  std::to_string(expected) + "): " + out.error().detail);
    }
    if (out->done) {
      written = out->revision;
      break;
    }
    bool still_elected = false;
    for (const auto& kv : out->current)
      if (kv.key == controller_key && kv.create_revision == election) still_elected = true;
    if (!still_elected) {
      lost_ = true;
      co_return make_error(errc::not_controller, "this node lost the controller election; the next controller takes over");
    }
    // Only the holder of this election writes the map: a map of the next version is this
    // node's own, written by a copy whose answer was lost.
    const etcd::kv* now_in = nullptr;
    for (const auto& kv : out->current)
      if (kv.key == map_key) now_in = &kv;
    if (now_in && now_in->value == body) {
      written = now_in->mod_revision;
      break;
    }
    if (now_in) co_await take_map(now_in->value, now_in->mod_revision);
    co_return make_error(errc::conflict, "the map in etcd changed; try again");
  }
  {
    std::lock_guard lock(map_mu_);
    map_revision_ = written;
    map_version_ = next.version;
  }
  auto installed = co_await ring_.install(std::move(next));
  if (!installed) co_return installed;
  co_await member_.push(*installed);
  co_return installed;
}

awaitable<result<void>> etcd_plane::register_node(node_entry self) {
  asio::co_spawn(ex_, registration_loop(self), asio::detached);
  // The map: a node that holds none waits for etcd (30 s at most); one that holds a map serves
  // with it and catches up when etcd answers.
  const bool have_map = ring_.snapshot()->map->version > 0;
  for (int attempt = 0; !stopping_; ++attempt) {
    std::int64_t revision = 0;
    auto kv = co_await etcd_.get(key("map"), &revision);
    if (kv) {
      watch_from_ = revision + 1;
      if (*kv) co_await take_map((*kv)->value, (*kv)->mod_revision);
      break;
    }
    if (kv.error().code != errc::unavailable)  // refused (auth, a bad prefix): no retry makes it work
      co_return make_error(errc::invalid_argument, "etcd: " + kv.error().detail);
    SHARDD_LOG(warn, "etcd_unreachable", "attempt", attempt + 1, "error", kv.error().detail);
    if (have_map) break;
    if (attempt >= 30) co_return make_error(errc::unavailable, "etcd cannot be reached: " + kv.error().detail);
    co_await pause(std::chrono::seconds(1));
  }
  asio::co_spawn(ex_, watch_loop(), asio::detached);
  asio::co_spawn(ex_, campaign_loop(self), asio::detached);
  // In a map that names this node: the founder writes it; anyone else joins through the
  // controller the etcd map names.
  const auto deadline = clock_type::now() + std::chrono::seconds(60);
  std::string last_error = "no map in etcd yet";
  while (!stopping_) {
    const auto snap = ring_.snapshot();
    if (snap->map->version > 0 && snap->map->find_node(self.id)) break;
    if (clock_type::now() > deadline)
      co_return make_error(errc::unavailable, "no map names this node after 60 s: " + last_error);
    if (!member_.controller_address().empty() && !leading_) {
      if (auto r = co_await member_.join_once(self); r) break;
      else last_error = "joining through " + member_.controller_address() + ": " + r.error().detail;
    }
    co_await pause(std::chrono::milliseconds(300));
  }
  SHARDD_LOG(info, "etcd_registered", "map_version", ring_.snapshot()->map->version, "controller", elect_controller());
  member_.start_heartbeats(std::move(self));
  co_return result<void>{};
}

awaitable<void> etcd_plane::registration_loop(node_entry self) {
  const auto ttl = std::max<std::uint32_t>(5, cfg_.etcd.election_ttl_s * 2);
  const auto node_key = key("nodes/" + self.id);
  while (!stopping_) {
    auto g = co_await etcd_.grant(std::chrono::seconds(ttl));
    if (g) {
      registration_lease_ = g->id;
      if (auto p = co_await etcd_.put(node_key, entry_json(self), g->id); p) {
        while (!stopping_) {
          co_await pause(std::chrono::milliseconds(ttl * 1000 / 3));
          if (stopping_) break;
          auto k = co_await etcd_.keepalive(g->id);
          if (!k || *k <= 0) break;
        }
      }
    }
    if (!stopping_) co_await pause(std::chrono::seconds(1));
  }
}

awaitable<void> etcd_plane::watch_loop() {
  while (!stopping_) {
    if (watch_from_ == 0) {
      std::int64_t revision = 0;
      auto kv = co_await etcd_.get(key("map"), &revision);
      if (!kv) {
        co_await pause(std::chrono::seconds(1));
        continue;
      }
      if (*kv) co_await take_map((*kv)->value, (*kv)->mod_revision);
      watch_from_ = revision + 1;
    }
    // Events arrive on the transport's side; each map is installed in order here.
    std::vector<etcd::kv> seen;
    std::function<bool(const etcd::watch_event&)> take = [&](const etcd::watch_event& e) {
      watch_from_ = e.item.mod_revision + 1;
      if (!e.deleted) seen.push_back(e.item);
      return false;  // one event at a time: install it, then watch on from the next revision
    };
    auto r = co_await etcd_.watch(key("map"), false, watch_from_, std::move(take));
    for (auto& kv : seen) co_await take_map(kv.value, kv.mod_revision);
    if (!r) {
      if (r.error().code == errc::conflict) watch_from_ = 0;  // compacted: read it again
      else if (!stopping_) co_await pause(std::chrono::seconds(1));
    }
  }
}

awaitable<void> etcd_plane::campaign_loop(node_entry self) {
  const auto controller_key = key("controller");
  while (!stopping_) {
    const auto asked_at = clock_type::now();
    auto g = co_await etcd_.grant(std::chrono::seconds(cfg_.etcd.election_ttl_s));
    if (!g) {
      co_await pause(std::chrono::milliseconds(500));
      continue;
    }
    auto won = co_await etcd_.put_if(controller_key, self.id, 0, g->id);
    if (won && won->done) {
      election_revision_ = won->revision;
      election_lease_ = g->id;
      lost_ = false;
      SHARDD_LOG(info, "controller_elected", "lease_ttl_s", g->ttl, "revision", won->revision);
      if (co_await take_over(self)) co_await lead(g->id, g->ttl, asked_at);
      set_leading(false);
      election_revision_ = 0;
      election_lease_ = 0;
      (void)co_await etcd_.revoke(g->id);  // the key goes now: the next node need not wait out the TTL
      SHARDD_LOG(warn, "controller_stepped_down", "stopping", stopping_.load());
      if (!stopping_) co_await pause(std::chrono::milliseconds(200));
      continue;
    }
    (void)co_await etcd_.revoke(g->id);
    if (!won || !won->current) {
      co_await pause(std::chrono::milliseconds(won ? 50 : 500));
      continue;
    }
    // Another node leads: wait until its key goes (its lease lapsed, or it stepped down).
    const auto holder = won->current->mod_revision;
    std::function<bool(const etcd::watch_event&)> until_gone = [](const etcd::watch_event& e) { return !e.deleted; };
    auto w = co_await etcd_.watch(controller_key, false, holder + 1, std::move(until_gone), std::chrono::seconds(10));
    if (!w && !stopping_) co_await pause(std::chrono::milliseconds(500));
  }
}

awaitable<bool> etcd_plane::take_over(const node_entry& self) {
  const auto map_key = key("map"), controller_key = key("controller");
  for (int attempt = 0; attempt < 10 && !stopping_; ++attempt) {
    auto kv = co_await etcd_.get(map_key);
    if (!kv) {
      co_await pause(std::chrono::milliseconds(200));
      continue;
    }
    partition_map next;
    std::int64_t revision = 0;
    if (*kv) {
      auto m = from_json((*kv)->value);
      if (!m) {
        SHARDD_LOG(critical, "etcd_map_unreadable", "key", map_key, "error", m.error().detail);
        co_return false;
      }
      if (m->cluster_id != cfg_.cluster_id) {
        SHARDD_LOG(critical, "etcd_map_of_other_cluster", "key", map_key, "cluster", m->cluster_id);
        co_return false;
      }
      revision = (*kv)->mod_revision;
      next = std::move(*m);
      const auto before = next.version;
      next.controller = self.id;
      const auto* known = next.find_node(self.id);
      if (!known || known->state == node_state::down) {
        auto up = upsert_node(next, joining_entry(known, self));
        if (!up) {
          SHARDD_LOG(critical, "takeover_refused", "error", up.error().detail);
          co_return false;
        }
        next = std::move(*up);
      }
      next.version = before + 1;
    } else if (const auto held = ring_.snapshot(); held->map->version > 0) {
      // etcd holds no map but this node does: a cluster moving from the embedded plane to etcd.
      // Only the embedded plane's controller holds the newest map, so only it seeds etcd.
      if (held->map->controller != self.id) {
        SHARDD_LOG(err, "etcd_not_seeded", "key", map_key, "wait_for", held->map->controller, "why",
                   "etcd holds no map: the node that was the controller of the embedded plane must start first to seed it");
        co_await pause(std::chrono::seconds(2));
        co_return false;
      }
      next = *held->map;
      next.version = held->map->version + 1;
      SHARDD_LOG(info, "etcd_seeded", "key", map_key, "map_version", next.version);
    } else {
      auto founded = founding_map(cfg_);
      if (!founded) co_return false;
      next = std::move(*founded);
      SHARDD_LOG(info, "cluster_founded", "key", map_key);
    }
    std::vector<etcd::write> writes;
    writes.push_back({map_key, to_json(next), 0});
    std::vector<etcd::compare> when{{map_key, etcd::compare::target::mod, revision},
                                    {controller_key, etcd::compare::target::create, election_revision_.load()}};
    std::vector<std::string> read_back{controller_key};
    auto out = co_await etcd_.txn(std::move(when), std::move(writes), std::move(read_back));
    if (!out) {
      co_await pause(std::chrono::milliseconds(200));
      continue;
    }
    if (!out->done) {
      bool still_elected = false;
      for (const auto& c : out->current)
        if (c.create_revision == election_revision_.load()) still_elected = true;
      if (!still_elected) co_return false;
      continue;  // the map moved on meanwhile: read it again
    }
    {
      std::lock_guard lock(map_mu_);
      map_revision_ = out->revision;
      map_version_ = next.version;
    }
    auto installed = co_await ring_.install(std::move(next));
    if (!installed) {
      SHARDD_LOG(critical, "takeover_not_installed", "error", installed.error().detail);
      co_return false;
    }
    SHARDD_LOG(info, "controller_took_over", "map_version", (*installed)->map->version);
    co_await member_.push(*installed);
    set_leading(true);
    co_return true;
  }
  co_return false;
}

awaitable<void> etcd_plane::lead(std::int64_t lease, std::int64_t ttl_s, clock_type::time_point asked_at) {
  // The lease lives at least a TTL past the send of each keepalive etcd answers; leading stops
  // half a second (a quarter of the TTL at most) before the earliest moment it can lapse.
  const auto ttl = std::chrono::milliseconds(std::max<std::int64_t>(ttl_s, 1) * 1000);
  const auto margin = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(500), ttl / 4);
  auto alive = std::make_shared<std::atomic<std::int64_t>>(asked_at.time_since_epoch().count());
  auto done = std::make_shared<std::atomic<bool>>(false);
  auto gone = std::make_shared<std::atomic<bool>>(false);
  // A keepalive every sixth of the TTL, each on its own: one held by a member that lost its
  // leader (it answers once a new leader is elected, or at the timeout) does not hold back the
  // next, so the lease is confirmed again as soon as etcd has a leader. At most four wait.
  auto in_flight = std::make_shared<std::atomic<int>>(0);
  asio::co_spawn(
      ex_,
      [this, lease, ttl, alive, done, gone, in_flight]() -> awaitable<void> {
        while (!*done && !stopping_) {
          co_await pause(std::max<std::chrono::milliseconds>(ttl / 6, std::chrono::milliseconds(100)));
          if (*done || stopping_ || *gone) break;
          if (in_flight->load() >= 4) continue;
          ++*in_flight;
          asio::co_spawn(
              ex_,
              [this, lease, alive, gone, in_flight]() -> awaitable<void> {
                const auto sent = clock_type::now();
                auto k = co_await etcd_.keepalive(lease);
                --*in_flight;
                if (k && *k > 0) {
                  auto seen = alive->load();
                  const auto at = sent.time_since_epoch().count();
                  while (seen < at && !alive->compare_exchange_weak(seen, at)) {
                  }
                } else if (k) {
                  *gone = true;  // etcd says the lease is gone
                }
              },
              asio::detached);
        }
      },
      asio::detached);
  while (!stopping_ && !lost_ && !*gone) {
    const auto last = clock_type::time_point(clock_type::duration(alive->load()));
    if (clock_type::now() >= last + ttl - margin) {
      SHARDD_LOG(warn, "controller_lease_unconfirmed", "since_ms",
                 std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - last).count());
      break;
    }
    co_await pause(std::chrono::milliseconds(50));
  }
  *done = true;
}

}  // namespace shardd
