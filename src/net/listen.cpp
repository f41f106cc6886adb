#include "net/listen.hpp"

#include <stdexcept>

namespace shardd::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

void open_acceptor(tcp::acceptor& a, const host_port& listen, std::string_view setting) {
  const std::string field(setting);
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(listen.host, ec);
  if (ec) {
    tcp::resolver resolver(a.get_executor());
    auto results = resolver.resolve(listen.host, std::to_string(listen.port), ec);
    if (ec || results.empty()) throw std::runtime_error(field + ": cannot resolve " + listen.to_string());
    addr = results.begin()->endpoint().address();
  }
  tcp::endpoint ep(addr, listen.port);
  if (a.open(ep.protocol(), ec); ec) throw std::runtime_error(field + ": " + ec.message());
  (void)a.set_option(asio::socket_base::reuse_address(true), ec);
  if (a.bind(ep, ec); ec) throw std::runtime_error(field + ": cannot bind " + listen.to_string() + ": " + ec.message());
  if (a.listen(asio::socket_base::max_listen_connections, ec); ec)
    throw std::runtime_error(field + ": cannot listen on " + listen.to_string() + ": " + ec.message());
}

}  // namespace shardd::net
