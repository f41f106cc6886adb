#include "shardd/top_k.hpp"

#include <algorithm>
#include <utility>

namespace shardd {

space_saving::space_saving(std::size_t capacity) : capacity_(std::max<std::size_t>(1, capacity)) {
  heap_.reserve(capacity_);
  where_.reserve(capacity_ * 2);
}

void space_saving::swap_at(std::size_t a, std::size_t b) {
  std::swap(heap_[a], heap_[b]);
  where_[heap_[a].key] = a;
  where_[heap_[b].key] = b;
}

void space_saving::sift_down(std::size_t i) {
  // Counts only grow, so an entry only ever moves down the min-heap.
  for (;;) {
    const std::size_t l = 2 * i + 1, r = l + 1;
    std::size_t m = i;
    if (l < heap_.size() && heap_[l].count < heap_[m].count) m = l;
    if (r < heap_.size() && heap_[r].count < heap_[m].count) m = r;
    if (m == i) return;
    swap_at(i, m);
    i = m;
  }
}

void space_saving::offer(std::string_view key, std::uint64_t n) {
  total_ += n;
  if (auto it = where_.find(std::string(key)); it != where_.end()) {
    heap_[it->second].count += n;
    sift_down(it->second);
    return;
  }
  if (heap_.size() < capacity_) {
    // A new counter: sift it up from the end (n may exceed counts above it).
    heap_.push_back({std::string(key), n, 0});
    std::size_t i = heap_.size() - 1;
    where_[heap_[i].key] = i;
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (heap_[parent].count <= heap_[i].count) break;
      swap_at(i, parent);
      i = parent;
    }
    return;
  }
  // Full: the key takes over the smallest counter, inheriting its count as its error.
  auto& min = heap_[0];
  where_.erase(min.key);
  min.error = min.count;
  min.count += n;
  min.key = std::string(key);
  where_[min.key] = 0;
  sift_down(0);
}

std::vector<space_saving::entry> space_saving::top(std::size_t k) const {
  std::vector<entry> out(heap_.begin(), heap_.end());
  std::sort(out.begin(), out.end(), [](const entry& a, const entry& b) {
    return a.count != b.count ? a.count > b.count : a.key < b.key;
  });
  if (out.size() > k) out.resize(k);
  return out;
}

}  // namespace shardd
