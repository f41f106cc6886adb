#pragma once
// One peer frame sent to a node with a chosen certificate and identity, for tests that speak
// the peer protocol as a member (or an impostor) would.

#include "net/peer_transport.hpp"
#include "shardd/peer_messages.hpp"
#include "support/process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <chrono>
#include <string>

namespace shardd::test {

/// Sends `f` to the peer port `port` as `who` (with `tls`) and returns the answer frame, or
/// the error if there was none (refused at hello, no connection, timeout).
inline result<peer::frame> call_peer(const tls_config& tls, const net::peer_identity& who, std::uint16_t port, peer::frame f,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  boost::asio::io_context ioc;
  net::peer_client client(ioc, tls, who);
  auto fut = boost::asio::co_spawn(ioc, client.call("", "127.0.0.1:" + std::to_string(port), std::move(f), timeout),
                                   boost::asio::use_future);
  // Run only until the call completes: an open connection keeps its reader waiting forever.
  while (fut.wait_for(std::chrono::seconds(0)) != std::future_status::ready) ioc.run_one_for(std::chrono::milliseconds(50));
  return fut.get();
}

/// The same as node `node` of the test cluster (its own certificate).
inline result<peer::frame> call_peer_as(const std::string& node, std::uint16_t port, peer::frame f) {
  tls_config tls{test_certs().cert(node), test_certs().key(node), test_certs().ca()};
  return call_peer(tls, net::peer_identity{"shardd", node}, port, std::move(f));
}

/// The error code of an `error` answer; `ok` for any other frame.
inline errc refusal(const result<peer::frame>& r) {
  if (!r) return r.error().code;
  if (r->header.type != peer::frame_type::error) return errc::ok;
  auto e = peer::decode_error(r->payload);
  return e ? e->code : errc::internal;
}

}  // namespace shardd::test
