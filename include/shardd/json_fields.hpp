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

/// Parse text into a JSON value, turning parser errors into errc::invalid_argument with the
/// position of the problem.
result<boost::json::value> parse_json(std::string_view text, std::string_view what);

}  // namespace shardd
