#include "shardd/json_fields.hpp"

#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>

#include <charconv>
#include <cmath>

namespace shardd {

namespace json = boost::json;

json_fields::json_fields(const json::object& obj, std::string path) : obj_(obj), path_(std::move(path)) {}

std::string json_fields::child_path(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

error json_fields::fail(std::string_view key, std::string_view what) const {
  return make_error(errc::invalid_argument, child_path(key) + ": " + std::string(what));
}

const json::value* json_fields::find(std::string_view key) {
  used_.emplace(key);
  auto it = obj_.find(key);
  if (it == obj_.end() || it->value().is_null()) return nullptr;
  return &it->value();
}

result<std::string> json_fields::req_string(std::string_view key) {
  auto v = find(key);
  if (!v) return fail(key, "is required");
  if (!v->is_string()) return fail(key, "expected a string");
  return std::string(v->get_string());
}

result<std::optional<std::string>> json_fields::opt_string(std::string_view key) {
  auto v = find(key);
  if (!v) return std::optional<std::string>{};
  if (!v->is_string()) return fail(key, "expected a string");
  return std::optional<std::string>(std::string(v->get_string()));
}

namespace {

std::optional<std::uint64_t> as_u64(const json::value& v) {
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  if (v.is_double()) {
    double d = v.get_double();
    if (d >= 0 && d <= 9007199254740992.0 && std::floor(d) == d) return static_cast<std::uint64_t>(d);
  }
  return std::nullopt;
}

}  // namespace

result<std::uint64_t> json_fields::req_u64(std::string_view key) {
  auto v = find(key);
  if (!v) return fail(key, "is required");
  auto n = as_u64(*v);
  if (!n) return fail(key, "expected a non-negative integer");
  return *n;
}

result<std::uint64_t> json_fields::opt_u64(std::string_view key, std::uint64_t fallback, std::uint64_t min,
                                           std::uint64_t max) {
  auto v = find(key);
  if (!v) return fallback;
  auto n = as_u64(*v);
  if (!n) return fail(key, "expected a non-negative integer");
  if (*n < min || *n > max)
    return fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return *n;
}

result<double> json_fields::opt_double(std::string_view key, double fallback, double min, double max) {
  auto v = find(key);
  if (!v) return fallback;
  if (!v->is_number()) return fail(key, "expected a number");
  double d = v->to_number<double>();
  if (!(d >= min && d <= max))
    return fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return d;
}

result<bool> json_fields::opt_bool(std::string_view key, bool fallback) {
  auto v = find(key);
  if (!v) return fallback;
  if (!v->is_bool()) return fail(key, "expected true or false");
  return v->get_bool();
}

result<const json::object*> json_fields::opt_object(std::string_view key) {
  auto v = find(key);
  if (!v) return static_cast<const json::object*>(nullptr);
  if (!v->is_object()) return fail(key, "expected an object");
  return &v->get_object();
}

result<const json::array*> json_fields::opt_array(std::string_view key) {
  auto v = find(key);
  if (!v) return static_cast<const json::array*>(nullptr);
  if (!v->is_array()) return fail(key, "expected an array");
  return &v->get_array();
}

result<void> json_fields::finish() const {
  for (const auto& kv : obj_) {
    if (!used_.contains(std::string_view(kv.key())))
      return make_error(errc::invalid_argument, child_path(kv.key()) + ": unknown field");
  }
  return {};
}

result<json::value> parse_json(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 64;
  json::parser p(json::storage_ptr(), opts);
  // write() needs one complete value and reports trailing data as an error.
  std::size_t n = p.write(text.data(), text.size(), ec);
  if (ec)
    return make_error(errc::invalid_argument, std::string(what) + " is not valid JSON (" + ec.message() +
                                                  " at byte " + std::to_string(n) + ")");
  return p.release();
}

namespace {

void write_json(std::string& out, const boost::json::value& v) {
  namespace json = boost::json;
  switch (v.kind()) {
    case json::kind::null: out += "null"; return;
    case json::kind::bool_: out += v.get_bool() ? "true" : "false"; return;
    case json::kind::int64: out += std::to_string(v.get_int64()); return;
    case json::kind::uint64: out += std::to_string(v.get_uint64()); return;
    case json::kind::double_: {
      const double d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";
        return;
      }
      char buf[32];
      auto [p, ec] = std::to_chars(buf, buf + sizeof buf, d);
      const std::string_view text(buf, ec == std::errc{} ? static_cast<std::size_t>(p - buf) : 0);
      out += text;
      // A double stays a double when read back ("1.0", not "1", which parsers take for an integer).
      if (text.find_first_of(".e") == std::string_view::npos) out += ".0";
      return;
    }
    case json::kind::string: out += json::serialize(v.get_string()); return;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += ',';
        first = false;
        write_json(out, e);
      }
      out += ']';
      return;
    }
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& [k, e] : v.get_object()) {
        if (!first) out += ',';
        first = false;
        out += json::serialize(json::string_view(k));
        out += ':';
        write_json(out, e);
      }
      out += '}';
      return;
    }
  }
}

}  // namespace

std::string to_json_text(const boost::json::value& v) {
  std::string out;
  write_json(out, v);
  return out;
}

}  // namespace shardd
