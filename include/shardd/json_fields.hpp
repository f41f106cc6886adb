#pragma once
// Typed, strict reading of JSON objects with error messages that name the field.

#include "shardd/error.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>

namespace shardd {

/// Reads fields of one JSON object. Every error names the full path of the field
/// ("rest.listen: expected a string"). `finish()` rejects fields that were never read, so a
/// misspelt option is an error instead of being silently ignored.
class json_fields {
 public:
  json_fields(const boost::json::object& obj, std::string path);

  /// The value of `key`, or nullptr if absent (JSON null counts as absent).
  const boost::json::value* find(std::string_view key);

  result<std::string> req_string(std::string_view key);
  result<std::optional<std::string>> opt_string(std::string_view key);
  result<std::uint64_t> req_u64(std::string_view key);
  result<std::uint64_t> opt_u64(std::string_view key, std::uint64_t fallback,
                                std::uint64_t min = 0, std::uint64_t max = UINT64_MAX);
  result<double> opt_double(std::string_view key, double fallback, double min, double max);
  result<bool> opt_bool(std::string_view key, bool fallback);
  result<const boost::json::object*> opt_object(std::string_view key);
  result<const boost::json::array*> opt_array(std::string_view key);

  /// Error for `key` with `what` ("must be at least 1").
  error fail(std::string_view key, std::string_view what) const;
  const std::string& path() const noexcept { return path_; }
  std::string child_path(std::string_view key) const;

  [[nodiscard]] result<void> finish() const;

 private:
  const boost::json::object& obj_;
  std::string path_;
  std::set<std::string, std::less<>> used_;
};

/// Reads one field inside a function returning a result: `expr` is a json_fields read; its
/// error returns, its value is assigned to `target` (converted to the target's type; give the
/// read bounds that fit it).
#define SHARDD_READ(target, expr)                                          \
  do {                                                                     \
    auto r_ = (expr);                                                      \
    if (!r_) return r_.error();                                            \
    target = static_cast<std::remove_reference_t<decltype(target)>>(*r_); \
  } while (0)

/// Assigns optional string field `key` of `fields` to `target` when present.
#define SHARDD_READ_OPT_STRING(target, fields, key) \
  do {                                              \
    auto r_ = (fields).opt_string(key);             \
    if (!r_) return r_.error();                     \
    if (*r_) target = **r_;                         \
  } while (0)

/// Parse text into a JSON value, turning parser errors into errc::invalid_argument with the
/// position of the problem.
result<boost::json::value> parse_json(std::string_view text, std::string_view what);

/// Serialises `v` like boost::json::serialize, but writes doubles the way people read them:
/// the shortest decimal that reads back the same ("0.0", "0.5", "12.25", "1e+21"), never "5E-1"
/// as Boost.JSON 1.81 does, and always with a "." or an exponent so that it reads back as a
/// double; a non-finite double becomes null. Every JSON answer and every stored document is
/// written with it.
std::string to_json_text(const boost::json::value& v);

}  // namespace shardd
