#pragma once
// The node process: wires storage, actors and listeners together and runs them.

#include "common/config.hpp"
#include "shardd/error.hpp"

#include <memory>

namespace shardd {

/// One shardd node. Owns the io_context and its threads, the store, the actors and the
/// listeners. `run()` blocks until SIGTERM or SIGINT, then shuts down in order: stop
/// accepting, finish requests in flight (within shutdown_timeout_ms), stop actors, drain the
/// writer, close RocksDB.
class node {
 public:
  explicit node(node_config cfg);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Opens storage, loads the map and binds the listeners. An error names what failed.
  [[nodiscard]] result<void> start();

  /// Serves until a stop signal; returns the process exit code.
  int run();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace shardd
