#include "shardd/cat_table.hpp"

#include "shardd/text.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>

namespace shardd {

namespace {

std::optional<bool> flag(const std::string* v) {
  if (!v) return false;
  if (v->empty() || *v == "true") return true;
  if (*v == "false") return false;
  return std::nullopt;
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  while (true) {
    const auto comma = s.find(',');
    out.emplace_back(s.substr(0, comma));
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

std::string column_names(const cat_table& t) {
  std::string out;
  for (const auto& c : t.columns) out.append(out.empty() ? "" : ", ").append(c.name);
  return out;
}

std::optional<std::size_t> column_index(const cat_table& t, std::string_view name) {
  for (std::size_t i = 0; i < t.columns.size(); ++i)
    if (t.columns[i].name == name) return i;
  return std::nullopt;
}

std::optional<double> number_of(std::string_view cell) {
  if (cell.ends_with('%')) cell.remove_suffix(1);  // a percentage sorts by its number
  double v = 0;
  auto [p, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), v);
  if (ec != std::errc{} || p != cell.data() + cell.size()) return std::nullopt;
  return v;
}

const char* kind_name(column_kind k) {
  switch (k) {
    case column_kind::number: return "number";
    case column_kind::bytes: return "bytes";
    default: return "text";
  }
}

}  // namespace

result<cat_options> parse_cat_options(const cat_query& q) {
  cat_options o;
  auto v = flag(q.v);
  if (!v) return make_error(errc::invalid_argument, "v takes no value, true or false");
  o.header = !q.v || *v;
  auto help = flag(q.help);
  if (!help) return make_error(errc::invalid_argument, "help takes no value, true or false");
  o.help = *help;
  if (q.h) {
    if (q.h->empty()) return make_error(errc::invalid_argument, "h must name at least one column");
    o.columns = split_list(*q.h);
    for (const auto& c : o.columns)
      if (c.empty()) return make_error(errc::invalid_argument, "h has an empty column name");
  }
  if (q.s) {
    if (q.s->empty()) return make_error(errc::invalid_argument, "s must name at least one column");
    for (auto& part : split_list(*q.s)) {
      cat_sort_key k;
      const auto colon = part.find(':');
      k.column = part.substr(0, colon);
      if (colon != std::string::npos) {
        const auto dir = std::string_view(part).substr(colon + 1);
        if (dir == "desc")
          k.descending = true;
        else if (dir != "asc")
          return make_error(errc::invalid_argument, "s takes column, column:asc or column:desc, not " + part);
      }
      if (k.column.empty()) return make_error(errc::invalid_argument, "s has an empty column name");
      o.sort.push_back(std::move(k));
    }
  }
  if (q.bytes) {
    static constexpr std::pair<std::string_view, byte_unit> units[] = {
        {"human", byte_unit::human}, {"b", byte_unit::b},   {"kb", byte_unit::kb},
        {"mb", byte_unit::mb},       {"gb", byte_unit::gb}, {"tb", byte_unit::tb}};
    const auto it = std::find_if(std::begin(units), std::end(units), [&](const auto& u) { return u.first == *q.bytes; });
    if (it == std::end(units)) return make_error(errc::invalid_argument, "bytes must be one of b, kb, mb, gb, tb, human");
    o.bytes = it->second;
  }
  return o;
}

std::string format_bytes(std::uint64_t bytes, byte_unit unit) {
  static constexpr const char* suffix[] = {"b", "kb", "mb", "gb", "tb"};
  int step = 0;
  switch (unit) {
    case byte_unit::b: return std::to_string(bytes) + "b";
    case byte_unit::kb: step = 1; break;
    case byte_unit::mb: step = 2; break;
    case byte_unit::gb: step = 3; break;
    case byte_unit::tb: step = 4; break;
    case byte_unit::human: {
      double v = static_cast<double>(bytes);
      while (v >= 1024.0 && step < 4) {
        v /= 1024.0;
        ++step;
      }
      if (step == 0) return std::to_string(bytes) + "b";
      const double tenths = std::floor(v * 10.0 + 0.5) / 10.0;
      char buf[48];
      if (tenths == std::floor(tenths))
        std::snprintf(buf, sizeof buf, "%.0f%s", tenths, suffix[step]);
      else
        std::snprintf(buf, sizeof buf, "%.1f%s", tenths, suffix[step]);
      return buf;
    }
  }
  return std::to_string(bytes >> (10 * step)) + suffix[step];
}

result<std::string> render_cat(const cat_table& t, const cat_options& o) {
  if (o.help) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& c : t.columns) rows.push_back({c.name, kind_name(c.kind), c.help});
    return render_table({"column", "type", "description"}, rows);
  }
  std::vector<std::size_t> chosen;
  if (o.columns.empty()) {
    for (std::size_t i = 0; i < t.columns.size(); ++i) chosen.push_back(i);
  } else {
    for (const auto& name : o.columns) {
      auto i = column_index(t, name);
      if (!i) return make_error(errc::invalid_argument, "h names unknown column " + name + "; columns: " + column_names(t));
      chosen.push_back(*i);
    }
  }
  std::vector<std::pair<std::size_t, bool>> keys;
  for (const auto& k : o.sort) {
    auto i = column_index(t, k.column);
    if (!i) return make_error(errc::invalid_argument, "s names unknown column " + k.column + "; columns: " + column_names(t));
    keys.emplace_back(*i, k.descending);
  }
  std::vector<const std::vector<std::string>*> order;
  order.reserve(t.rows.size());
  for (const auto& r : t.rows) order.push_back(&r);
  if (!keys.empty()) {
    static const std::string empty;
    auto cell = [](const std::vector<std::string>& r, std::size_t i) -> const std::string& { return i < r.size() ? r[i] : empty; };
    // <0, 0, >0 as a before, equal to or after b in ascending order.
    auto compare = [&](const std::vector<std::string>& a, const std::vector<std::string>& b, std::size_t col) {
      const auto& x = cell(a, col);
      const auto& y = cell(b, col);
      if (t.columns[col].kind != column_kind::text) {
        const auto nx = number_of(x), ny = number_of(y);
        if (nx && ny) return *nx < *ny ? -1 : *nx > *ny ? 1 : 0;
        if (nx || ny) return nx ? 1 : -1;  // a cell that is not a number ("-") sorts first
      }
      return x.compare(y) < 0 ? -1 : x.compare(y) > 0 ? 1 : 0;
    };
    std::stable_sort(order.begin(), order.end(), [&](const auto* a, const auto* b) {
      for (const auto& [col, desc] : keys) {
        const int c = compare(*a, *b, col);
        if (c != 0) return desc ? c > 0 : c < 0;
      }
      return false;
    });
  }
  std::vector<std::string> header;
  for (auto i : chosen) header.push_back(t.columns[i].name);
  std::vector<std::vector<std::string>> rows;
  rows.reserve(order.size());
  for (const auto* r : order) {
    std::vector<std::string> out;
    out.reserve(chosen.size());
    for (auto i : chosen) {
      std::string v = i < r->size() ? (*r)[i] : std::string();
      if (t.columns[i].kind == column_kind::bytes)
        if (auto n = parse_decimal(v)) v = format_bytes(*n, o.bytes);
      out.push_back(std::move(v));
    }
    rows.push_back(std::move(out));
  }
  auto text = render_table(header, rows);
  if (!o.header) text.erase(0, text.find('\n') + 1);
  return text;
}

}  // namespace shardd
