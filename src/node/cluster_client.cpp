#include "node/cluster_client.hpp"

#include "node/gather.hpp"
#include "node/peers.hpp"

#include <chrono>
#include <set>

namespace shardd {

namespace asio = boost::asio;
using asio::awaitable;

awaitable<result<cluster_client::relayed>> cluster_client::forward(const std::string& node, const net::http_request& req,
                                                                   std::uint64_t map_version) {
  peer::forward_request fr{std::string(net::method_name(req.method)), req.target, req.content_type, req.body,
                           req.request_id.substr(0, peer::max_request_id)};
  if (fr.method.empty()) fr.method = req.method_text;
  auto frame = make_frame(peer::frame_type::forward, peer::encode(fr), map_version);
  ring_.loads().node().forwarded.fetch_add(1, std::memory_order_relaxed);
  auto r = co_await peers_->call(node, std::move(frame), std::chrono::milliseconds(cfg_.request_timeout_ms));
  if (!r) co_return make_error(errc::unavailable, "node '" + node + "' did not answer: " + r.error().detail);
  relayed out;
  out.moved = r->header.type == peer::frame_type::moved;
  if (out.moved) co_return out;
  auto fr2 = peer::decode_forward_response(r->payload);
  if (!fr2) co_return make_error(errc::internal, "unreadable answer from node '" + node + "'");
  out.response.status = fr2->status;
  out.response.content_type = std::move(fr2->content_type);
  out.response.headers = std::move(fr2->headers);
  out.response.body = std::move(fr2->body);
  co_return out;
}

awaitable<result<peer::scan_reply>> cluster_client::scan_on(const std::string& node, peer::scan_request q,
                                                            std::uint64_t map_version) {
  if (is_local(node)) co_return co_await local_.scan(std::move(q));
  const auto shard = q.shard;
  auto frame = make_frame(peer::frame_type::scan_shard, peer::encode(q), map_version);
  auto r = co_await peers_->call(node, std::move(frame), std::chrono::milliseconds(cfg_.request_timeout_ms));
  if (!r)
    co_return make_error(r.error().code == errc::conflict ? errc::conflict : errc::unavailable,
                         "node '" + node + "' (shard " + std::to_string(shard) + "): " + r.error().detail);
  co_return peer::decode_scan_reply(r->payload);
}

awaitable<cluster_stats> cluster_client::collect_stats(const partition_map& m, const std::string* only_index) {
  cluster_stats view;
  std::set<std::string> remote;
  for (const auto& [name, ix] : m.indexes) {
    if (only_index && name != *only_index) continue;
    for (const auto& s : ix.shards) {
      if (is_local(s.owner)) {
        if (auto st = local_.store().stats(ix.id, s.id)) view.shards[{ix.id, s.id}] = *st;
      } else {
        remote.insert(s.owner);
      }
    }
  }
  std::vector<std::string> asked;
  std::vector<awaitable<result<peer::frame>>> calls;
  for (const auto& node : remote) {
    const auto* n = m.find_node(node);
    if (!n || n->state != node_state::up) {
      view.unreachable[node] = n ? std::string(to_string(n->state)) : "unknown";
      continue;
    }
    asked.push_back(node);
    calls.push_back(peers_->call(node, make_frame(peer::frame_type::node_stats, {}, m.version),
                                    std::chrono::milliseconds(cfg_.request_timeout_ms)));
  }
  auto replies = co_await gather(std::move(calls));
  for (std::size_t i = 0; i < replies.size(); ++i) {
    if (!replies[i]) {
      view.unreachable[asked[i]] = replies[i].error().detail;
      continue;
    }
    auto st = peer::decode_stats_reply(replies[i]->payload);
    if (!st) {
      view.unreachable[asked[i]] = "unreadable stats";
      continue;
    }
    for (const auto& s : st->shards) view.shards[{s.index_id, s.shard_id}] = {s.records, s.bytes};
  }
  co_return view;
}

awaitable<result<std::vector<storage::op_status>>> cluster_client::write_on(const std::string& node, std::uint32_t index_id,
                                                                      std::vector<storage::write_op> ops) {
  if (is_local(node)) co_return co_await local_.write(std::move(ops));
  peer::write_request w;
  w.index_id = index_id;
  w.ops.reserve(ops.size());
  for (auto& op : ops)
    w.ops.push_back({static_cast<std::uint8_t>(op.kind == storage::op_kind::put ? 0 : 1), std::move(op.key), std::move(op.value)});
  auto frame = make_frame(peer::frame_type::write_ops, peer::encode(w), ring_.snapshot()->map->version);
  auto r = co_await peers_->call(node, std::move(frame), std::chrono::milliseconds(cfg_.request_timeout_ms));
  if (!r) co_return r.error();
  auto reply = peer::decode_write_reply(r->payload);
  if (!reply) co_return reply.error();
  if (reply->statuses.size() != w.ops.size()) co_return make_error(errc::internal, "write reply of the wrong size");
  std::vector<storage::op_status> out;
  for (auto st : reply->statuses) out.push_back(static_cast<storage::op_status>(st));
  co_return out;
}

}  // namespace shardd
