#pragma once
// Which controller this node runs, if any. On the embedded plane that is fixed at start; on
// etcd the node runs one while it holds the election and stops it when it loses the lease,
// so the REST handlers and the peer service look it up on every call.

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

namespace shardd {

class controller;

/// Holds every controller the node started: a stopped one stays until the node ends, so a
/// request that picked it up just before it stopped gets its `unavailable` answer instead of
/// a dangling pointer. A node steps down rarely; each kept controller is its tables only.
class controller_slot {
 public:
  controller_slot();
  ~controller_slot();
  controller_slot(const controller_slot&) = delete;
  controller_slot& operator=(const controller_slot&) = delete;

  /// The running controller (null: this node runs none).
  controller* current() const noexcept { return current_.load(std::memory_order_acquire); }
  /// The running one, else the last one that ran (stopped: it answers `unavailable`).
  controller* latest() const noexcept {
    auto* c = current();
    return c ? c : last_.load(std::memory_order_acquire);
  }
  /// Makes `c` (begun) the running controller.
  controller* install(std::unique_ptr<controller> c);
  /// No controller runs any more; returns the one that ran (null: none), for the caller to end.
  controller* retire() noexcept { return current_.exchange(nullptr, std::memory_order_acq_rel); }

 private:
  mutable std::mutex mu_;
  std::atomic<controller*> current_{nullptr};
  std::atomic<controller*> last_{nullptr};
  std::vector<std::unique_ptr<controller>> kept_;
};

/// What handlers hold: `if (!ref)` asks whether this node is the controller now; `ref->`
/// reaches it (or, in the moment after it stepped down, the stopped one).
class controller_ref {
 public:
  controller_ref() = default;
  controller_ref(const controller_slot* s) : slot_(s) {}  // NOLINT: implicit by design
  explicit operator bool() const noexcept { return slot_ && slot_->current(); }
  controller* operator->() const noexcept { return slot_ ? slot_->latest() : nullptr; }

 private:
  const controller_slot* slot_ = nullptr;
};

}  // namespace shardd
