// The floor for migration throughput: one TLS connection over loopback, with the same
// mutual-TLS contexts and ciphers as the peer protocol, streaming N bytes in 1 MiB writes.
// Prints MiB/s. Not a test.
//   tls_floor CERT KEY CA BYTES

#include "net/tls_context.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s CERT KEY CA BYTES\n", argv[0]);
    return 2;
  }
  const shardd::tls_config tls{argv[1], argv[2], argv[3]};
  const std::uint64_t total = std::strtoull(argv[4], nullptr, 10);
  asio::io_context server_ioc, client_ioc;
  auto server_ctx = shardd::net::make_peer_context(tls, true);
  auto client_ctx = shardd::net::make_peer_context(tls, false);
  tcp::acceptor acceptor(server_ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const auto port = acceptor.local_endpoint().port();
  std::uint64_t received = 0;
  std::thread server([&] {
    asio::ssl::stream<tcp::socket> s(server_ioc, server_ctx);
    acceptor.accept(s.lowest_layer());
    s.handshake(asio::ssl::stream_base::server);
    std::vector<char> buf(1 << 20);
    boost::system::error_code ec;
    while (received < total) {
      const auto n = s.read_some(asio::buffer(buf), ec);
      if (ec) break;
      received += n;
    }
  });
  asio::ssl::stream<tcp::socket> c(client_ioc, client_ctx);
  c.lowest_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  c.handshake(asio::ssl::stream_base::client);
  std::vector<char> chunk(1 << 20, 'x');
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t sent = 0; sent < total;) {
    const auto n = std::min<std::uint64_t>(chunk.size(), total - sent);
    asio::write(c, asio::buffer(chunk.data(), n));
    sent += n;
  }
  server.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("RESULT raw_tls bytes=%llu seconds=%.2f mib_per_s=%.1f\n", static_cast<unsigned long long>(received), secs,
              static_cast<double>(received) / secs / (1 << 20));
  return 0;
}
