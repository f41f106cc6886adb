#pragma once
// A process's threads as /proc shows them: each one's nice value and the CPU it used.

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>

namespace shardd::test {

struct thread_figures {
  int threads = 0;          ///< how many threads run at this nice value
  long long cpu_ticks = 0;  ///< user + system time they used, in clock ticks
};

/// The threads of `pid` grouped by nice value.
inline std::map<int, thread_figures> threads_by_nice(int pid) {
  std::map<int, thread_figures> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;  // the thread ended while being read
    // Fields after the command name (in parentheses, which may hold spaces), from field 3:
    // utime is field 14, stime 15, nice 19.
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    long long ticks = 0;
    int nice = 0;
    for (int i = 3; i <= 19 && rest >> field; ++i) {
      if (i == 14 || i == 15) ticks += std::stoll(field);
      if (i == 19) nice = std::stoi(field);
    }
    auto& f = out[nice];
    ++f.threads;
    f.cpu_ticks += ticks;
  }
  return out;
}

}  // namespace shardd::test
