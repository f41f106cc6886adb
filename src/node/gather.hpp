#pragma once
// Runs awaitables concurrently on the caller's executor and collects their results in order.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/log.hpp"
#include "shardd/error.hpp"

#include <memory>
#include <string>
#include <vector>

namespace shardd {

/// Awaits every task, all running at once; results come back in the order of `tasks`.
/// T must be default-constructible and constructible from a `shardd::error` (a `result<...>`).
template <class T>
boost::asio::awaitable<std::vector<T>> gather(std::vector<boost::asio::awaitable<T>> tasks) {
  namespace asio = boost::asio;
  auto ex = co_await asio::this_coro::executor;
  std::vector<T> results(tasks.size());
  using done_channel = asio::experimental::concurrent_channel<void(boost::system::error_code, std::size_t)>;
  auto done = std::make_shared<done_channel>(ex, tasks.size() + 1);
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    // `results` lives in this frame, which waits for every task below.
    auto run = [&results, i, done, t = std::move(tasks[i])]() mutable -> asio::awaitable<void> {
      // A task that throws still completes, with an `internal` error as its result: the
      // gather must never wait forever for it.
      try {
        results[i] = co_await std::move(t);
      } catch (const std::exception& e) {
        SHARDD_LOG(err, "task_failed", "error", e.what());
        results[i] = T(make_error(errc::internal, std::string("internal error: ") + e.what()));
      }
      (void)done->try_send(boost::system::error_code{}, i);
    };
    asio::co_spawn(ex, std::move(run), asio::detached);
  }
  for (std::size_t i = 0; i < tasks.size(); ++i) co_await done->async_receive(asio::as_tuple(asio::use_awaitable));
  co_return results;
}

}  // namespace shardd
