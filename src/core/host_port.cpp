#include "shardd/host_port.hpp"

#include <boost/url/parse.hpp>

#include <charconv>

namespace shardd {

std::string host_port::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

result<host_port> parse_host_port(std::string_view text) {
  namespace urls = boost::urls;
  const auto expected = [&] { return make_error(errc::invalid_argument, "expected HOST:PORT, got '" + std::string(text) + "'"); };
  // Two colons or more without brackets is an IPv6 address missing them (the authority
  // grammar would read it as a name and a port that is not a number).
  if (!text.empty() && text.front() != '[' && text.find(':') != text.rfind(':'))
    return make_error(errc::invalid_argument, "IPv6 addresses need brackets: [" + std::string(text.substr(0, text.rfind(':'))) +
                                                  "]:PORT");
  auto a = urls::parse_authority(text);
  if (!a) return expected();
  if (a->has_userinfo()) return expected();
  host_port hp;
  switch (a->host_type()) {
    case urls::host_type::ipv4: hp.host = a->host_ipv4_address().to_string(); break;
    case urls::host_type::ipv6: hp.host = a->host_ipv6_address().to_string(); break;
    case urls::host_type::name: hp.host = a->host_name(); break;
    default: return expected();  // IPvFuture, or none
  }
  if (hp.host.empty() || !a->has_port() || a->port().empty()) return expected();
  const auto port = a->port();
  unsigned v = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (port.empty() || ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535)
    return make_error(errc::invalid_argument, "port must be 1-65535, got '" + std::string(port) + "'");
  hp.port = static_cast<std::uint16_t>(v);
  return hp;
}

}  // namespace shardd
