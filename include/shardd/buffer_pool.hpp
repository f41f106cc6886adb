#pragma once
// Large buffers kept for the next use. A fresh buffer of megabytes costs more than the work
// done in it: the allocator maps new pages for it, each 4 KiB page faults on first touch and is
// zeroed by the kernel, and std::string's resize zero-fills it once more. A buffer taken back
// from the pool has its pages mapped already, and resizing it within what it last held fills
// nothing.

#include <cstddef>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace shardd {

class buffer_pool {
 public:
  /// Keeps at most `keep` buffers, each of a capacity between `min_bytes` and `max_bytes`
  /// (smaller ones cost little to make again; larger ones would hold too much while idle).
  buffer_pool(std::size_t keep, std::size_t min_bytes, std::size_t max_bytes) noexcept
      : keep_(keep), min_bytes_(min_bytes), max_bytes_(max_bytes) {}

  /// A kept buffer (its size is that of what it last held: resize it to what it is to hold),
  /// or a new empty one.
  std::string take() {
    std::lock_guard lock(mutex_);
    if (free_.empty()) return {};
    std::string s = std::move(free_.back());
    free_.pop_back();
    return s;
  }

  /// Keeps `s` for a later take(), if the pool has room and its capacity is one worth keeping.
  void give(std::string&& s) {
    if (s.capacity() < min_bytes_ || s.capacity() > max_bytes_) return;
    std::lock_guard lock(mutex_);
    if (free_.size() < keep_) free_.push_back(std::move(s));
  }

  /// Frees every kept buffer (nothing is expected to need one for a while).
  void clear() {
    std::vector<std::string> gone;
    std::lock_guard lock(mutex_);
    gone.swap(free_);
  }

  std::size_t kept() const {
    std::lock_guard lock(mutex_);
    return free_.size();
  }

 private:
  const std::size_t keep_, min_bytes_, max_bytes_;
  mutable std::mutex mutex_;
  std::vector<std::string> free_;
};

}  // namespace shardd
