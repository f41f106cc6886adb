// gather(): tasks run at once, results in order, and a task that throws still completes.
#include "node/gather.hpp"

#include "support/catch_result.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <optional>
#include <stdexcept>

using namespace shardd;
namespace asio = boost::asio;

namespace {

asio::awaitable<result<int>> after(int ms, int value, bool fail = false) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(std::chrono::milliseconds(ms));
  co_await t.async_wait(asio::use_awaitable);
  if (fail) throw std::runtime_error("task " + std::to_string(value) + " broke");
  co_return value;
}

/// Runs gather over the tasks; nullopt if it did not finish within two seconds.
std::optional<std::vector<result<int>>> run(std::vector<asio::awaitable<result<int>>> tasks) {
  asio::io_context ioc;
  std::optional<std::vector<result<int>>> out;
  auto body = [&]() -> asio::awaitable<void> { out = co_await gather(std::move(tasks)); };
  asio::co_spawn(ioc, body, asio::detached);
  ioc.run_for(std::chrono::seconds(2));
  return out;
}

}  // namespace

TEST_CASE("gather returns every result in the order of the tasks, whatever order they finish in") {
  std::vector<asio::awaitable<result<int>>> tasks;
  tasks.push_back(after(60, 1));
  tasks.push_back(after(10, 2));
  tasks.push_back(after(30, 3));
  auto r = run(std::move(tasks));
  REQUIRE(r);
  REQUIRE(r->size() == 3);
  CHECK((*r)[0].value() == 1);
  CHECK((*r)[1].value() == 2);
  CHECK((*r)[2].value() == 3);
}

TEST_CASE("a task that throws completes with an internal error and the others are kept") {
  std::vector<asio::awaitable<result<int>>> tasks;
  tasks.push_back(after(10, 1));
  tasks.push_back(after(20, 2, true));
  tasks.push_back(after(30, 3));
  auto r = run(std::move(tasks));
  REQUIRE(r);  // it did not hang
  CHECK((*r)[0].value() == 1);
  REQUIRE_FALSE((*r)[1]);
  CHECK((*r)[1].error().code == errc::internal);
  CHECK((*r)[1].error().detail.find("task 2 broke") != std::string::npos);
  CHECK((*r)[2].value() == 3);
}

TEST_CASE("gather of no tasks returns at once") {
  auto r = run({});
  REQUIRE(r);
  CHECK(r->empty());
}
