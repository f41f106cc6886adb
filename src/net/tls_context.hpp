#pragma once
// TLS contexts for the REST listener and the peer protocol. Includes Asio-SSL: only for the
// few src/net files that open TLS streams.

#include "common/config.hpp"

#include <boost/asio/ssl/context.hpp>

namespace shardd::net {

/// REST server: TLS 1.2 minimum, ECDHE with AES-GCM or ChaCha20-Poly1305 only (TLS 1.3
/// suites are all modern), no client certificate. Throws std::runtime_error naming the file
/// on a bad certificate or key.
boost::asio::ssl::context make_rest_server_context(const tls_config& tls);

/// Client context that verifies servers against `ca_file`.
boost::asio::ssl::context make_client_context(const std::string& ca_file);

/// Peer protocol, both directions: mutual TLS. Presents this node's certificate and requires
/// the other side's, signed by the cluster CA.
boost::asio::ssl::context make_peer_context(const tls_config& tls, bool server);

}  // namespace shardd::net
