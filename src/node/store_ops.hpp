#pragma once
// Awaitable wrappers over the store's callback interface: the store's writer thread completes
// the operation and the result is posted back to the awaiting coroutine's executor.

#include "storage/store.hpp"

#include <type_traits>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace shardd {

namespace detail {

template <class Handler>
auto post_back(Handler&& handler) {
  auto ex = boost::asio::get_associated_executor(handler);
  auto work = boost::asio::make_work_guard(ex);
  return [h = std::forward<Handler>(handler), work = std::move(work)](auto result) mutable {
    auto ex = work.get_executor();
    boost::asio::post(ex, [h = std::move(h), r = std::move(result)]() mutable { std::move(h)(std::move(r)); });
  };
}

}  // namespace detail

using write_result = result<std::vector<storage::op_status>>;

/// Group-committed write; completes once durable (per the store's durability mode).
inline boost::asio::awaitable<write_result> async_write(storage::store& s, std::vector<storage::write_op> ops) {
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(write_result)>(
      [&s](auto handler, std::vector<storage::write_op> ops) {
        s.submit(std::move(ops), detail::post_back(std::move(handler)));
      },
      boost::asio::use_awaitable, std::move(ops));
}

/// Layout change (index created or dropped, shard split, new map), durable when it completes.
inline boost::asio::awaitable<result<void>> async_layout(storage::store& s, storage::layout_change change) {
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(result<void>)>(
      [&s](auto handler, storage::layout_change change) {
        s.submit(std::move(change), detail::post_back(std::move(handler)));
      },
      boost::asio::use_awaitable, std::move(change));
}

/// Runs a blocking function on `pool` (reads, scans, digests: never on a network strand) and
/// resumes the caller on its own executor.
template <class F>
boost::asio::awaitable<std::invoke_result_t<F>> on_pool(boost::asio::thread_pool& pool, F f) {
  using R = std::invoke_result_t<F>;
  // Named: GCC 12 destroys temporaries in a co_await operand twice.
  auto task = [f = std::move(f)]() mutable -> boost::asio::awaitable<R> { co_return f(); };
  co_return co_await boost::asio::co_spawn(pool, std::move(task), boost::asio::use_awaitable);
}

}  // namespace shardd
