#pragma once
// Text helpers for the REST layer: opaque cursors, aligned tables, JSON string escaping.

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardd {

/// Base64 with the URL alphabet and no padding (RFC 4648 §5): safe in a query string.
std::string base64url_encode(std::string_view bytes);
/// Decodes base64url without padding; nullopt on any character outside the alphabet or a
/// length that cannot occur.
std::optional<std::string> base64url_decode(std::string_view text);
/// Standard base64 with '=' padding (RFC 4648 §4), as etcd's JSON gateway writes bytes.
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

/// An aligned text table with a header row, columns separated by two spaces, like
/// Elasticsearch's _cat APIs. Numeric-looking cells are right-aligned.
std::string render_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

/// A decimal integer in [min, max] made of digits only, as std::from_chars reads it: a sign,
/// a space, an empty string or anything after the digits is refused (nullopt).
std::optional<std::uint64_t> parse_decimal(std::string_view s, std::uint64_t min = 0,
                                           std::uint64_t max = std::numeric_limits<std::uint64_t>::max());

/// Appends `s` as a JSON string literal (quotes included). `s` must be valid UTF-8.
void append_json_string(std::string& out, std::string_view s);

/// A JSON text re-printed with two-space indentation and one member or element per line
/// (`?pretty`); nullopt if `json` does not parse.
std::optional<std::string> pretty_json(std::string_view json);

/// `s` with every byte that does not begin a valid UTF-8 sequence replaced by U+FFFD: for
/// echoing input (a request target, a name) into JSON, which must be valid UTF-8.
std::string to_valid_utf8(std::string_view s);

}  // namespace shardd
