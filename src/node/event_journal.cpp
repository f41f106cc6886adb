#include "node/event_journal.hpp"
#include "shardd/json_fields.hpp"

#include "common/log.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace shardd {

namespace json = boost::json;


std::string event_key(std::uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(id));
  return std::string(event_prefix) + buf;
}

std::string to_json(const event& e) {
  json::object o;
  o["id"] = e.id;
  o["unix_ms"] = e.unix_ms;
  o["type"] = e.type;
  o["summary"] = e.summary;
  for (const auto& [k, v] : e.fields) {
    if (const auto* s = std::get_if<std::string>(&v)) o[k] = *s;
    else if (const auto* i = std::get_if<std::int64_t>(&v)) o[k] = *i;
    else o[k] = std::get<double>(v);
  }
  if (!e.changes.empty()) {
    json::array a;
    for (const auto& c : e.changes) a.push_back(json::value(c));
    o["changes"] = std::move(a);
  }
  return to_json_text(o);
}

result<event> event_from_json(std::string_view text) {
  boost::system::error_code ec;
  auto v = json::parse(text, ec);
  if (ec || !v.is_object()) return make_error(errc::corrupt, "event: not a JSON object");
  const auto& o = v.get_object();
  event e;
  for (const auto& [k, val] : o) {
    if (k == "id" && val.is_number()) e.id = val.to_number<std::uint64_t>();
    else if (k == "unix_ms" && val.is_number()) e.unix_ms = val.to_number<std::int64_t>();
    else if (k == "type" && val.is_string()) e.type = val.get_string();
    else if (k == "summary" && val.is_string()) e.summary = val.get_string();
    else if (k == "changes" && val.is_array()) {
      for (const auto& c : val.get_array())
        if (c.is_string()) e.changes.emplace_back(c.get_string());
    } else if (val.is_string()) e.fields.emplace_back(std::string(k), std::string(val.get_string()));
    else if (val.is_int64()) e.fields.emplace_back(std::string(k), val.get_int64());
    else if (val.is_uint64()) e.fields.emplace_back(std::string(k), static_cast<std::int64_t>(val.get_uint64()));
    else if (val.is_double()) e.fields.emplace_back(std::string(k), val.get_double());
  }
  if (e.id == 0 || e.type.empty()) return make_error(errc::corrupt, "event: no id or type");
  return e;
}

event_journal::event_journal(storage::store* store, std::size_t max) : max_(std::max<std::size_t>(1, max)) {
  if (!store) return;
  auto stored = store->scan_meta(event_prefix);
  if (!stored) {
    SHARDD_LOG(err, "events_unreadable", "error", stored.error().detail);
    return;
  }
  load(*stored);
}

void event_journal::load(const std::vector<std::pair<std::string, std::string>>& stored) {
  events_.clear();
  for (const auto& [key, value] : stored) {
    auto e = event_from_json(value);
    if (!e) {
      SHARDD_LOG(err, "event_unreadable", "key", key, "error", e.error().detail);
      continue;
    }
    next_id_ = std::max(next_id_, e->id + 1);
    events_.push_back(std::move(*e));
  }
  // Keys sort by id; only a smaller max than before leaves more than it allows (trimmed by the
  // next append's writes).
}

std::vector<storage::write_op> event_journal::append(event e) {
  e.id = next_id_++;
  e.unix_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  SHARDD_LOG(info, "event", "id", e.id, "type", e.type, "summary", e.summary);
  std::vector<storage::write_op> ops;
  ops.push_back({storage::op_kind::meta_put, event_key(e.id), to_json(e)});
  events_.push_back(std::move(e));
  while (events_.size() > max_) {
    ops.push_back({storage::op_kind::meta_del, event_key(events_.front().id), {}});
    events_.pop_front();
  }
  return ops;
}

std::vector<event> event_journal::list(std::uint64_t since, const std::vector<std::string>& types, std::size_t limit) const {
  std::vector<event> out;
  // Ids are consecutive in the deque: start at the first above `since`.
  auto it = std::upper_bound(events_.begin(), events_.end(), since, [](std::uint64_t v, const event& e) { return v < e.id; });
  for (; it != events_.end() && out.size() < limit; ++it)
    if (types.empty() || std::find(types.begin(), types.end(), it->type) != types.end()) out.push_back(*it);
  return out;
}

}  // namespace shardd
