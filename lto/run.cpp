// Stage 6: run the backend jobs.
//
// The jobs are independent, so the only question is order: a pool that takes
// the largest modules first keeps every core busy to the end (the classic LPT
// rule); in the kernel a few modules (page allocator, scheduler, vt) cost ten
// times the median and must not start last. Bitcode size predicts the cost
// well enough and is known before anything runs.
#include "lto/run.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include <sched.h>
#include <time.h>

namespace thinfarm {

namespace {

// The calling thread's CPU time: a backend's cost, whatever else the machine runs.
double threadCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

} // namespace

unsigned defaultThreads() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

void parallelFor(const std::vector<size_t> &order, unsigned threads,
                 const std::function<void(size_t)> &fn) {
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t k; (k = next.fetch_add(1)) < order.size();)
      fn(order[k]);
  };
  threads = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(order.size())));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t)
    pool.emplace_back(worker);
  worker();
  for (std::thread &t : pool)
    t.join();
}

Status parallelForAll(const std::vector<size_t> &order, unsigned threads,
                      const std::function<Status(size_t)> &fn) {
  std::vector<Status> status(order.size(), ok());
  std::vector<size_t> slots(order.size());
  for (size_t k = 0; k < slots.size(); ++k)
    slots[k] = k;
  parallelFor(slots, threads, [&](size_t k) { status[k] = fn(order[k]); });
  for (Status &s : status)
    if (!s.ok())
      return std::move(s);
  return ok();
}

Result<std::vector<NativeObject>> runJobs(const BackendProcess &backend,
                                          const std::vector<BackendJob> &jobs, unsigned threads,
                                          const KeepOutput &keep, std::vector<double> *seconds) {
  std::vector<size_t> order(jobs.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  // Largest first, ties in task order: std::sort with the index as the tie
  // break is stable_sort's order (whose libstdc++ 12 implementation clang
  // warns about: get_temporary_buffer is deprecated in C++20).
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    uint64_t ca = jobs[a].cost(), cb = jobs[b].cost();
    return ca != cb ? ca > cb : a < b;
  });

  std::vector<NativeObject> outputs(jobs.size());
  std::mutex mu;
  std::vector<std::pair<size_t, std::string>> failures;
  std::atomic<bool> stop{false};
  if (seconds)
    seconds->assign(jobs.size(), 0);
  parallelFor(order, threads, [&](size_t i) {
    if (stop.load())
      return;
    double started = threadCpuSeconds();
    auto r = backend.run(jobs[i]);
    if (seconds) // each thread writes its own jobs' entries
      (*seconds)[i] = threadCpuSeconds() - started;
    if (r.ok()) {
      auto kept = keep(jobs[i], std::move(*r));
      if (kept.ok()) {
        outputs[i] = std::move(*kept);
        return;
      }
      r = std::move(kept).error();
    }
    std::lock_guard<std::mutex> lock(mu);
    failures.emplace_back(i, r.error().message);
    stop = true; // no point compiling the rest of a link that failed
  });
  if (!failures.empty()) {
    std::sort(failures.begin(), failures.end());
    std::string msg;
    for (auto &[i, text] : failures)
      msg += (msg.empty() ? "" : "\n") + text;
    return failed(msg);
  }
  return outputs;
}

} // namespace thinfarm
