#include "net/https_client.hpp"

#include "net/tls_context.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <optional>
#include <stdexcept>

namespace shardd::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

std::string client_response::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (beast::iequals(n, name)) return v;
  return {};
}

struct https_client::impl {
  impl(std::string h, std::uint16_t p, std::string ca, std::string t)
      : host(std::move(h)), port(p), ctx(make_client_context(ca)), token(std::move(t)) {}

  std::string host;
  std::uint16_t port;
  asio::io_context ioc;
  ssl::context ctx;
  std::string token;
  std::chrono::milliseconds timeout{30000};
  std::optional<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;

  // Runs the io_context until the operation started by `start` completes.
  template <class Start>
  boost::system::error_code run(Start start) {
    boost::system::error_code result;
    bool done = false;
    start([&](boost::system::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    ioc.restart();
    while (!done && ioc.run_one() > 0) {
    }
    return result;
  }

  void connect() {
    stream.reset();
    buffer.clear();
    stream.emplace(ioc, ctx);
    tcp::resolver resolver(ioc);
    auto endpoints = resolver.resolve(host, std::to_string(port));
    auto& lowest = beast::get_lowest_layer(*stream);
    lowest.expires_after(timeout);
    if (auto ec = run([&](auto h) { lowest.async_connect(endpoints, [h](auto ec, auto&&) mutable { h(ec); }); }))
      throw std::runtime_error("connect to " + host + ":" + std::to_string(port) + ": " + ec.message());
    stream->set_verify_callback(ssl::host_name_verification(host));
    SSL_set_tlsext_host_name(stream->native_handle(), host.c_str());
    if (auto ec = run([&](auto h) { stream->async_handshake(ssl::stream_base::client, h); }))
      throw std::runtime_error("TLS handshake with " + host + ":" + std::to_string(port) + ": " + ec.message());
  }

  client_response once(std::string_view method, std::string_view target, std::string_view body,
                       const std::vector<std::pair<std::string, std::string>>& headers, bool& retryable) {
    retryable = false;
    const bool fresh = !stream;
    if (fresh) connect();
    http::request<http::string_body> req{http::string_to_verb(method), std::string(target), 11};
    if (req.method() == http::verb::unknown) req.method_string(method);
    req.set(http::field::host, host + ":" + std::to_string(port));
    req.set(http::field::user_agent, "shardd-client");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    for (const auto& [n, v] : headers) req.set(n, v);
    req.body() = std::string(body);
    if (!body.empty() || method == "PUT" || method == "POST") req.prepare_payload();
    req.keep_alive(true);
    auto& lowest = beast::get_lowest_layer(*stream);
    lowest.expires_after(timeout);
    if (auto ec = run([&](auto h) { http::async_write(*stream, req, h); })) {
      stream.reset();
      retryable = !fresh;  // a kept-alive connection the server closed meanwhile
      throw std::runtime_error("write: " + ec.message());
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ull << 32);
    lowest.expires_after(timeout);
    if (auto ec = run([&](auto h) { http::async_read(*stream, buffer, parser, h); })) {
      stream.reset();
      retryable = !fresh && ec == http::error::end_of_stream;
      throw std::runtime_error("read: " + ec.message());
    }
    auto& res = parser.get();
    client_response out;
    out.status = res.result_int();
    out.body = std::move(res.body());
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    if (!res.keep_alive()) stream.reset();
    return out;
  }
};

https_client::https_client(std::string host, std::uint16_t port, std::string ca_file, std::string token)
    : impl_(std::make_unique<impl>(std::move(host), port, std::move(ca_file), std::move(token))) {}

https_client::~https_client() = default;

void https_client::set_token(std::string token) { impl_->token = std::move(token); }
void https_client::set_timeout(std::chrono::milliseconds t) { impl_->timeout = t; }
void https_client::disconnect() { impl_->stream.reset(); }

client_response https_client::request(std::string_view method, std::string_view target, std::string_view body,
                                      const std::vector<std::pair<std::string, std::string>>& headers) {
  bool retryable = false;
  try {
    return impl_->once(method, target, body, headers, retryable);
  } catch (const std::runtime_error&) {
    if (!retryable) throw;
  }
  return impl_->once(method, target, body, headers, retryable);
}

std::string https_client::raw_exchange(std::string_view bytes, std::chrono::milliseconds wait) {
  impl_->connect();
  auto& s = *impl_->stream;
  auto& lowest = beast::get_lowest_layer(s);
  lowest.expires_after(wait);
  if (auto ec = impl_->run([&](auto h) { asio::async_write(s, asio::buffer(bytes.data(), bytes.size()), h); }))
    throw std::runtime_error("raw write: " + ec.message());
  std::string out;
  char chunk[4096];
  for (;;) {
    std::size_t got = 0;
    auto ec = impl_->run([&](auto h) {
      s.async_read_some(asio::buffer(chunk), [h, &got](boost::system::error_code e, std::size_t n) mutable {
        got = n;
        h(e);
      });
    });
    out.append(chunk, got);
    if (ec) break;
  }
  impl_->stream.reset();
  return out;
}

std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

}  // namespace shardd::net
