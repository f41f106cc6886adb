#include "net/peer_transport.hpp"

#include "net/listen.hpp"
#include "net/tls_context.hpp"
#include "common/log.hpp"
#include "shardd/peer_messages.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <deque>
#include <mutex>
#include <unordered_map>

namespace shardd::net {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using asio::awaitable;
using asio::use_awaitable;
using strand_type = asio::strand<asio::io_context::executor_type>;
using tls_stream = ssl::stream<tcp::socket>;
constexpr auto tuple_awaitable = asio::as_tuple(use_awaitable);

namespace {

constexpr auto handshake_timeout = std::chrono::seconds(5);
/// A client connection idle this long is reconnected before its next use: half the server's
/// default idle timeout (peer_server_options), so the server never closes one in use.
constexpr auto client_idle_limit = std::chrono::minutes(5);

/// Common name of the certificate the other side presented, or "".
std::string peer_common_name(tls_stream& s) {
  X509* cert = SSL_get1_peer_certificate(s.native_handle());
  if (!cert) return {};
  char buf[256];
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  X509_free(cert);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

/// Data batches from this size on are checked by the migration pool, not the network thread.
constexpr std::size_t deferred_checksum_bytes = 1u << 20;

/// Reads frames from a stream in large chunks: one TLS read usually brings many frames.
class frame_reader {
 public:
  explicit frame_reader(std::size_t max_frame) : decoder_(max_frame), chunk_(64 * 1024) {}

  awaitable<result<peer::frame>> next(tls_stream& s) {
    for (;;) {
      if (auto big = decoder_.take_partial(chunk_.size())) co_return co_await read_body(s, std::move(*big));
      auto f = decoder_.next();
      if (!f) co_return f.error();
      if (*f) co_return std::move(**f);
      auto [ec, n] = co_await s.async_read_some(asio::buffer(chunk_), tuple_awaitable);
      if (ec) co_return make_error(errc::unavailable, ec.message());
      decoder_.feed(std::string_view(chunk_.data(), n));
    }
  }

 private:
  /// A frame larger than a read chunk (a migration batch) is read straight into its payload:
  /// no copy through the decoder's buffer. Its memory is reserved as the bytes come (8 MiB at
  /// first, then at most doubling), so a header that announces a large frame reserves little
  /// before its bytes arrive; the string is lengthened a step at a time, so the zeros it
  /// writes are still in cache when the bytes read overwrite them. A data batch of a megabyte
  /// or more keeps its checksum for the receiver to check on the migration pool.
  awaitable<result<peer::frame>> read_body(tls_stream& s, peer::frame_decoder::partial p) {
    constexpr std::size_t step = 256u << 10;
    const std::size_t want = p.header.length - peer::header_bytes;
    std::size_t have = p.body.size();
    while (have < want) {
      if (p.body.size() == have) {
        if (p.body.capacity() == have) p.body.reserve(std::min(want, std::max<std::size_t>(have * 2, 8u << 20)));
        p.body.resize(std::min({want, have + step, p.body.capacity()}));
      }
      auto [ec, n] = co_await s.async_read_some(asio::buffer(p.body.data() + have, p.body.size() - have), tuple_awaitable);
      if (ec) co_return make_error(errc::unavailable, ec.message());
      have += n;
    }
    const bool defer = p.header.type == peer::frame_type::data_batch && want >= deferred_checksum_bytes;
    co_return peer::finish_frame(p.header, std::move(p.body), defer);
  }

  peer::frame_decoder decoder_;
  std::vector<char> chunk_;
};

/// Takes queued frames and joins them into one buffer (up to about 1 MiB), so one TLS write
/// carries many frames.
template <class Queue, class Take>
std::string coalesce(Queue& q, Take take) {
  std::string out;
  while (!q.empty() && (out.empty() || out.size() + take(q.front()).size() <= (1u << 20))) {
    if (out.empty())
      out = std::move(take(q.front()));
    else
      out.append(take(q.front()));
    q.pop_front();
  }
  return out;
}

/// Closes the socket under `s` when the timer fires: the way to put a deadline on a chain
/// of operations.
void arm_deadline(asio::steady_timer& t, tls_stream& s, std::chrono::steady_clock::time_point at) {
  t.expires_at(at);
  t.async_wait([&s](boost::system::error_code ec) {
    if (ec) return;  // cancelled: the guarded work finished
    boost::system::error_code ignore;
    (void)s.lowest_layer().close(ignore);
  });
}

peer::frame error_frame(errc code, std::string detail) {
  peer::frame f;
  f.header.type = peer::frame_type::error;
  f.payload = peer::encode(peer::error_reply{code, std::move(detail)});
  return f;
}

/// A connection's outgoing frames, written one after another by one coroutine. Used only on
/// the connection's strand.
struct write_queue {
  std::deque<std::string> frames;
  bool writing = false;
};

}  // namespace

// --- server ---------------------------------------------------------------------------------

struct peer_server::impl : std::enable_shared_from_this<impl> {
  impl(asio::io_context& c, const tls_config& tls, peer_identity s, peer_handler h, peer_server_options o)
      : ioc(c), ctx(make_peer_context(tls, true)), acceptor(asio::make_strand(c)), self(std::move(s)),
        handler(std::move(h)), max_frame(o.max_frame_bytes), opts(o) {}

  struct connection {
    connection(strand_type st, tcp::socket sock, ssl::context& ctx)
        : strand(st), stream(std::move(sock), ctx), slot_free(st), write_deadline(st) {}
    strand_type strand;
    tls_stream stream;
    write_queue out;
    std::string node;
    std::size_t in_flight = 0;        ///< requests being handled
    asio::steady_timer slot_free;     ///< cancelled when a request ends: the reader may go on
    asio::steady_timer write_deadline;
  };

  asio::io_context& ioc;
  ssl::context ctx;
  tcp::acceptor acceptor;
  peer_identity self;
  peer_handler handler;
  std::size_t max_frame;
  peer_server_options opts;
  std::atomic<bool> stopping{false};
  std::mutex mutex;  // guards conns only
  std::unordered_map<connection*, std::weak_ptr<connection>> conns;
  std::size_t next_context = 0;  // touched only by the accept loop

  asio::io_context& connection_context() {
    if (opts.session_contexts.empty()) return ioc;
    return *opts.session_contexts[next_context++ % opts.session_contexts.size()];
  }

  awaitable<void> accept_loop();
  awaitable<void> serve(std::shared_ptr<connection> c);
  awaitable<void> handle(std::shared_ptr<connection> c, peer::frame request);
  void send(const std::shared_ptr<connection>& c, std::string bytes);
  awaitable<void> write_loop(std::shared_ptr<connection> c);
};

peer_server::peer_server(asio::io_context& ioc, const tls_config& tls, peer_identity self, peer_handler handler,
                         peer_server_options opts)
    : impl_(std::make_shared<impl>(ioc, tls, std::move(self), std::move(handler), opts)) {}

peer_server::~peer_server() { stop(); }

void peer_server::start(const host_port& listen) {
  auto& a = impl_->acceptor;
  open_acceptor(a, listen, "peer.listen");
  asio::co_spawn(a.get_executor(), impl_->accept_loop(), asio::detached);
}

void peer_server::stop() {
  auto self = impl_;
  if (self->stopping.exchange(true)) return;
  asio::post(self->acceptor.get_executor(), [self] {
    boost::system::error_code ec;
    (void)self->acceptor.close(ec);
  });
  std::vector<std::shared_ptr<impl::connection>> live;
  {
    std::lock_guard lock(self->mutex);
    for (auto& [p, w] : self->conns)
      if (auto c = w.lock()) live.push_back(std::move(c));
  }
  for (auto& c : live)
    asio::post(c->strand, [c] {
      boost::system::error_code ec;
      (void)c->stream.lowest_layer().close(ec);
    });
}

std::size_t peer_server::open_connections() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->conns.size();
}

awaitable<void> peer_server::impl::accept_loop() {
  auto keep = shared_from_this();
  while (!stopping) {
    auto [ec, sock] = co_await acceptor.async_accept(tuple_awaitable);
    if (ec) {
      if (stopping || ec == asio::error::operation_aborted) break;
      asio::steady_timer t(acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await t.async_wait(tuple_awaitable);
      continue;
    }
    boost::system::error_code opt;
    (void)sock.set_option(tcp::no_delay(true), opt);
    (void)sock.set_option(asio::socket_base::keep_alive(true), opt);
    auto c = std::make_shared<connection>(asio::make_strand(connection_context()), std::move(sock), ctx);
    {
      std::lock_guard lock(mutex);
      conns.emplace(c.get(), c);
    }
    auto done = [keep, key = c.get()](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          SHARDD_LOG(err, "peer_session_failed", "error", ex.what());
        }
      }
      std::lock_guard lock(keep->mutex);
      keep->conns.erase(key);
    };
    asio::co_spawn(c->strand, serve(c), std::move(done));
  }
}

void peer_server::impl::send(const std::shared_ptr<connection>& c, std::string bytes) {
  c->out.frames.push_back(std::move(bytes));
  if (!c->out.writing) {
    c->out.writing = true;
    asio::co_spawn(c->strand, write_loop(c), asio::detached);
  }
}

awaitable<void> peer_server::impl::write_loop(std::shared_ptr<connection> c) {
  while (!c->out.frames.empty()) {
    auto batch = coalesce(c->out.frames, [](std::string& f) -> std::string& { return f; });
    // A peer that stops reading must not keep replies piling up here: the write has a deadline.
    arm_deadline(c->write_deadline, c->stream, std::chrono::steady_clock::now() + opts.write_timeout);
    auto [ec, n] = co_await asio::async_write(c->stream, asio::buffer(batch), tuple_awaitable);
    c->write_deadline.cancel();
    if (ec) {
      boost::system::error_code ignore;
      (void)c->stream.lowest_layer().close(ignore);
      c->out.frames.clear();
      break;
    }
  }
  c->out.writing = false;
}

awaitable<void> peer_server::impl::serve(std::shared_ptr<connection> c) {
  std::string remote;
  {
    boost::system::error_code ec;
    auto ep = c->stream.lowest_layer().remote_endpoint(ec);
    if (!ec) remote = ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  asio::steady_timer deadline(c->strand);
  arm_deadline(deadline, c->stream, std::chrono::steady_clock::now() + handshake_timeout);
  if (auto [ec] = co_await c->stream.async_handshake(ssl::stream_base::server, tuple_awaitable); ec) {
    SHARDD_LOG(warn, "peer_refused", "remote", remote, "reason", "TLS handshake failed: " + ec.message());
    co_return;
  }
  frame_reader reader(max_frame);
  auto first = co_await reader.next(c->stream);
  deadline.cancel();
  std::string refusal;
  peer::hello hi;
  if (!first) {
    refusal = "no hello: " + first.error().detail;
  } else if (first->header.type != peer::frame_type::hello) {
    refusal = "first frame is " + std::string(peer::to_string(first->header.type)) + ", not hello";
  } else if (auto h = peer::decode_hello(first->payload); !h) {
    refusal = h.error().detail;
  } else {
    hi = std::move(*h);
    const std::string cn = peer_common_name(c->stream);
    if (hi.protocol != peer::protocol_version)
      refusal = "protocol version " + std::to_string(hi.protocol) + " is not " + std::to_string(peer::protocol_version);
    else if (hi.cluster_id != self.cluster_id)
      refusal = "node of cluster '" + hi.cluster_id + "', this is cluster '" + self.cluster_id + "'";
    else if (hi.node_id != cn)
      refusal = "node id '" + hi.node_id + "' does not match its certificate's common name '" + cn + "'";
  }
  if (!refusal.empty()) {
    SHARDD_LOG(warn, "peer_refused", "remote", remote, "reason", refusal);
    auto err = error_frame(errc::invalid_argument, "refused: " + refusal);
    auto bytes = peer::encode(err);
    co_await asio::async_write(c->stream, asio::buffer(bytes), tuple_awaitable);
    co_return;
  }
  c->node = hi.node_id;
  peer::frame ok;
  ok.header.type = peer::frame_type::hello_ok;
  ok.header.request_id = first->header.request_id;
  ok.payload = peer::encode(peer::hello{peer::protocol_version, self.cluster_id, self.node_id});
  send(c, peer::encode(ok));
  SHARDD_LOG(debug, "peer_connected", "peer", hi.node_id, "remote", remote);

  for (;;) {
    // At most max_in_flight requests at once: beyond, the next frame is not read (TCP pushes
    // back on the sender) until one ends.
    while (c->in_flight >= opts.max_in_flight) {
      c->slot_free.expires_at(std::chrono::steady_clock::time_point::max());
      co_await c->slot_free.async_wait(tuple_awaitable);
    }
    // A connection with nothing in flight and no frame for idle_timeout is closed.
    if (c->in_flight == 0) arm_deadline(deadline, c->stream, std::chrono::steady_clock::now() + opts.idle_timeout);
    auto f = co_await reader.next(c->stream);
    deadline.cancel();
    if (!f) {
      if (f.error().code != errc::unavailable)
        SHARDD_LOG(warn, "peer_protocol_error", "peer", c->node, "error", f.error().detail);
      break;
    }
    // Requests run on any network thread, concurrently; only the connection's writes are
    // serialised on its strand.
    ++c->in_flight;
    asio::co_spawn(ioc, handle(c, std::move(*f)), asio::detached);
  }
  boost::system::error_code ignore;
  (void)c->stream.lowest_layer().close(ignore);
}

awaitable<void> peer_server::impl::handle(std::shared_ptr<connection> c, peer::frame request) {
  const auto id = request.header.request_id;
  peer::frame reply;
  try {
    reply = co_await handler(std::move(request), c->node);
  } catch (const std::exception& e) {
    SHARDD_LOG(err, "peer_handler_failed", "peer", c->node, "error", e.what());
    reply = error_frame(errc::internal, e.what());
  }
  reply.header.request_id = id;
  asio::post(c->strand, [self = shared_from_this(), c, bytes = peer::encode(reply)]() mutable {
    --c->in_flight;
    c->slot_free.cancel();
    self->send(c, std::move(bytes));
  });
}

// --- client ---------------------------------------------------------------------------------

namespace {

using reply_channel = asio::experimental::channel<void(boost::system::error_code, result<peer::frame>)>;

}  // namespace

struct peer_client::impl : std::enable_shared_from_this<impl> {
  impl(asio::io_context& c, const tls_config& tls, peer_identity s, std::size_t max, std::vector<asio::io_context*> where)
      : ioc(c), ctx(make_peer_context(tls, false)), self(std::move(s)), max_frame(max), contexts(std::move(where)) {
    if (contexts.empty()) contexts.push_back(&ioc);
  }

  /// One connection to one peer address. All members are used on `strand` only.
  struct connection : std::enable_shared_from_this<connection> {
    connection(impl& o, asio::io_context& where, std::string addr, std::string expected)
        : owner(o), strand(asio::make_strand(where)), address(std::move(addr)), expected_node(std::move(expected)),
          connect_done(strand) {
      connect_done.expires_at(std::chrono::steady_clock::time_point::max());
    }
    impl& owner;
    strand_type strand;
    std::string address;
    std::string expected_node;
    std::string peer_cn;  ///< the certificate CN of the peer of the current connection
    // Shared: a reader or writer of an old connection keeps its stream alive until it ends.
    std::shared_ptr<tls_stream> stream;
    std::shared_ptr<frame_reader> reader;  // bytes already read belong to this connection
    enum class state { idle, connecting, ready } st = state::idle;
    asio::steady_timer connect_done;  // cancelled to wake requests waiting for a connect
    std::string last_error;
    std::unordered_map<std::uint64_t, std::shared_ptr<reply_channel>> pending;
    // Frames to write, tagged with the generation of the connection they were meant for; the
    // writer drops frames of a connection that has gone.
    std::deque<std::pair<std::uint64_t, std::string>> outgoing;
    bool writing = false;
    std::uint64_t next_id = 1;
    std::uint64_t generation = 0;
    std::chrono::steady_clock::time_point last_used{};

    awaitable<result<peer::frame>> call(peer::frame request, std::chrono::steady_clock::time_point deadline);
    awaitable<result<void>> connect(std::chrono::steady_clock::time_point deadline);
    awaitable<void> read_loop(std::uint64_t gen, std::shared_ptr<tls_stream> s, std::shared_ptr<frame_reader> r);
    awaitable<void> write_loop();
    void fail_all(const std::string& why);
  };

  asio::io_context& ioc;
  ssl::context ctx;
  peer_identity self;
  std::size_t max_frame;
  // Each peer gets a connection per network thread (at least two): one TLS stream is used by
  // one thread at a time, so several let a busy peer's traffic spread over the threads. A
  // request made on a network thread's context takes that thread's connection, so a forwarded
  // request never changes threads; any other caller takes them in turn.
  std::vector<asio::io_context*> contexts;
  std::mutex mutex;  // guards conns and turn only
  std::unordered_map<std::string, std::shared_ptr<connection>> conns;  // by expected node, address, slot
  unsigned turn = 0;

  std::shared_ptr<connection> get(const std::string& node, const std::string& address, peer_lane lane,
                                  const asio::execution_context* caller) {
    const auto n = static_cast<unsigned>(contexts.size());
    const unsigned slots = std::max(2u, n);
    std::lock_guard lock(mutex);
    unsigned slot = slots;  // bulk: its own connection
    if (lane != peer_lane::bulk) {
      auto here = std::find(contexts.begin(), contexts.end(), caller);
      slot = here != contexts.end() ? static_cast<unsigned>(here - contexts.begin()) : turn++ % slots;
    }
    auto& c = conns[node + "@" + address + "#" + std::to_string(slot)];
    if (!c) c = std::make_shared<connection>(*this, *contexts[slot % n], address, node);
    return c;
  }
};

peer_client::peer_client(asio::io_context& ioc, const tls_config& tls, peer_identity self, std::size_t max_frame_bytes,
                         std::vector<asio::io_context*> contexts)
    : impl_(std::make_shared<impl>(ioc, tls, std::move(self), max_frame_bytes, std::move(contexts))) {}

peer_client::~peer_client() { close_all(); }

void peer_client::close_all() {
  std::vector<std::shared_ptr<impl::connection>> all;
  {
    std::lock_guard lock(impl_->mutex);
    for (auto& [k, c] : impl_->conns) all.push_back(c);
  }
  for (auto& c : all) asio::post(c->strand, [c] { c->fail_all("client closed"); });
}

awaitable<result<peer::frame>> peer_client::call(std::string expected_node, std::string address, peer::frame request,
                                                 std::chrono::milliseconds timeout, peer_lane lane) {
  const auto caller = co_await asio::this_coro::executor;
  auto c = impl_->get(expected_node, address, lane, &asio::query(caller, asio::execution::context_as<asio::execution_context&>));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Run on the connection's strand; the caller resumes on its own executor.
  auto work = c->call(std::move(request), deadline);
  co_return co_await asio::co_spawn(c->strand, std::move(work), use_awaitable);
}

void peer_client::impl::connection::fail_all(const std::string& why) {
  ++generation;
  st = state::idle;
  last_error = why;
  if (stream) {
    boost::system::error_code ignore;
    (void)stream->lowest_layer().close(ignore);
  }
  auto waiting = std::move(pending);
  pending.clear();
  for (auto& [id, ch] : waiting)
    (void)ch->try_send(boost::system::error_code{},
                       result<peer::frame>(make_error(errc::unavailable, "connection to " + address + " lost: " + why)));
}

awaitable<result<void>> peer_client::impl::connection::connect(std::chrono::steady_clock::time_point deadline) {
  auto self_ref = shared_from_this();
  // The old stream may still be referenced by a finishing reader; it is closed already.
  stream = std::make_shared<tls_stream>(strand, owner.ctx);
  auto hp = parse_host_port(address);
  if (!hp) co_return make_error(errc::invalid_argument, "bad peer address " + address + ": " + hp.error().detail);
  const std::string host = hp->host, port = std::to_string(hp->port);

  asio::steady_timer guard(strand);
  arm_deadline(guard, *stream, deadline);
  tcp::resolver resolver(strand);
  auto [rec, endpoints] = co_await resolver.async_resolve(host, port, tuple_awaitable);
  if (rec) co_return make_error(errc::unavailable, "cannot resolve " + address + ": " + rec.message());
  auto [cec, ep] = co_await asio::async_connect(stream->lowest_layer(), endpoints, tuple_awaitable);
  if (cec) co_return make_error(errc::unavailable, "cannot connect to " + address + ": " + cec.message());
  boost::system::error_code opt;
  (void)stream->lowest_layer().set_option(tcp::no_delay(true), opt);
  (void)stream->lowest_layer().set_option(asio::socket_base::keep_alive(true), opt);
  if (auto [hec] = co_await stream->async_handshake(ssl::stream_base::client, tuple_awaitable); hec)
    co_return make_error(errc::unavailable, "TLS handshake with " + address + " failed: " + hec.message());
  const std::string cn = peer_common_name(*stream);
  if (!expected_node.empty() && cn != expected_node)
    co_return make_error(errc::unavailable, "peer at " + address + " is '" + cn + "', expected '" + expected_node + "'");
  peer_cn = cn;

  peer::frame hi;
  hi.header.type = peer::frame_type::hello;
  hi.payload = peer::encode(peer::hello{peer::protocol_version, owner.self.cluster_id, owner.self.node_id});
  auto bytes = peer::encode(hi);
  if (auto [wec, wn] = co_await asio::async_write(*stream, asio::buffer(bytes), tuple_awaitable); wec)
    co_return make_error(errc::unavailable, "hello to " + address + " failed: " + wec.message());
  reader = std::make_shared<frame_reader>(owner.max_frame);
  auto reply = co_await reader->next(*stream);
  guard.cancel();
  if (!reply) co_return make_error(errc::unavailable, "no hello reply from " + address + ": " + reply.error().detail);
  if (reply->header.type == peer::frame_type::error) {
    auto e = peer::decode_error(reply->payload);
    co_return make_error(errc::unavailable, "peer at " + address + " refused us: " + (e ? e->detail : "?"));
  }
  if (reply->header.type != peer::frame_type::hello_ok)
    co_return make_error(errc::unavailable, "peer at " + address + " answered hello with " +
                                                std::string(peer::to_string(reply->header.type)));
  co_return result<void>{};
}

awaitable<result<peer::frame>> peer_client::impl::connection::call(peer::frame request,
                                                                    std::chrono::steady_clock::time_point deadline) {
  auto self_ref = shared_from_this();
  while (st == state::connecting) {
    // Another request is connecting: wait for it (the timer is cancelled when it ends).
    asio::steady_timer limit(strand);
    limit.expires_at(deadline);
    limit.async_wait([this](boost::system::error_code ec) {
      if (!ec) connect_done.cancel();  // deadline: stop waiting
    });
    co_await connect_done.async_wait(tuple_awaitable);
    limit.cancel();
    if (std::chrono::steady_clock::now() >= deadline)
      co_return make_error(errc::unavailable, "timed out waiting for a connection to " + address);
  }
  // A connection unused for half the server's idle timeout is replaced before use rather than
  // risk the server closing it under this request.
  if (st == state::ready && pending.empty() && std::chrono::steady_clock::now() - last_used > client_idle_limit)
    fail_all("idle");
  last_used = std::chrono::steady_clock::now();
  if (st == state::idle) {
    st = state::connecting;
    auto r = co_await connect(deadline);
    connect_done.cancel();
    connect_done.expires_at(std::chrono::steady_clock::time_point::max());
    if (!r) {
      st = state::idle;
      last_error = r.error().detail;
      if (stream) {
        boost::system::error_code ignore;
        (void)stream->lowest_layer().close(ignore);
      }
      co_return r.error();
    }
    st = state::ready;
    ++generation;
    asio::co_spawn(strand, read_loop(generation, stream, reader), asio::detached);
  }

  const auto id = next_id++;
  request.header.request_id = id;
  auto ch = std::make_shared<reply_channel>(strand, 1);
  pending.emplace(id, ch);
  outgoing.emplace_back(generation, peer::encode(std::move(request)));
  if (!writing) {
    writing = true;
    asio::co_spawn(strand, write_loop(), asio::detached);
  }
  asio::steady_timer timer(strand);
  timer.expires_at(deadline);
  timer.async_wait([ch, id, this, self_ref](boost::system::error_code ec) {
    if (ec) return;
    if (pending.erase(id))
      (void)ch->try_send(boost::system::error_code{},
                         result<peer::frame>(make_error(errc::unavailable, "no reply from " + address + " in time")));
  });
  auto [ec, reply] = co_await ch->async_receive(tuple_awaitable);
  timer.cancel();
  pending.erase(id);
  if (ec) co_return make_error(errc::unavailable, "request to " + address + " abandoned");
  co_return std::move(reply);
}

awaitable<void> peer_client::impl::connection::read_loop(std::uint64_t gen, std::shared_ptr<tls_stream> s,
                                                          std::shared_ptr<frame_reader> r) {
  auto self_ref = shared_from_this();
  while (gen == generation) {
    auto f = co_await r->next(*s);
    if (gen != generation) break;
    if (!f) {
      fail_all(f.error().detail);
      break;
    }
    auto it = pending.find(f->header.request_id);
    if (it == pending.end()) continue;  // its caller gave up already
    auto ch = it->second;
    pending.erase(it);
    if (!peer::payload_intact(*f)) {
      // The header was whole, so the stream is still in step: only this request fails, as a
      // request with a damaged body fails at the server. Its caller retries as after any
      // checksum mismatch.
      SHARDD_LOG(warn, "peer_checksum_mismatch", "peer", peer_cn, "frame", peer::to_string(f->header.type), "side", "reply");
      (void)ch->try_send(boost::system::error_code{},
                         result<peer::frame>(make_error(errc::corrupt, "checksum mismatch in the " +
                                                                           std::string(peer::to_string(f->header.type)) +
                                                                           " reply from " + address)));
      continue;
    }
    f->sender = peer_cn;
    (void)ch->try_send(boost::system::error_code{}, result<peer::frame>(std::move(*f)));
  }
}

awaitable<void> peer_client::impl::connection::write_loop() {
  auto self_ref = shared_from_this();
  while (!outgoing.empty()) {
    const auto gen = outgoing.front().first;
    if (gen != generation || st != state::ready) {
      outgoing.pop_front();  // meant for a connection that is gone; its caller has been told
      continue;
    }
    // Every queued frame of this connection goes out in one write.
    std::string batch;
    while (!outgoing.empty() && outgoing.front().first == gen &&
           (batch.empty() || batch.size() + outgoing.front().second.size() <= (1u << 20))) {
      if (batch.empty())
        batch = std::move(outgoing.front().second);  // a large frame goes out without a copy
      else
        batch.append(outgoing.front().second);
      outgoing.pop_front();
    }
    auto s = stream;
    auto [ec, n] = co_await asio::async_write(*s, asio::buffer(batch), tuple_awaitable);
    if (ec && gen == generation) fail_all("write failed: " + ec.message());
  }
  writing = false;
}

}  // namespace shardd::net
