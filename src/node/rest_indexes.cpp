// REST: indexes and shards.
#include "node/controller.hpp"
#include "node/rest_internal.hpp"
#include "shardd/json_fields.hpp"
#include "shardd/text.hpp"

#include <boost/json/serialize.hpp>

namespace shardd {

// --- indexes --------------------------------------------------------------------------------

namespace rest {

json::object shard_json(const index_entry& ix, const shard_entry& s, const storage::shard_stats* st) {
  json::object o;
  o["index"] = ix.name;
  o["shard"] = s.id;
  o["start"] = bound_to_text(ix.strategy, s.start);
  if (s.end)
    o["end"] = bound_to_text(ix.strategy, *s.end);
  else
    o["end"] = nullptr;
  o["node"] = s.owner;
  o["state"] = to_string(s.state);
  if (!s.target.empty()) o["target"] = s.target;
  if (st) {
    o["records"] = st->records;
    o["bytes"] = st->bytes;
  } else {
    o["records"] = nullptr;  // the owner did not answer
    o["bytes"] = nullptr;
  }
  return o;
}

std::vector<std::string> shard_row(const index_entry& ix, const shard_entry& s, const storage::shard_stats* st) {
  return {ix.name, std::to_string(s.id), bound_to_text(ix.strategy, s.start), s.end ? bound_to_text(ix.strategy, *s.end) : "-",
          s.owner, std::string(to_string(s.state)), st ? std::to_string(st->records) : "?",
          st ? std::to_string(st->bytes) : "?"};
}

/// The shards table (`GET /v1/shards?format=text`) of shard_row's rows.
cat_table shard_table(std::vector<std::vector<std::string>> rows) {
  return {{{"index", text_col, "index name"},
           {"shard", num_col, "shard number"},
           {"start", text_col, "first token (hash) or key (range) of the shard"},
           {"end", text_col, "the token or key after its last (- for the end of the space)"},
           {"node", text_col, "the owner"},
           {"state", text_col, "active, migrating, importing or offline"},
           {"records", num_col, "records (? when the owner did not answer)"},
           {"bytes", bytes_col, "bytes, as the store estimates them"}},
          std::move(rows)};
}

}  // namespace rest

namespace {

json::array unreachable_json(const std::map<std::string, std::string>& u) {
  json::array a;
  for (const auto& [node, why] : u) {
    json::object o;
    o["node"] = node;
    o["reason"] = why;
    a.push_back(std::move(o));
  }
  return a;
}

}  // namespace

awaitable<http_response> rest_api::get_index(call& c, const std::string& name, unsigned status) {
  const auto* ix = c.snap->map->find_index(name);
  if (!ix) co_return c.fail(404, "not-found", "index " + quoted(name) + " does not exist");
  auto view = co_await cluster_.collect_stats(*c.snap->map, &name);
  json::array shards;
  std::uint64_t records = 0, bytes = 0;
  bool complete = true;
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : ix->shards) {
    const auto* st = view.find(*ix, s);
    if (st) {
      records += st->records;
      bytes += st->bytes;
    } else {
      complete = false;
    }
    rows.push_back(shard_row(*ix, s, st));
    shards.push_back(shard_json(*ix, s, st));
  }
  if (c.text()) {
    for (auto& r : rows) r.erase(r.begin());
    auto t = shard_table(std::move(rows));
    t.columns.erase(t.columns.begin());
    co_return c.table(t);
  }
  json::object o;
  o["name"] = ix->name;
  o["id"] = ix->id;
  o["partitioning"] = to_string(ix->strategy);
  o["shard_count"] = ix->shards.size();
  o["records"] = records;
  o["bytes"] = bytes;
  o["complete"] = complete;  // false: some owners did not answer; records and bytes are partial
  if (!view.unreachable.empty()) o["unreachable"] = unreachable_json(view.unreachable);
  o["map_version"] = c.snap->map->version;
  o["shards"] = std::move(shards);
  co_return json_response(status, to_json_text(o));
}

awaitable<http_response> rest_api::list_indexes(call& c) {
  auto view = co_await cluster_.collect_stats(*c.snap->map, nullptr);
  json::array list;
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, ix] : c.snap->map->indexes) {
    std::uint64_t records = 0, bytes = 0;
    bool complete = true;
    for (const auto& s : ix.shards) {
      if (const auto* st = view.find(ix, s)) {
        records += st->records;
        bytes += st->bytes;
      } else {
        complete = false;
      }
    }
    rows.push_back({name, std::string(to_string(ix.strategy)), std::to_string(ix.shards.size()),
                    complete ? std::to_string(records) : "?", complete ? std::to_string(bytes) : "?"});
    json::object o;
    o["name"] = name;
    o["partitioning"] = to_string(ix.strategy);
    o["shards"] = ix.shards.size();
    o["records"] = records;
    o["bytes"] = bytes;
    o["complete"] = complete;
    list.push_back(std::move(o));
  }
  if (c.text())
    co_return c.table({{{"index", text_col, "index name"},
                        {"partitioning", text_col, "hash or range"},
                        {"shards", num_col, "number of shards"},
                        {"records", num_col, "records in all shards (? when an owner did not answer)"},
                        {"bytes", bytes_col, "bytes in all shards, as the store estimates them"}},
                       std::move(rows)});
  json::object o;
  o["indexes"] = std::move(list);
  if (!view.unreachable.empty()) o["unreachable"] = unreachable_json(view.unreachable);
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, to_json_text(o));
}

awaitable<http_response> rest_api::put_index(call& c, const std::string& name) {
  index_spec spec;
  spec.shards = ctx_.config.default_shards;
  const auto body_start = c.req.body.find_first_not_of(" \t\r\n");
  if (body_start != std::string::npos) {
    auto parsed = parse_json(c.req.body, "request body");
    if (!parsed) co_return c.fail(parsed.error());
    if (!parsed->is_object()) co_return c.fail(400, "invalid-argument", "index settings must be a JSON object");
    json_fields f(parsed->get_object(), "");
    auto p = f.opt_string("partitioning");
    if (!p) co_return c.fail(p.error());
    if (*p) {
      auto strategy = parse_partitioning(**p);
      if (!strategy) co_return c.fail(400, "invalid-argument", "partitioning: must be \"hash\" or \"range\"");
      spec.strategy = *strategy;
    }
    const bool has_shards = f.find("shards") != nullptr;
    auto shards = f.opt_u64("shards", spec.shards, 1, max_shards_per_index);
    if (!shards) co_return c.fail(shards.error());
    spec.shards = static_cast<std::uint32_t>(*shards);
    auto points = f.opt_array("split_points");
    if (!points) co_return c.fail(points.error());
    if (*points) {
      for (const auto& v : **points) {
        if (!v.is_string()) co_return c.fail(400, "invalid-argument", "split_points: every split point must be a string");
        spec.split_points.emplace_back(v.get_string());
      }
    }
    if (auto fin = f.finish(); !fin) co_return c.fail(fin.error());
    if (spec.strategy == partitioning::range && has_shards)
      co_return c.fail(400, "invalid-argument",
                       "shards: applies to hash partitioning; a range index starts with one shard per split_points interval");
    if (spec.strategy == partitioning::hash && *points)
      co_return c.fail(400, "invalid-argument", "split_points: applies to range partitioning only");
  }
  auto r = co_await ctx_.ctl->create_index(name, std::move(spec));
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  auto res = co_await get_index(c, name, 201);
  res.set_header("Location", "/v1/indexes/" + name);
  co_return res;
}

awaitable<http_response> rest_api::delete_index(call& c, const std::string& name) {
  auto r = co_await ctx_.ctl->drop_index(name);
  if (!r) co_return c.fail(r.error());
  c.snap = *r;
  json::object o;
  o["acknowledged"] = true;
  o["index"] = name;
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, to_json_text(o));
}

awaitable<http_response> rest_api::list_shards(call& c) {
  const std::string* only = c.param("index");
  if (only && !c.snap->map->find_index(*only))
    co_return c.fail(404, "not-found", "index " + quoted(*only) + " does not exist");
  auto view = co_await cluster_.collect_stats(*c.snap->map, only);
  json::array list;
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, ix] : c.snap->map->indexes) {
    if (only && name != *only) continue;
    for (const auto& s : ix.shards) {
      const auto* st = view.find(ix, s);
      rows.push_back(shard_row(ix, s, st));
      list.push_back(shard_json(ix, s, st));
    }
  }
  if (c.text()) co_return c.table(shard_table(std::move(rows)));
  json::object o;
  o["shards"] = std::move(list);
  if (!view.unreachable.empty()) o["unreachable"] = unreachable_json(view.unreachable);
  o["map_version"] = c.snap->map->version;
  co_return json_response(200, to_json_text(o));
}

// --- the full check of a shard -----------------------------------------------------------------

namespace {

json::object stats_json(const storage::shard_stats& st) {
  json::object o;
  o["records"] = st.records;
  o["bytes"] = st.bytes;
  o["digest"] = st.digest().sum_hex();
  return o;
}

}  // namespace

awaitable<http_response> rest_api::verify_shard(call& c, const index_entry& ix, const shard_entry& s) {
  // Runs on the owner (on_shard_owner): it holds the records.
  const auto started = std::chrono::steady_clock::now();
  auto checked = co_await shards_.verify(ix, s);
  if (!checked) co_return c.fail(checked.error());
  const bool match = checked->match();
  if (!match)
    SHARDD_LOG(warn, "shard_verify_mismatch", "index", ix.name, "shard", s.id, "kept_records", checked->kept.records,
               "scanned_records", checked->scanned.records);
  json::object o;
  o["index"] = ix.name;
  o["shard"] = s.id;
  o["node"] = ctx_.config.node_id;
  o["match"] = match;
  o["sequence"] = checked->seq;
  o["kept"] = stats_json(checked->kept);
  o["scanned"] = stats_json(checked->scanned);
  o["took_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  co_return json_response(200, to_json_text(o));
}

}  // namespace shardd
