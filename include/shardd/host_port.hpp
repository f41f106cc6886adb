#pragma once
// HOST:PORT addresses (listen addresses, peer addresses), read with Boost.URL's authority
// parser.

#include "shardd/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace shardd {

/// host:port, split. IPv6 literals are written [::1]:port.
struct host_port {
  std::string host;  ///< a name, an IPv4 address, or an IPv6 address without brackets
  std::uint16_t port = 0;
  /// host:port again, with brackets around an IPv6 address.
  std::string to_string() const;
  friend bool operator==(const host_port&, const host_port&) = default;
};

/// Reads HOST:PORT, [IPV6]:PORT or IPV4:PORT: a host is required, a port of 1-65535 is
/// required, and nothing else (no user info, no path) may be there.
[[nodiscard]] result<host_port> parse_host_port(std::string_view text);

}  // namespace shardd
