#pragma once
// Error codes and the error value returned by the pure core.

#include <boost/system/result.hpp>

#include <ostream>
#include <string>
#include <string_view>
#include <system_error>

namespace shardd {

/// Error conditions of the core library. Each maps to one HTTP status in the REST layer.
enum class errc {
  ok = 0,
  invalid_argument = 1,  ///< malformed input: a name, a key, a JSON document
  not_found = 2,         ///< unknown index, shard, node or record
  already_exists = 3,    ///< an index or node with that name exists
  conflict = 4,          ///< the operation does not fit the current state (shard already moving)
  unavailable = 5,       ///< the owner of a shard is down or unreachable
  too_large = 6,         ///< a body or document over its limit
  internal = 7,          ///< a bug or an I/O failure that is not the caller's fault
  corrupt = 8,           ///< data failed its checksum on the way: nothing of it was applied; send it again
  forbidden = 9,         ///< the sender may not do this: a peer outside its role, a key outside its shard
  insufficient_storage = 10,  ///< the owner's data disk is above its flood watermark: no writes that add data
  not_controller = 11,   ///< this node is not (or no longer) the elected controller: nothing was changed; ask the next one
};

const std::error_category& shardd_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), shardd_category()};
}

/// An error with a human-readable reason. The reason is shown to operators as-is (it becomes
/// the `detail` of a problem+json answer), so it names the offending field or value.
struct error {
  errc code = errc::internal;
  std::string detail;

  friend bool operator==(const error&, const error&) = default;
};

[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& loc);

template <class T>
using result = boost::system::result<T, error>;

inline error make_error(errc code, std::string detail) { return error{code, std::move(detail)}; }

inline std::ostream& operator<<(std::ostream& os, const error& e) {
  return os << static_cast<int>(e.code) << ": " << e.detail;
}

/// Short stable name of an error code ("not_found"), used in logs and problem types.
std::string_view to_string(errc e) noexcept;

}  // namespace shardd

template <>
struct std::is_error_code_enum<shardd::errc> : std::true_type {};
