// REST: records, bulk writes, scans and counts.
#include "node/disk_guard.hpp"
#include "node/rest_internal.hpp"
#include "node/gather.hpp"
#include "node/store_ops.hpp"
#include "shardd/json_fields.hpp"
#include "shardd/routing.hpp"
#include "shardd/text.hpp"

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <set>

namespace shardd {

// --- records --------------------------------------------------------------------------------

namespace {

/// Parses and re-serialises a document: the stored form is compact, canonical JSON.
result<std::string> normalize_doc(std::string_view body, std::size_t max_bytes) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos)
    return make_error(errc::invalid_argument, "the body must be a JSON document; it is empty");
  auto v = parse_json(body, "document");
  if (!v) return v.error();
  auto out = to_json_text(*v);
  if (out.size() > max_bytes)
    return make_error(errc::too_large, "document is " + std::to_string(out.size()) + " bytes; the limit is " +
                                           std::to_string(max_bytes));
  return out;
}

std::string record_json(const index_entry& ix, std::uint32_t shard, std::string_view key, std::string_view doc) {
  std::string out;
  out.reserve(doc.size() + key.size() + ix.name.size() + 48);
  out.append("{\"index\":");
  append_json_string(out, ix.name);
  out.append(",\"key\":");
  append_json_string(out, key);
  out.append(",\"shard\":").append(std::to_string(shard));
  out.append(",\"doc\":").append(doc);
  out.push_back('}');
  return out;
}

std::string write_json(const index_entry& ix, std::uint32_t shard, std::string_view key, std::string_view result) {
  std::string out = "{\"index\":";
  append_json_string(out, ix.name);
  out.append(",\"key\":");
  append_json_string(out, key);
  out.append(",\"shard\":").append(std::to_string(shard));
  out.append(",\"result\":\"").append(result).append("\"}");
  return out;
}

/// Counts a point request this node served into its shard's counters (if it owns the shard in
/// the map the request holds): relaxed atomic adds, no lock, no allocation.
void count_point(const cluster_snapshot& snap, const index_entry& ix, std::uint32_t shard_id, http_method method,
                 const http_response& res, std::string_view key, std::size_t body_bytes,
                 std::chrono::steady_clock::time_point started) {
  auto* sc = snap.load ? snap.load->find(ix.id, shard_id) : nullptr;
  if (!sc) return;
  const auto key_bytes = key.size();
  if (sc->hot.due()) sc->hot.offer(key);
  load_op op = load_op::read;
  if (method == http_method::put) {
    op = load_op::write;
    if (res.status < 300) {
      sc->add(sc->writes);
      sc->add(sc->bytes_in, key_bytes + body_bytes);
    }
  } else if (method == http_method::get) {
    sc->add(sc->reads);
    if (res.status == 200) sc->add(sc->bytes_out, res.body.size());
  } else {
    op = load_op::del;
    if (res.status < 300) sc->add(sc->deletes);
  }
  if (res.status >= 500) sc->add(sc->errors);
  sc->time(op, std::chrono::steady_clock::now() - started);
}

}  // namespace

awaitable<http_response> rest_api::record(call& c, const index_entry& ix_in) {
  const std::string& key = c.arg("key");
  const index_entry* ix = &ix_in;
  for (int attempt = 0;; ++attempt) {
    const auto rt = route_key(*ix, key, c.routing());
    const auto& s = ix->shards[rt.shard_pos];
    if (cluster_.is_local(s.owner)) {
      const auto started = std::chrono::steady_clock::now();
      const auto snap = c.snap;  // the counters found through it live as long as it
      http_response res;
      switch (c.req.method) {
        case http_method::put: res = co_await put_record(c, *ix, key); break;
        case http_method::get: res = co_await get_record(c, *ix, key); break;
        default: res = co_await delete_record(c, *ix, key); break;
      }
      if (res.status != moved_status) {
        count_point(*snap, *ix, s.id, c.req.method, res, key, c.req.body.size(), started);
        co_return res;
      }
      // The shard is fenced for a cutover or just moved away: once the map says where it
      // lives now, serve the request there. A forwarded request tells its sender instead.
      if (c.forwarded || attempt >= 2) co_return res;
      if (!co_await await_newer_map(c, std::chrono::milliseconds(5000)))
        co_return c.fail(503, "unavailable", "shard " + std::to_string(s.id) + " of index " + quoted(ix->name) +
                                                 " is being moved; retry");
      ix = c.snap->map->find_index(ix_in.name);
      if (!ix) co_return c.fail(404, "not-found", "index " + quoted(ix_in.name) + " does not exist");
      continue;
    }
    if (c.forwarded) {
      // The sender thinks we own this shard. If our map is newer, tell it who does; if it is
      // older, we cannot tell.
      if (c.snap->map->version > c.sender_version) co_return moved_response();
      co_return c.fail(503, "unavailable", "node " + quoted(ctx_.config.node_id) + " has map version " +
                                               std::to_string(c.snap->map->version) + ", older than the sender's; retry");
    }
    if (auto u = owner_unavailable(c, *ix, s)) co_return *u;
    auto res = co_await forward(c, s.owner);
    if (res.status != moved_status) co_return res;
    if (attempt > 1 || !ctx_.plane)
      co_return c.fail(503, "unavailable", "the owner of the record moved twice meanwhile; retry");
    // Our map is stale, or the owner is in a cutover: wait for the newest map and retry, like a
    // Redis MOVED the client never sees.
    if (auto caught = co_await catch_up_map(c, std::chrono::milliseconds(5000)); !caught)
      co_return c.fail(503, "unavailable", "map out of date and the controller is unreachable: " + caught.error().detail);
    ix = c.snap->map->find_index(ix_in.name);
    if (!ix) co_return c.fail(404, "not-found", "index " + quoted(ix_in.name) + " does not exist");
  }
}

awaitable<http_response> rest_api::put_record(call& c, const index_entry& ix, const std::string& key) {
  auto doc = normalize_doc(c.req.body, ctx_.config.max_doc_bytes);
  if (!doc) co_return c.fail(doc.error());
  if (ctx_.disk)
    if (auto full = ctx_.disk->refuse_puts()) co_return c.fail(*full);  // this node owns the shard
  auto rt = route_key(ix, key, c.routing());
  const auto shard_id = ix.shards[rt.shard_pos].id;
  std::vector<storage::write_op> ops;
  ops.push_back(storage::write_op{storage::op_kind::put, std::move(rt.storage_key), std::move(*doc)});
  auto r = co_await async_write(ctx_.store, std::move(ops));
  if (!r) co_return c.fail(r.error());
  switch ((*r)[0]) {
    case storage::op_status::created: co_return json_response(201, write_json(ix, shard_id, key, "created"));
    case storage::op_status::updated: co_return json_response(200, write_json(ix, shard_id, key, "updated"));
    default: co_return moved_response();  // fenced, or no longer here: the caller re-routes
  }
}

awaitable<http_response> rest_api::get_record(call& c, const index_entry& ix, const std::string& key) {
  auto rt = route_key(ix, key, c.routing());
  const auto shard_id = ix.shards[rt.shard_pos].id;
  if (ctx_.store.is_fenced(rt.storage_key)) {
    // A cutover is moving this shard: the new owner may take writes before this node learns
    // of it, so reads wait for the new map too.
    co_return moved_response();
  }
  std::string value;
  auto st = ctx_.store.get_cached(rt.storage_key, value);
  if (st == storage::store::read_status::would_block) {
    // Not in memory: read from disk on the pool, never on this strand. (A named closure:
    // GCC 12 destroys temporaries inside a co_await operand twice.)
    auto read = [&s = ctx_.store, k = rt.storage_key] { return s.get(k); };
    auto got = co_await on_pool(ctx_.read_pool, std::move(read));
    if (!got) co_return c.fail(got.error());
    if (*got) {
      value = std::move(**got);
      st = storage::store::read_status::found;
    } else {
      st = storage::store::read_status::not_found;
    }
  }
  if (st == storage::store::read_status::not_found)
    co_return c.fail(404, "not-found", "record " + quoted(key) + " not found in index " + quoted(ix.name));
  co_return json_response(200, record_json(ix, shard_id, key, value));
}

awaitable<http_response> rest_api::delete_record(call& c, const index_entry& ix, const std::string& key) {
  auto rt = route_key(ix, key, c.routing());
  const auto shard_id = ix.shards[rt.shard_pos].id;
  std::vector<storage::write_op> ops;
  ops.push_back(storage::write_op{storage::op_kind::del, std::move(rt.storage_key), {}});
  auto r = co_await async_write(ctx_.store, std::move(ops));
  if (!r) co_return c.fail(r.error());
  switch ((*r)[0]) {
    case storage::op_status::deleted: co_return json_response(200, write_json(ix, shard_id, key, "deleted"));
    case storage::op_status::not_found:
      co_return c.fail(404, "not-found", "record " + quoted(key) + " not found in index " + quoted(ix.name));
    default: co_return moved_response();
  }
}

awaitable<http_response> rest_api::bulk(call& c, const index_entry& ix) {
  // NDJSON: one {"op":"put","key":K,"doc":D[,"routing":R]} or {"op":"delete","key":K[,"routing":R]}
  // per line. Bad lines are reported with their line number; the good lines are split by the
  // node owning their shard and applied, in order per owner, one group commit per owner, all
  // owners at once.
  const auto started = std::chrono::steady_clock::now();
  struct line_error {
    std::size_t line;
    unsigned status;
    std::string detail;
  };
  std::vector<line_error> errors;
  std::size_t error_count = 0;
  auto add_error = [&](std::size_t line, unsigned status, std::string detail) {
    ++error_count;
    if (errors.size() < max_reported_errors) errors.push_back({line, status, std::move(detail)});
  };

  struct owner_batch {
    std::vector<storage::write_op> ops;
    std::vector<std::size_t> lines;
  };
  std::map<std::string, owner_batch> batches;
  std::string_view body = c.req.body;
  std::size_t line_no = 0, lines = 0;
  unsigned char buffer[16384];
  json::parse_options popts;
  popts.max_depth = 64;
  json::parser parser(json::storage_ptr(), popts);
  while (!body.empty()) {
    auto nl = body.find('\n');
    std::string_view line = body.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    ++lines;
    json::monotonic_resource mr(buffer, sizeof(buffer));
    parser.reset(json::storage_ptr(&mr));
    boost::system::error_code ec;
    parser.write(line.data(), line.size(), ec);
    if (ec) {
      add_error(line_no, 400, "invalid JSON: " + ec.message());
      continue;
    }
    json::value v = parser.release();
    if (!v.is_object()) {
      add_error(line_no, 400, "each line must be a JSON object");
      continue;
    }
    const auto& obj = v.get_object();
    std::string_view op, key;
    std::optional<std::string_view> routing;
    const json::value* doc = nullptr;
    std::string bad;
    for (const auto& kv : obj) {
      if (kv.key() == "op" && kv.value().is_string())
        op = kv.value().get_string();
      else if (kv.key() == "key" && kv.value().is_string())
        key = kv.value().get_string();
      else if (kv.key() == "routing" && kv.value().is_string())
        routing = std::string_view(kv.value().get_string());
      else if (kv.key() == "doc")
        doc = &kv.value();
      else
        bad = kv.key() == "op" || kv.key() == "key" || kv.key() == "routing"
                  ? std::string(kv.key()) + " must be a string"
                  : "unknown field " + quoted(kv.key());
    }
    if (!bad.empty()) {
      add_error(line_no, 400, bad);
      continue;
    }
    if (op != "put" && op != "delete") {
      add_error(line_no, 400, op.empty() ? "op is required (\"put\" or \"delete\")" : "op must be \"put\" or \"delete\"");
      continue;
    }
    if (auto kv = validate_key(key); !kv) {
      add_error(line_no, 400, key.empty() ? "key is required" : kv.error().detail);
      continue;
    }
    if (routing && routing->empty()) {
      add_error(line_no, 400, "routing must not be empty");
      continue;
    }
    auto rt = route_key(ix, key, routing);
    storage::write_op wop;
    if (op == "put") {
      if (!doc) {
        add_error(line_no, 400, "doc is required for put");
        continue;
      }
      std::string text = to_json_text(*doc);
      if (text.size() > ctx_.config.max_doc_bytes) {
        add_error(line_no, 413, "document is " + std::to_string(text.size()) + " bytes; the limit is " +
                                    std::to_string(ctx_.config.max_doc_bytes));
        continue;
      }
      wop = storage::write_op{storage::op_kind::put, std::move(rt.storage_key), std::move(text)};
    } else {
      if (doc) {
        add_error(line_no, 400, "delete takes no doc");
        continue;
      }
      wop = storage::write_op{storage::op_kind::del, std::move(rt.storage_key), {}};
    }
    const auto& owner = ix.shards[rt.shard_pos].owner;
    auto& b = batches[cluster_.clustered() ? owner : ctx_.config.node_id];
    b.ops.push_back(std::move(wop));
    b.lines.push_back(line_no);
  }

  std::uint64_t created = 0, updated = 0, deleted = 0, not_found = 0;
  std::vector<std::string> owners;
  std::vector<std::vector<std::size_t>> owner_lines;
  std::vector<std::vector<storage::write_op>> sent_ops;
  std::vector<awaitable<result<std::vector<storage::op_status>>>> writes;
  for (auto& [owner, b] : batches) {
    const auto* n = c.snap->map->find_node(owner);
    if (owner != ctx_.config.node_id && (!n || n->state != node_state::up)) {
      for (auto line : b.lines)
        add_error(line, 503, "its shard is on node " + quoted(owner) + ", which is " +
                                 (n ? std::string(to_string(n->state)) : "unknown"));
      continue;
    }
    owners.push_back(owner);
    owner_lines.push_back(std::move(b.lines));
    sent_ops.push_back(b.ops);  // kept for a retry of ops that meet a fence
    writes.push_back(cluster_.write_on(owner, ix.id, std::move(b.ops)));
  }
  auto results = co_await gather(std::move(writes));
  // Ops that met a fence or a shard that moved are sent again, once, where the newest map
  // says their shards live.
  for (int round = 0; round < 2; ++round) {
    std::map<std::string, owner_batch> retry;
    std::vector<std::pair<std::size_t, std::size_t>> slots;  // (owner result, op) to overwrite
    for (std::size_t o = 0; o < results.size(); ++o) {
      if (!results[o]) continue;
      for (std::size_t i = 0; i < results[o]->size(); ++i) {
        const auto st = (*results[o])[i];
        if (st != storage::op_status::fenced && st != storage::op_status::no_shard) continue;
        slots.emplace_back(o, i);
      }
    }
    if (slots.empty() || !cluster_.clustered()) break;
    if (!co_await await_newer_map(c, std::chrono::milliseconds(5000))) break;
    const auto* now_ix = c.snap->map->find_index(ix.name);
    if (!now_ix || now_ix->id != ix.id) break;
    // Rebuild the ops from their lines' batches.
    std::vector<std::pair<std::string, std::size_t>> where;  // new owner, position in its retry batch
    for (const auto& [o, i] : slots) {
      const auto& op = sent_ops[o][i];
      const auto pos = shard_of_storage_key(*now_ix, op.key);  // keys this node built for this index
      const auto& owner = now_ix->shards[pos.value_or(0)].owner;
      auto& b = retry[owner];
      where.emplace_back(owner, b.ops.size());
      b.ops.push_back(op);
      b.lines.push_back(owner_lines[o][i]);
    }
    std::vector<std::string> retry_owners;
    std::vector<awaitable<result<std::vector<storage::op_status>>>> again;
    for (auto& [owner, b] : retry) {
      retry_owners.push_back(owner);
      again.push_back(cluster_.write_on(owner, ix.id, b.ops));
    }
    auto retried = co_await gather(std::move(again));
    for (std::size_t k = 0; k < slots.size(); ++k) {
      const auto [o, i] = slots[k];
      const auto& [owner, pos] = where[k];
      const auto ro = static_cast<std::size_t>(std::find(retry_owners.begin(), retry_owners.end(), owner) - retry_owners.begin());
      if (retried[ro]) (*results[o])[i] = (*retried[ro])[pos];
    }
  }
  for (std::size_t o = 0; o < results.size(); ++o) {
    const auto& lines_of = owner_lines[o];
    if (!results[o]) {
      for (auto line : lines_of)
        add_error(line, status_of(results[o].error().code), "node " + quoted(owners[o]) + ": " + results[o].error().detail);
      continue;
    }
    const auto& statuses = *results[o];
    for (std::size_t i = 0; i < statuses.size(); ++i) {
      switch (statuses[i]) {
        case storage::op_status::created: ++created; break;
        case storage::op_status::updated: ++updated; break;
        case storage::op_status::deleted: ++deleted; break;
        case storage::op_status::not_found: ++not_found; break;
        case storage::op_status::no_shard:
        case storage::op_status::fenced:
          add_error(lines_of[i], 409, "node " + quoted(owners[o]) + " does not hold that shard (the index was "
                                      "deleted, or the map changed meanwhile); retry");
          break;
      }
    }
  }
  std::sort(errors.begin(), errors.end(), [](const line_error& a, const line_error& b) { return a.line < b.line; });
  json::object o;
  o["index"] = ix.name;
  o["lines"] = lines;
  o["applied"] = created + updated + deleted + not_found;
  o["created"] = created;
  o["updated"] = updated;
  o["deleted"] = deleted;
  o["not_found"] = not_found;
  o["error_count"] = error_count;
  json::array errs;
  for (auto& e : errors) {
    json::object eo;
    eo["line"] = e.line;
    eo["status"] = e.status;
    eo["detail"] = e.detail;
    errs.push_back(std::move(eo));
  }
  o["errors"] = std::move(errs);
  o["took_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  co_return json_response(200, to_json_text(o));
}

// --- scans ----------------------------------------------------------------------------------

awaitable<http_response> rest_api::scan(call& c, const index_entry& ix) {
  std::size_t limit = default_scan_limit;
  if (auto l = c.param("limit")) {
    const auto v = parse_decimal(*l, 1, max_scan_limit);
    if (!v) co_return c.fail(400, "invalid-argument", "limit must be an integer from 1 to " + std::to_string(max_scan_limit));
    limit = static_cast<std::size_t>(*v);
  }
  const std::string* start = c.param("start");
  const std::string* end = c.param("end");
  const std::string* prefix = c.param("prefix");
  const auto whole = index_storage_range(ix);
  std::optional<std::string> after;
  if (auto cur = c.param("cursor")) {
    auto decoded = base64url_decode(*cur);
    if (!decoded || !whole.contains(*decoded))
      co_return c.fail(400, "invalid-argument", "cursor is not a cursor of index " + quoted(ix.name));
    after = std::move(*decoded);
  }

  // Range indexes keep keys in order: bounds narrow the storage range itself. Hash indexes
  // store keys in token order: bounds and prefix become a filter on the user key.
  key_range range = whole;
  std::optional<std::string> key_start, key_end, key_prefix;
  if (ix.strategy == partitioning::range) {
    std::string lo = start ? *start : std::string();
    std::optional<std::string> hi;
    if (end) hi = *end;
    if (prefix) {
      lo = std::max(lo, *prefix);
      auto succ = prefix_successor(*prefix);
      if (succ && (!hi || *succ < *hi)) hi = succ;
    }
    range = storage_range(ix.id, lo, hi);
  } else {
    if (start) key_start = *start;
    if (end) key_end = *end;
    if (prefix) key_prefix = *prefix;
  }

  // Walk the shards in order; each is one contiguous storage range, read where it lives.
  std::vector<std::pair<std::string, std::string>> records;
  std::optional<std::string> resume;
  std::size_t budget = max_scan_examined;
  std::size_t page_bytes = 0;  // across shards: the page ends early (with a cursor) past the cap
  std::size_t pos = 0;
  const index_entry* cur = &ix;
  // A shard in a cutover answers `conflict` until the map that settles it arrives: the scan
  // waits for it as long as a point read does (5 s in all), then says to retry (503).
  const auto wait_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(5000);
  int refreshes = 0;
  for (; pos < cur->shards.size(); ++pos) {
    const auto& s = cur->shards[pos];
    const auto sr = shard_storage_range(*cur, s);
    key_range r{std::max(sr.begin, range.begin), std::min(sr.end, range.end)};
    if (!(r.begin < r.end)) continue;
    if (after && *after >= r.end) continue;
    peer::scan_request q{ix.name, s.id, r.begin, r.end, after, static_cast<std::uint32_t>(limit - records.size()),
                         static_cast<std::uint32_t>(std::max<std::size_t>(budget, 1)), key_start, key_end, key_prefix};
    result<peer::scan_reply> page = make_error(errc::internal, "unset");
    if (!cluster_.is_local(s.owner))
      if (auto u = owner_unavailable(c, *cur, s)) co_return *u;
    page = co_await cluster_.scan_on(s.owner, std::move(q), c.snap->map->version);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(wait_until - std::chrono::steady_clock::now());
    if (!page && page.error().code == errc::conflict && cluster_.clustered() && refreshes < 20 && left.count() > 0) {
      // The shard is not where this map says: its move just committed and this map is stale,
      // the owner has not installed the map that gave it the shard yet, or the owner is fenced
      // in a cutover. Take the newest map (or give the owner a moment), then go on from the
      // last record taken, as a point read does.
      ++refreshes;
      (void)co_await catch_up_map(c, std::min(left, std::chrono::milliseconds(1000)));  // unreachable: retry as is
      const index_entry* now = c.snap->map->find_index(ix.name);
      if (!now || now->id != ix.id) co_return c.fail(404, "not-found", "index " + quoted(ix.name) + " does not exist");
      cur = now;
      if (!records.empty()) after = records.back().first;
      pos = static_cast<std::size_t>(-1);  // the loop's ++ starts again at the first shard;
      continue;                              // shards before `after` are skipped
    }
    if (!page && page.error().code == errc::conflict && cluster_.clustered())
      co_return c.fail(503, "unavailable", page.error().detail + " (waited " + std::to_string(refreshes) + " times for a newer map); retry");
    if (!page) co_return c.fail(page.error());
    budget -= std::min<std::size_t>(budget, page->examined);
    for (auto& rec : page->records) {
      page_bytes += rec.first.size() + rec.second.size();
      records.push_back(std::move(rec));
    }
    if (page->resume_after) {
      resume = std::move(page->resume_after);
      break;
    }
    if (records.size() >= limit) break;
    if (page_bytes >= ctx_.config.max_scan_page_bytes && !records.empty()) {
      resume = records.back().first;  // the next page goes on from here, in this shard or the next
      break;
    }
  }
  if (!resume && records.size() >= limit && !records.empty()) {
    // Full at a shard's end: offer a cursor if a later shard can hold more. (The next page
    // may come back empty if they hold nothing.)
    for (std::size_t p = pos + 1; p < cur->shards.size(); ++p) {
      const auto sr = shard_storage_range(*cur, cur->shards[p]);
      if (std::max(sr.begin, range.begin) < std::min(sr.end, range.end)) {
        resume = records.back().first;
        break;
      }
    }
  }

  auto user_key = [&](std::string_view storage_key) { return user_key_of(ix, storage_key); };
  if (c.text()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& [k, v] : records) rows.push_back({std::string(user_key(k)), v});
    co_return c.table({{{"key", text_col, "the record's key"}, {"doc", text_col, "its document"}}, std::move(rows)});
  }
  std::string out = "{\"index\":";
  append_json_string(out, ix.name);
  out.append(",\"records\":[");
  bool first = true;
  for (const auto& [k, v] : records) {
    if (!first) out.push_back(',');
    first = false;
    out.append("{\"key\":");
    append_json_string(out, user_key(k));
    out.append(",\"doc\":").append(v).push_back('}');
  }
  out.append("],\"count\":").append(std::to_string(records.size()));
  out.append(",\"next_cursor\":");
  if (resume)
    append_json_string(out, base64url_encode(*resume));
  else
    out.append("null");
  out.push_back('}');
  co_return json_response(200, std::move(out));
}


awaitable<http_response> rest_api::count(call& c, const index_entry& ix) {
  auto view = co_await cluster_.collect_stats(*c.snap->map, &ix.name);
  std::uint64_t n = 0;
  for (const auto& s : ix.shards) {
    const auto* st = view.find(ix, s);
    if (!st) {
      // A count must be exact: a shard whose owner does not answer makes it unknowable.
      auto why = view.unreachable.count(s.owner) ? view.unreachable[s.owner] : "no stats";
      co_return c.fail(503, "unavailable", "shard " + std::to_string(s.id) + " of index " + quoted(ix.name) +
                                               " is on node " + quoted(s.owner) + ", which did not answer (" + why + ")");
    }
    n += st->records;
  }
  json::object o;
  o["index"] = ix.name;
  o["count"] = n;
  o["shards"] = ix.shards.size();
  co_return json_response(200, to_json_text(o));
}

}  // namespace shardd
