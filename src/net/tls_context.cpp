#include "net/tls_context.hpp"

#include <openssl/ssl.h>

#include <stdexcept>

namespace shardd::net {

namespace ssl = boost::asio::ssl;

namespace {

constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

void harden(ssl::context& ctx) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  if (SSL_CTX_set_cipher_list(ctx.native_handle(), tls12_ciphers) != 1)
    throw std::runtime_error("tls: cannot set the cipher list");
  SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
}

void load_identity(ssl::context& ctx, const tls_config& tls) {
  boost::system::error_code ec;
  ctx.use_certificate_chain_file(tls.cert, ec);
  if (ec) throw std::runtime_error("tls.cert: cannot load " + tls.cert + ": " + ec.message());
  ctx.use_private_key_file(tls.key, ssl::context::pem, ec);
  if (ec) throw std::runtime_error("tls.key: cannot load " + tls.key + ": " + ec.message());
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    throw std::runtime_error("tls.key: does not match the certificate " + tls.cert);
}

void load_ca(ssl::context& ctx, const std::string& ca) {
  boost::system::error_code ec;
  ctx.load_verify_file(ca, ec);
  if (ec) throw std::runtime_error("tls.ca: cannot load " + ca + ": " + ec.message());
}

}  // namespace

ssl::context make_rest_server_context(const tls_config& tls) {
  ssl::context ctx(ssl::context::tls_server);
  harden(ctx);
  load_identity(ctx, tls);
  return ctx;
}

ssl::context make_client_context(const std::string& ca_file) {
  ssl::context ctx(ssl::context::tls_client);
  harden(ctx);
  load_ca(ctx, ca_file);
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

ssl::context make_peer_context(const tls_config& tls, bool server) {
  ssl::context ctx(server ? ssl::context::tls_server : ssl::context::tls_client);
  harden(ctx);
  load_identity(ctx, tls);
  load_ca(ctx, tls.ca);
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  return ctx;
}

}  // namespace shardd::net
