#pragma once
// Opening a listening socket from a HOST:PORT setting, shared by the REST and peer listeners.

#include "common/config.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <string_view>

namespace shardd::net {

/// Resolves `listen` (an address, or a host name resolved once), then opens, binds and
/// listens on `acceptor` with SO_REUSEADDR. Throws std::runtime_error whose message starts
/// with `setting` (e.g. "rest.listen") and names the address.
void open_acceptor(boost::asio::ip::tcp::acceptor& acceptor, const host_port& listen, std::string_view setting);

}  // namespace shardd::net
