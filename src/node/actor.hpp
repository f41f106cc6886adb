#pragma once
// The actor building block (DESIGN §4): a strand, a bounded mailbox, a run() loop, ask/reply.

#include "common/log.hpp"
#include "shardd/error.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>
#include <string>
#include <type_traits>

namespace shardd {

namespace asio = boost::asio;

/// The reply half of an ask: a one-shot channel back to the asker. If the actor drops the
/// message without answering (it stopped), the asker gets an `unavailable` error instead of
/// waiting forever. `T` must be constructible from `shardd::error` (a `result<...>`).
template <class T>
class reply_to {
 public:
  using channel = asio::experimental::concurrent_channel<void(boost::system::error_code, T)>;

  explicit reply_to(std::shared_ptr<channel> ch) : ch_(std::move(ch)) {}
  reply_to(reply_to&&) noexcept = default;
  reply_to& operator=(reply_to&&) noexcept = default;
  reply_to(const reply_to&) = delete;
  reply_to& operator=(const reply_to&) = delete;
  ~reply_to() {
    if (ch_) (void)ch_->try_send(boost::system::error_code{}, T(make_error(errc::unavailable, "the actor stopped before answering")));
  }

  void send(T value) {
    if (!ch_) return;
    (void)ch_->try_send(boost::system::error_code{}, std::move(value));
    ch_.reset();
  }

 private:
  std::shared_ptr<channel> ch_;
};

/// Base of every actor. Its state is touched only on `strand_`; other threads talk to it
/// through the mailbox (`tell`, `ask`). Messages are handled one at a time in arrival order;
/// a handler may co_await, and no other message runs meanwhile.
///
/// The mailbox is a concurrent_channel (thread-safe), bounded: a full mailbox makes `tell`
/// wait, which pushes back on senders instead of growing without limit.
template <class Message>
class actor {
 public:
  using mailbox_type = asio::experimental::concurrent_channel<void(boost::system::error_code, Message)>;

  actor(asio::any_io_executor ex, std::size_t capacity, std::string name)
      : strand_(asio::make_strand(ex)), mailbox_(strand_, capacity), name_(std::move(name)) {}
  virtual ~actor() = default;
  actor(const actor&) = delete;
  actor& operator=(const actor&) = delete;

  /// Starts the run() loop on the strand. `keep_alive` (the actor's own shared_ptr, for an
  /// actor its owner may drop while a message is in hand) is held until the loop ends.
  void start(std::shared_ptr<void> keep_alive = {}) {
    asio::co_spawn(strand_, run(), [name = name_, keep = std::move(keep_alive)](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        SHARDD_LOG(critical, "actor_failed", "actor", name, "error", ex.what());
      }
    });
  }

  /// Closes the mailbox; the loop ends after the message in hand.
  void stop() { mailbox_.close(); }

  /// Sends a message, waiting while the mailbox is full.
  asio::awaitable<void> tell(Message m) {
    auto [ec] = co_await mailbox_.async_send(boost::system::error_code{}, std::move(m), asio::as_tuple(asio::use_awaitable));
    (void)ec;  // a closed mailbox drops the message; a reply_to inside answers `unavailable`
  }

  /// Sends a message built by `make(reply_to<T>)` and waits for the answer.
  template <class T, class Make>
  asio::awaitable<T> ask(Make make) {
    auto ex = co_await asio::this_coro::executor;
    auto ch = std::make_shared<typename reply_to<T>::channel>(ex, 1);
    Message m = make(reply_to<T>(ch));
    co_await tell(std::move(m));
    auto [ec, value] = co_await ch->async_receive(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return T(make_error(errc::unavailable, "no answer from " + name_));
    co_return std::move(value);
  }

  const std::string& name() const noexcept { return name_; }

 protected:
  /// Handles one message, on the strand.
  virtual asio::awaitable<void> handle(Message m) = 0;

  asio::strand<asio::any_io_executor> strand_;

 private:
  asio::awaitable<void> run() {
    for (;;) {
      auto [ec, m] = co_await mailbox_.async_receive(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;  // closed
      co_await handle(std::move(m));
    }
  }

  mailbox_type mailbox_;
  std::string name_;
};

/// Runs `f()` on `strand` and gives back its result: how a coroutine elsewhere reads or changes
/// state that lives on an actor's strand without a lock.
template <class Strand, class F>
asio::awaitable<std::invoke_result_t<F&>> run_on(Strand strand, F f) {
  using R = std::invoke_result_t<F&>;
  auto call = [f = std::move(f)]() mutable -> asio::awaitable<R> { co_return f(); };  // named: see the GCC 12 note in controller_api.cpp
  co_return co_await asio::co_spawn(strand, std::move(call), asio::use_awaitable);
}

}  // namespace shardd
