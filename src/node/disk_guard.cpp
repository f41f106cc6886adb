#include "node/disk_guard.hpp"

#include "common/log.hpp"

#include <sys/statvfs.h>

#include <cstdio>
#include <filesystem>

namespace shardd {

disk_usage measure_data_disk(const node_config& cfg) {
  disk_usage d;
  if (cfg.capacity_bytes > 0) {
    std::error_code ec;
    std::uint64_t bytes = 0;
    for (std::filesystem::recursive_directory_iterator it(cfg.data_dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code fe;
      if (it->is_regular_file(fe)) {
        const auto size = it->file_size(fe);
        if (!fe) bytes += size;
      }
    }
    d.used = bytes;
    d.total = cfg.capacity_bytes;
    return d;
  }
  struct statvfs vfs {};
  if (::statvfs(cfg.data_dir.c_str(), &vfs) == 0) {
    d.total = std::uint64_t(vfs.f_blocks) * vfs.f_frsize;
    d.used = (std::uint64_t(vfs.f_blocks) - vfs.f_bfree) * vfs.f_frsize;
  }
  return d;
}

namespace {

std::uint32_t permille(double share) { return static_cast<std::uint32_t>(share * 1000.0 + 0.5); }

std::string watermark_text(std::uint32_t pm, std::uint64_t min_free) {
  if (pm > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g%%", pm / 10.0);
    return buf;
  }
  return to_string(disk_watermark{0, min_free}) + " free";
}

}  // namespace

void disk_guard::refresh(const disk_watermarks& w) {
  const auto d = measure_data_disk(cfg_);
  const auto was = level();
  const auto now = level_of(w, d.used, d.total, was);
  used_.store(d.used, std::memory_order_relaxed);
  total_.store(d.total, std::memory_order_relaxed);
  used_permille_.store(d.total ? permille(static_cast<double>(d.used) / static_cast<double>(d.total)) : 0,
                       std::memory_order_relaxed);
  flood_permille_.store(permille(w.flood.used_share), std::memory_order_relaxed);
  flood_min_free_.store(w.flood.min_free, std::memory_order_relaxed);
  high_permille_.store(permille(w.high.used_share), std::memory_order_relaxed);
  high_min_free_.store(w.high.min_free, std::memory_order_relaxed);
  level_.store(static_cast<std::uint8_t>(now), std::memory_order_relaxed);
  if (now != was)
    SHARDD_LOG(warn, "disk_level", "from", to_string(was), "to", to_string(now), "used", d.used, "total", d.total);
}

std::optional<error> disk_guard::refuse_puts() const {
  if (level() != disk_level::flood) return std::nullopt;
  const auto used = used_.load(std::memory_order_relaxed), total = total_.load(std::memory_order_relaxed);
  char pct[32];
  std::snprintf(pct, sizeof pct, "%.1f%%", used_permille_.load(std::memory_order_relaxed) / 10.0);
  return error{errc::insufficient_storage,
               "node " + cfg_.node_id + "'s data disk is above the flood watermark (" + pct + " used, " +
                   std::to_string(total > used ? total - used : 0) + " bytes free; flood " +
                   watermark_text(flood_permille_.load(std::memory_order_relaxed), flood_min_free_.load(std::memory_order_relaxed)) +
                   "): writes to its shards are refused until it is under the high watermark (" +
                   watermark_text(high_permille_.load(std::memory_order_relaxed), high_min_free_.load(std::memory_order_relaxed)) +
                   "); deletes still work. Free space, raise rebalance.disk_watermarks, or add a node"};
}

}  // namespace shardd
