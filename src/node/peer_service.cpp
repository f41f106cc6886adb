#include "node/peer_service.hpp"

#include "node/controller.hpp"
#include "node/faults.hpp"
#include "common/log.hpp"
#include "node/migrator.hpp"
#include "node/peers.hpp"
#include "node/store_ops.hpp"
#include "shardd/peer_roles.hpp"
#include "shardd/peer_messages.hpp"

namespace shardd {

using boost::asio::awaitable;

namespace {

peer::frame reply(peer::frame_type t, std::string payload, std::uint64_t version) {
  return make_frame(t, std::move(payload), version);
}

peer::frame fail(const error& e, std::uint64_t version) {
  return make_frame(peer::frame_type::error, peer::encode(peer::error_reply{e.code, e.detail}), version);
}

net::http_method method_of(std::string_view s) {
  if (s == "GET") return net::http_method::get;
  if (s == "PUT") return net::http_method::put;
  if (s == "POST") return net::http_method::post;
  if (s == "DELETE") return net::http_method::delete_;
  if (s == "HEAD") return net::http_method::head;
  return net::http_method::other;
}

}  // namespace

awaitable<peer::frame> peer_service::handle(peer::frame f, std::string from) {
  const auto version = [&] { return ctx_.ring.snapshot()->map->version; };
  // Only a data batch's check waits for the migration pool (apply_batch); any other frame's
  // is made here.
  if (f.checksum_deferred && f.header.type != peer::frame_type::data_batch) {
    f.corrupt = !peer::payload_intact(f);
    f.checksum_deferred = false;
  }
  if (f.corrupt) {
    SHARDD_LOG(warn, "peer_checksum_mismatch", "peer", from, "frame", peer::to_string(f.header.type));
    co_return fail(make_error(errc::corrupt, "checksum mismatch in " + std::string(peer::to_string(f.header.type)) +
                                                          " frame: nothing of it was applied"), version());
  }
  const auto ack = [&] { return reply(peer::frame_type::ack, {}, version()); };
  if (partitioned_from(from)) co_return fail(make_error(errc::unavailable, "partitioned from '" + from + "' (injected)"), version());
  // Who may send it (peer_roles.hpp): refused before anything is decoded or done.
  if (auto allowed = check_sender(f.header.type, *ctx_.ring.snapshot()->map, ctx_.config.node_id, from); !allowed) {
    if (allowed.error().code == errc::forbidden)
      SHARDD_LOG(warn, "peer_frame_refused", "peer", from, "frame", peer::to_string(f.header.type), "reason", allowed.error().detail);
    co_return fail(allowed.error(), version());
  }
  switch (f.header.type) {
    case peer::frame_type::join: {
      auto j = peer::decode_join(f.payload);
      if (!j) co_return fail(j.error(), version());
      if (!ctx_.ctl) co_return fail(make_error(errc::conflict, "node '" + ctx_.config.node_id + "' is not the controller"), version());
      if (j->node_id != from)
        co_return fail(make_error(errc::invalid_argument, "a node joins as itself: certificate says '" + from + "'"), version());
      auto r = co_await ctx_.ctl->join(std::move(*j));
      if (!r) co_return fail(r.error(), version());
      co_return reply(peer::frame_type::join_ok, to_json(*(*r)->map), (*r)->map->version);
    }
    case peer::frame_type::heartbeat: {
      auto h = peer::decode_heartbeat(f.payload);
      if (!h) co_return fail(h.error(), version());
      if (!ctx_.ctl) co_return fail(make_error(errc::conflict, "node '" + ctx_.config.node_id + "' is not the controller"), version());
      if (h->node_id != from) co_return fail(make_error(errc::invalid_argument, "heartbeat for another node"), version());
      const auto announced = h->map_version;
      auto r = co_await ctx_.ctl->heartbeat(std::move(*h));
      if (!r) co_return fail(r.error(), version());
      // The answer carries the map only when the member is behind.
      const auto& m = *(*r)->map;
      co_return reply(peer::frame_type::heartbeat_ack, m.version > announced ? to_json(m) : std::string(), m.version);
    }
    case peer::frame_type::map_push: {
      auto m = from_json(f.payload);
      if (!m) co_return fail(m.error(), version());
      if (m->controller != from)
        co_return fail(make_error(errc::forbidden, "a map pushed by '" + from + "' must name it as controller: the controller does not change by a push"), version());
      auto r = co_await ctx_.ring.install_from_controller(std::move(*m));
      if (!r) co_return fail(r.error(), version());
      co_return reply(peer::frame_type::map_ack, {}, (*r)->map->version);
    }
    case peer::frame_type::ping: {
      if (!f.payload.empty()) co_return fail(make_error(errc::invalid_argument, "a ping frame carries nothing"), version());
      co_return ack();
    }
    case peer::frame_type::map_get: {
      const auto snap = ctx_.ring.snapshot();
      co_return reply(peer::frame_type::map_reply, to_json(*snap->map), snap->map->version);
    }
    case peer::frame_type::forward: {
      auto fr = peer::decode_forward_request(f.payload);
      if (!fr) co_return fail(fr.error(), version());
      net::http_request req;
      req.method = method_of(fr->method);
      req.method_text = fr->method;
      req.target = std::move(fr->target);
      req.content_type = std::move(fr->content_type);
      req.body = std::move(fr->body);
      req.remote = "peer:" + from;
      req.request_id = std::move(fr->request_id);
      auto res = co_await forwarded_(std::move(req), f.header.map_version);
      if (res.status == rest_api::moved_status) co_return reply(peer::frame_type::moved, {}, version());
      peer::forward_response out{static_cast<std::uint16_t>(res.status), std::move(res.content_type), std::move(res.headers),
                                 std::move(res.body)};
      co_return reply(peer::frame_type::forward_reply, peer::encode(out), version());
    }
    case peer::frame_type::write_ops: {
      auto w = peer::decode_write_request(f.payload);
      if (!w) co_return fail(w.error(), version());
      std::vector<storage::write_op> ops;
      ops.reserve(w->ops.size());
      for (auto& op : w->ops)
        ops.push_back({op.kind == 0 ? storage::op_kind::put : storage::op_kind::del, std::move(op.key), std::move(op.value)});
      // The store refuses keys outside the shards this node holds (no_shard), so a sender
      // with a stale map cannot write where it should not.
      auto r = co_await shards_.write(std::move(ops));
      if (!r) co_return fail(r.error(), version());
      peer::write_reply out;
      for (auto st : *r) out.statuses.push_back(static_cast<std::uint8_t>(st));
      co_return reply(peer::frame_type::write_reply, peer::encode(out), version());
    }
    case peer::frame_type::scan_shard: {
      auto q = peer::decode_scan_request(f.payload);
      if (!q) co_return fail(q.error(), version());
      auto r = co_await shards_.scan(std::move(*q));
      if (!r) co_return fail(r.error(), version());
      co_return reply(peer::frame_type::scan_reply, peer::encode(*r), version());
    }
    case peer::frame_type::node_stats: {
      auto r = shards_.stats();
      if (!r) co_return fail(r.error(), version());
      co_return reply(peer::frame_type::stats_reply, peer::encode(*r), version());
    }
    case peer::frame_type::migrate_start: {
      if (!ctx_.mig) co_return fail(make_error(errc::unavailable, "no migrator"), version());
      auto rec = migration_from_json(f.payload);
      if (!rec) co_return fail(rec.error(), version());
      auto r = co_await ctx_.mig->start(std::move(*rec));
      if (!r) co_return fail(r.error(), version());
      co_return ack();
    }
    case peer::frame_type::migrate_control: {
      auto c = peer::decode_migrate_control(f.payload);
      if (!c) co_return fail(c.error(), version());
      if (!ctx_.mig) co_return fail(make_error(errc::unavailable, "no migrator"), version());
      auto r = co_await ctx_.mig->control(std::move(c->migration), std::move(c->command));
      if (!r) co_return fail(r.error(), version());
      co_return ack();
    }
    case peer::frame_type::migrate_report: {
      if (!ctx_.ctl) co_return fail(make_error(errc::conflict, "node '" + ctx_.config.node_id + "' is not the controller"), version());
      auto rec = migration_from_json(f.payload);
      if (!rec) co_return fail(rec.error(), version());
      auto r = co_await ctx_.ctl->report(std::move(*rec), from);
      if (!r) co_return fail(r.error(), version());
      co_return reply(peer::frame_type::ack, to_json(*r), version());
    }
    case peer::frame_type::migrate_commit: {
      if (!ctx_.ctl) co_return fail(make_error(errc::conflict, "node '" + ctx_.config.node_id + "' is not the controller"), version());
      auto c = peer::decode_migrate_control(f.payload);
      if (!c) co_return fail(c.error(), version());
      auto r = co_await ctx_.ctl->commit(std::move(c->migration), from);
      if (!r) co_return fail(r.error(), version());
      co_return ack();
    }
    case peer::frame_type::data_batch: {
      if (!ctx_.mig) co_return fail(make_error(errc::unavailable, "no migrator"), version());
      std::optional<std::uint32_t> unchecked;  // checked on the migration pool before use
      if (f.checksum_deferred) unchecked = f.checksum;
      auto r = co_await ctx_.mig->apply_batch(from, std::move(f.payload), (f.header.flags & peer::flag_high_priority) != 0,
                                              unchecked, (f.header.flags & peer::flag_compressed) != 0);
      if (!r) co_return fail(r.error(), version());
      co_return ack();
    }
    case peer::frame_type::import_digest: {
      auto q = peer::decode_import_range(f.payload);
      if (!q) co_return fail(q.error(), version());
      if (!ctx_.mig) co_return fail(make_error(errc::unavailable, "no migrator"), version());
      auto r = co_await ctx_.mig->digest(from, std::move(*q));
      if (!r) co_return fail(r.error(), version());
      co_return reply(peer::frame_type::digest_reply, peer::encode(*r), version());
    }
    case peer::frame_type::import_reset: {
      auto q = peer::decode_import_range(f.payload);
      if (!q) co_return fail(q.error(), version());
      if (!ctx_.mig) co_return fail(make_error(errc::unavailable, "no migrator"), version());
      auto r = co_await ctx_.mig->reset(from, std::move(*q));
      if (!r) co_return fail(r.error(), version());
      co_return ack();
    }
    case peer::frame_type::shard_median: {
      auto q = peer::decode_median_request(f.payload);
      if (!q) co_return fail(q.error(), version());
      auto r = co_await shards_.median(std::move(*q));
      if (!r) co_return fail(r.error(), version());
      co_return reply(peer::frame_type::median_reply, peer::encode(*r), version());
    }
    default:
      co_return fail(make_error(errc::invalid_argument,
                                "unexpected " + std::string(peer::to_string(f.header.type)) + " frame"), version());
  }
}

}  // namespace shardd
