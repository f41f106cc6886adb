// The controller's public interface: each call is one message through the mailbox.
#include "node/controller.hpp"

namespace shardd {

using asio::awaitable;

// Each ask builds its message as a named local: GCC 12 destroys temporaries inside a
// co_await operand twice.
awaitable<map_result> controller::join(peer::join_request r) {
  auto make = [&](reply_to<map_result> reply) { return controller_message(join_msg{std::move(r), std::move(reply)}); };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<map_result> controller::heartbeat(peer::heartbeat b) {
  auto make = [&](reply_to<map_result> reply) { return controller_message(heartbeat_msg{std::move(b), std::move(reply)}); };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<map_result> controller::create_index(std::string name, index_spec spec) {
  auto make = [&](reply_to<map_result> reply) {
    return controller_message(create_index_msg{std::move(name), std::move(spec), std::move(reply)});
  };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<map_result> controller::drop_index(std::string name) {
  auto make = [&](reply_to<map_result> reply) { return controller_message(drop_index_msg{std::move(name), std::move(reply)}); };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<map_result> controller::set_weight(std::string node, std::uint32_t weight) {
  auto make = [&](reply_to<map_result> reply) {
    return controller_message(set_weight_msg{std::move(node), weight, std::move(reply)});
  };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<result<std::vector<member_status>>> controller::members() {
  using R = result<std::vector<member_status>>;
  auto make = [&](reply_to<R> reply) { return controller_message(members_msg{std::move(reply)}); };
  co_return co_await ask<R>(std::move(make));
}

awaitable<result<events_page>> controller::events(std::uint64_t since, std::vector<std::string> types, std::size_t limit) {
  using R = result<events_page>;
  auto make = [&](reply_to<R> reply) { return controller_message(events_msg{since, std::move(types), limit, std::move(reply)}); };
  co_return co_await ask<R>(std::move(make));
}

awaitable<migration_result> controller::migrate(migrate_request r) {
  auto make = [&](reply_to<migration_result> reply) { return controller_message(migrate_msg{std::move(r), std::move(reply)}); };
  co_return co_await ask<migration_result>(std::move(make));
}
awaitable<migrations_result> controller::migrations(std::optional<std::string> id) {
  auto make = [&](reply_to<migrations_result> reply) { return controller_message(migrations_msg{std::move(id), std::move(reply)}); };
  co_return co_await ask<migrations_result>(std::move(make));
}
awaitable<migration_result> controller::control_migration(std::string id, std::string command) {
  auto make = [&](reply_to<migration_result> reply) {
    return controller_message(migration_control_msg{std::move(id), std::move(command), std::move(reply)});
  };
  co_return co_await ask<migration_result>(std::move(make));
}
awaitable<migration_result> controller::report(migration_record r, std::string from) {
  auto make = [&](reply_to<migration_result> reply) {
    return controller_message(migration_report_msg{std::move(r), std::move(from), std::move(reply)});
  };
  co_return co_await ask<migration_result>(std::move(make));
}
awaitable<result<bool>> controller::commit(std::string id, std::string from) {
  auto make = [&](reply_to<result<bool>> reply) {
    return controller_message(migration_commit_msg{std::move(id), std::move(from), std::move(reply)});
  };
  co_return co_await ask<result<bool>>(std::move(make));
}
awaitable<map_result> controller::split(std::string index, std::uint32_t shard) {
  auto make = [&](reply_to<map_result> reply) { return controller_message(split_msg{std::move(index), shard, std::move(reply)}); };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<migrations_result> controller::decommission(std::string node) {
  auto make = [&](reply_to<migrations_result> reply) { return controller_message(decommission_msg{std::move(node), std::move(reply)}); };
  co_return co_await ask<migrations_result>(std::move(make));
}
awaitable<result<node_removed>> controller::remove_node(std::string node, bool force) {
  using R = result<node_removed>;
  auto make = [&](reply_to<R> reply) { return controller_message(remove_node_msg{std::move(node), force, std::move(reply)}); };
  co_return co_await ask<R>(std::move(make));
}
awaitable<map_result> controller::set_settings(cluster_settings st) {
  auto make = [&](reply_to<map_result> reply) { return controller_message(settings_msg{st, std::move(reply)}); };
  co_return co_await ask<map_result>(std::move(make));
}
awaitable<result<rebalance_run>> controller::rebalance_plan(bool keep) {
  using R = result<rebalance_run>;
  auto make = [&](reply_to<R> reply) { return controller_message(rebalance_plan_msg{keep, std::nullopt, std::move(reply)}); };
  co_return co_await ask<R>(std::move(make));
}

awaitable<result<rebalance_run>> controller::simulate(simulation what_if) {
  using R = result<rebalance_run>;
  auto make = [&](reply_to<R> reply) {
    return controller_message(rebalance_plan_msg{false, std::move(what_if), std::move(reply)});
  };
  co_return co_await ask<R>(std::move(make));
}
awaitable<result<rebalance_applied>> controller::rebalance_apply(std::string id, std::optional<std::uint64_t> if_match) {
  using R = result<rebalance_applied>;
  auto make = [&](reply_to<R> reply) {
    return controller_message(rebalance_apply_msg{std::move(id), if_match, std::move(reply)});
  };
  co_return co_await ask<R>(std::move(make));
}

}  // namespace shardd
