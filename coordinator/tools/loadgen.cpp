// thinfarm-loadgen: load and scale against a real coordinator (benchmarks and
// the load test; issue #13 item 7). It speaks the wire like thinfarm-ld's
// farm client, so the coordinator does all its real work (sessions, queue,
// dispatch, results through keepInlineNative and verification), while the
// workers (thinfarm-worker --noop or --simulate-costs) run nothing.
//
// Load (default): --clients threads, each with its own DEALER connection,
// submit sessions of --jobs distinct jobs one after the other for --seconds.
// Every result is checked against what its session asked for: a task never
// answered within --timeout is lost, one answered twice is duplicated, one
// answered with an error failed. Reports jobs/s, submit-to-result latency
// p50/p99 (with sessions of hundreds of jobs this is mostly the wait in the
// queue), and, given --coordinator-pid, the coordinator's RSS sampled from
// /proc each second (growth: last sample against the first after warm-up, a
// tenth of the run) and its CPU time. Exit status 1 on any lost, duplicated
// or failed job.
//
// Scale (--costs FILE --slots N): one session with the table's jobs (module
// names and cost() estimates, as thinfarm-ld would submit them) against
// workers whose slots sleep for each module's measured seconds. Reports the
// backend phase's makespan (submission to last result) against the lower
// bound max(sum/N, max job) and the makespan of an LPT schedule of the true
// costs on N slots, and the coordinator's CPU time over the session.
#include "base/flags.h"
#include "wire/transport.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <numeric>
#include <queue>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace thinfarm;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// Resident set of a process in KiB (VmRSS), 0 if unreadable.
uint64_t rssKiB(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::strtoull(line.c_str() + 6, nullptr, 10);
  return 0;
}

// User + system CPU seconds of a process (/proc/PID/stat fields 14 and 15).
double cpuSeconds(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  if (paren == std::string::npos)
    return 0;
  std::istringstream fields(text.substr(paren + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14)
      utime = std::stoull(f);
    if (i == 15)
      stime = std::stoull(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double percentile(std::vector<double> &v, double p) {
  if (v.empty())
    return 0;
  size_t k = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

struct Totals {
  std::mutex mu;
  uint64_t sessions = 0, jobs = 0, answered = 0, lost = 0, duplicated = 0, failed = 0,
           refused = 0;
  std::vector<double> latencies; // ms
  std::vector<std::string> problems;
};

// One session: submit, collect, check. Returns false when the connection
// should be given up (no answer at all within the timeout).
struct SessionRun {
  uint64_t answered = 0, lost = 0, duplicated = 0, failed = 0;
  bool refused = false;
  std::string problem;
  std::vector<double> latencies;
};

SessionRun runSession(wire::Socket &sock, wire::Session s, std::chrono::milliseconds timeout,
                      Clock::time_point *lastResult = nullptr) {
  SessionRun run;
  const uint64_t id = s.sessionId;
  const size_t n = s.jobs.size();
  std::vector<uint8_t> seen(n, 0);
  uint64_t requestId = sock.newRequestId();
  auto submitted = Clock::now();
  if (Status st = sock.send(wire::Message{requestId, std::move(s)}); !st.ok()) {
    run.lost = n;
    run.problem = "cannot submit: " + st.error().message;
    return run;
  }
  size_t got = 0;
  while (got < n) {
    auto r = sock.receive(timeout);
    if (!r) {
      run.lost = n - got;
      run.problem = "session " + std::to_string(id) + ": " + std::to_string(n - got) +
                    " jobs unanswered after " + std::to_string(timeout.count()) + " ms";
      break;
    }
    if (!r->message.ok())
      continue;
    if (auto *e = r->message->get<wire::ErrorMsg>()) {
      if (r->message->requestId == requestId) { // the session was refused
        run.refused = true;
        run.problem = "session " + std::to_string(id) + " refused: " + e->message;
        return run;
      }
      continue;
    }
    auto *res = r->message->get<wire::JobResult>();
    if (!res || res->sessionId != id)
      continue;
    auto now = Clock::now();
    if (res->task >= n) {
      run.duplicated++; // an answer to nothing asked
      continue;
    }
    if (seen[res->task]++) {
      run.duplicated++;
      continue;
    }
    got++;
    run.answered++;
    if (res->error) {
      run.failed++;
      if (run.problem.empty())
        run.problem = "task " + std::to_string(res->task) + " failed: " + res->error->message;
    }
    run.latencies.push_back(std::chrono::duration<double, std::milli>(now - submitted).count());
    if (lastResult)
      *lastResult = now;
  }
  (void)sock.send(wire::Message{0, wire::EndSession{id}});
  // Anything more for this session would be a duplicate: look briefly.
  while (auto r = sock.receive(0ms))
    if (r->message.ok())
      if (auto *res = r->message->get<wire::JobResult>(); res && res->sessionId == id)
        run.duplicated++;
  return run;
}

int loadMode(const Flags &flags, wire::Context &ctx) {
  const uint64_t clients = *flags.number("clients"), jobs = *flags.number("jobs"),
                 seconds = *flags.number("seconds"), timeoutMs = *flags.number("timeout-ms");
  const long pid = static_cast<long>(*flags.number("coordinator-pid"));
  Totals totals;
  std::atomic<bool> stop{false};
  std::atomic<unsigned> connected{0};
  auto client = [&](uint64_t c) {
    auto sock = wire::Socket::connect(ctx, flags.get("coordinator"));
    if (!sock.ok()) {
      std::lock_guard<std::mutex> lock(totals.mu);
      totals.problems.push_back("client " + std::to_string(c) + ": " + sock.error().message);
      return;
    }
    connected++;
    for (uint64_t k = 0; !stop.load(); ++k) {
      wire::Session s;
      s.sessionId = (c << 32) | (k + 1);
      s.toolchain = flags.get("toolchain");
      for (uint64_t i = 0; i < jobs; ++i) {
        wire::JobSpec j;
        j.task = static_cast<uint32_t>(i);
        j.module.identifier = "load" + std::to_string(i);
        // Distinct across clients and sessions: nothing is merged.
        j.module.bitcode = Digest::of(std::to_string(c) + "/" + std::to_string(k) + "/" +
                                      std::to_string(i));
        j.cost = 1000 + (i * 7919) % 100000; // mixed sizes, as a link's
        s.jobs.push_back(std::move(j));
      }
      SessionRun run = runSession(*sock, std::move(s), std::chrono::milliseconds(timeoutMs));
      std::lock_guard<std::mutex> lock(totals.mu);
      totals.sessions++;
      totals.jobs += run.refused ? 0 : jobs;
      totals.answered += run.answered;
      totals.lost += run.lost;
      totals.duplicated += run.duplicated;
      totals.failed += run.failed;
      totals.refused += run.refused;
      totals.latencies.insert(totals.latencies.end(), run.latencies.begin(), run.latencies.end());
      if (!run.problem.empty() && totals.problems.size() < 10)
        totals.problems.push_back(run.problem);
      if (run.lost) // a connection that lost jobs is not trusted further
        return;
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(clients);
  for (uint64_t c = 0; c < clients; ++c)
    threads.emplace_back(client, c);
  auto start = Clock::now();
  const auto warmup = std::chrono::duration<double>(static_cast<double>(seconds) / 10);
  std::vector<uint64_t> rss;
  uint64_t rssAfterWarmup = 0, rssMax = 0;
  double cpu0 = pid ? cpuSeconds(pid) : 0;
  uint64_t answeredAtWarmup = 0;
  Clock::time_point warmupAt = start;
  while (Clock::now() - start < std::chrono::seconds(seconds)) {
    std::this_thread::sleep_for(1s);
    if (pid) {
      uint64_t r = rssKiB(pid);
      rss.push_back(r);
      rssMax = std::max(rssMax, r);
      if (!rssAfterWarmup && Clock::now() - start >= warmup)
        rssAfterWarmup = r;
    }
    if (answeredAtWarmup == 0 && Clock::now() - start >= warmup) {
      std::lock_guard<std::mutex> lock(totals.mu);
      answeredAtWarmup = totals.answered;
      warmupAt = Clock::now();
    }
  }
  double cpu1 = pid ? cpuSeconds(pid) : 0;
  uint64_t answeredAtEnd;
  {
    std::lock_guard<std::mutex> lock(totals.mu);
    answeredAtEnd = totals.answered;
  }
  auto end = Clock::now();
  stop = true;
  for (std::thread &t : threads)
    t.join();
  double secs = std::chrono::duration<double>(end - start).count();
  double steady = std::chrono::duration<double>(end - warmupAt).count();
  std::printf("load: %llu clients (%u connected), sessions of %llu jobs, %.0f s\n",
              static_cast<unsigned long long>(clients), connected.load(),
              static_cast<unsigned long long>(jobs), secs);
  std::printf("  %llu sessions, %llu jobs submitted, %llu answered: %llu lost, %llu duplicated, "
              "%llu failed, %llu sessions refused\n",
              static_cast<unsigned long long>(totals.sessions),
              static_cast<unsigned long long>(totals.jobs),
              static_cast<unsigned long long>(totals.answered),
              static_cast<unsigned long long>(totals.lost),
              static_cast<unsigned long long>(totals.duplicated),
              static_cast<unsigned long long>(totals.failed),
              static_cast<unsigned long long>(totals.refused));
  std::printf("  rate %.0f jobs/s over the run, %.0f jobs/s after warm-up; submit-to-result "
              "p50 %.2f ms, p99 %.2f ms\n",
              static_cast<double>(answeredAtEnd) / secs,
              steady > 0 ? static_cast<double>(answeredAtEnd - answeredAtWarmup) / steady : 0.0,
              percentile(totals.latencies, 0.5), percentile(totals.latencies, 0.99));
  if (pid && !rss.empty())
    std::printf("  coordinator RSS: %.1f MiB after warm-up, %.1f MiB at the end (growth %+.1f%%), "
                "max %.1f MiB; CPU %.1f s (%.0f%% of one core)\n",
                static_cast<double>(rssAfterWarmup) / 1024, static_cast<double>(rss.back()) / 1024,
                rssAfterWarmup ? 100.0 * (static_cast<double>(rss.back()) -
                                          static_cast<double>(rssAfterWarmup)) /
                                     static_cast<double>(rssAfterWarmup)
                               : 0.0,
                static_cast<double>(rssMax) / 1024, cpu1 - cpu0, 100 * (cpu1 - cpu0) / secs);
  for (const std::string &p : totals.problems)
    std::printf("  problem: %s\n", p.c_str());
  bool bad = totals.lost || totals.duplicated || totals.failed || totals.refused ||
             connected.load() != clients || totals.answered == 0;
  return bad ? 1 : 0;
}

struct Cost {
  double seconds;
  uint64_t bytes;
  std::string module;
};

Result<std::vector<Cost>> readCosts(const std::string &path) {
  std::ifstream in(path);
  if (!in)
    return failed("cannot read " + path);
  std::vector<Cost> costs;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#')
      continue;
    std::istringstream fields(line);
    Cost c;
    if (!(fields >> c.seconds >> c.bytes) || !std::getline(fields >> std::ws, c.module) ||
        c.module.empty())
      return failed(path + ": not \"SECONDS COST MODULE\": " + line);
    costs.push_back(std::move(c));
  }
  if (costs.empty())
    return failed(path + ": no costs in it");
  return costs;
}

// The makespan of list scheduling in the given order on `slots` slots.
double listSchedule(const std::vector<double> &order, uint64_t slots) {
  std::priority_queue<double, std::vector<double>, std::greater<>> free;
  for (uint64_t i = 0; i < slots; ++i)
    free.push(0);
  double end = 0;
  for (double d : order) {
    double t = free.top() + d;
    free.pop();
    free.push(t);
    end = std::max(end, t);
  }
  return end;
}

int scaleMode(const Flags &flags, wire::Context &ctx) {
  auto costs = readCosts(flags.get("costs"));
  if (!costs.ok()) {
    std::fprintf(stderr, "thinfarm-loadgen: %s\n", costs.error().message.c_str());
    return 2;
  }
  const uint64_t slots = *flags.number("slots");
  const long pid = static_cast<long>(*flags.number("coordinator-pid"));
  std::vector<double> secs;
  for (const Cost &c : *costs)
    secs.push_back(c.seconds);
  double sum = std::accumulate(secs.begin(), secs.end(), 0.0);
  double longest = *std::max_element(secs.begin(), secs.end());
  double bound = std::max(sum / static_cast<double>(slots), longest);
  std::vector<double> lpt = secs;
  std::sort(lpt.begin(), lpt.end(), std::greater<>());
  // The scheduler's order: cost() estimate, largest first, then oldest (a
  // sort with the index as tie-break: stable_sort's order, without the
  // libstdc++ 12 get_temporary_buffer clang warns about).
  std::vector<size_t> byBytes(costs->size());
  std::iota(byBytes.begin(), byBytes.end(), size_t(0));
  std::sort(byBytes.begin(), byBytes.end(), [&](size_t a, size_t b) {
    uint64_t ca = (*costs)[a].bytes, cb = (*costs)[b].bytes;
    return ca != cb ? ca > cb : a < b;
  });
  std::vector<double> estimated;
  estimated.reserve(byBytes.size());
  for (size_t i : byBytes)
    estimated.push_back((*costs)[i].seconds);

  auto sock = wire::Socket::connect(ctx, flags.get("coordinator"));
  if (!sock.ok()) {
    std::fprintf(stderr, "thinfarm-loadgen: %s\n", sock.error().message.c_str());
    return 1;
  }
  wire::Session s;
  s.sessionId = static_cast<uint64_t>(::getpid()) << 20 | 1;
  s.toolchain = flags.get("toolchain");
  for (size_t i = 0; i < costs->size(); ++i) {
    wire::JobSpec j;
    j.task = static_cast<uint32_t>(i);
    j.module.identifier = (*costs)[i].module;
    j.module.bitcode = Digest::of(std::to_string(s.sessionId) + "/" + (*costs)[i].module);
    j.cost = (*costs)[i].bytes;
    s.jobs.push_back(std::move(j));
  }
  double cpu0 = pid ? cpuSeconds(pid) : 0;
  auto start = Clock::now();
  Clock::time_point last = start;
  SessionRun run = runSession(*sock, std::move(s), std::chrono::milliseconds(*flags.number("timeout-ms")),
                              &last);
  double cpu1 = pid ? cpuSeconds(pid) : 0;
  double makespan = std::chrono::duration<double>(last - start).count();
  std::printf("scale: %zu jobs (sum %.2f s, longest %.3f s) on %llu slots: makespan %.3f s, "
              "bound %.3f s (%.3fx), LPT %.3f s (%.3fx), list in cost() order %.3f s; "
              "coordinator CPU %.3f s; %llu lost, %llu duplicated, %llu failed\n",
              costs->size(), sum, longest, static_cast<unsigned long long>(slots), makespan, bound,
              makespan / bound, listSchedule(lpt, slots), listSchedule(lpt, slots) / bound,
              listSchedule(estimated, slots), cpu1 - cpu0,
              static_cast<unsigned long long>(run.lost), static_cast<unsigned long long>(run.duplicated),
              static_cast<unsigned long long>(run.failed));
  if (!run.problem.empty())
    std::printf("  problem: %s\n", run.problem.c_str());
  return run.lost || run.duplicated || run.failed || run.refused ? 1 : 0;
}

} // namespace

int main(int argc, char **argv) {
  Flags flags("thinfarm-loadgen");
  flags.required("coordinator", "the coordinator's address");
  flags.required("toolchain", "the workers' backend identity (thinfarm-backend --identity)");
  flags.value("clients", "200", "load: concurrent clients, each its own connection");
  flags.value("jobs", "300", "load: jobs per session");
  flags.value("seconds", "60", "load: how long to keep submitting");
  flags.value("timeout-ms", "10000", "a session's jobs not answered this long after the last answer are lost");
  flags.value("coordinator-pid", "0", "the coordinator's process, for its RSS and CPU time");
  flags.value("costs", "", "scale: the cost table (bench/data/vmlinux-o-costs.txt)");
  flags.value("slots", "64", "scale: the simulated slots in all (for the bounds)");
  if (Status st = flags.parse(argc, argv); !st.ok())
    return flags.usageError(st.error());
  for (const char *n : {"clients", "jobs", "seconds", "timeout-ms", "coordinator-pid", "slots"})
    if (auto v = flags.number(n); !v.ok())
      return flags.usageError(v.error());
  if (*flags.number("clients") == 0 || *flags.number("jobs") == 0 || *flags.number("slots") == 0)
    return flags.usageError(failed("--clients, --jobs and --slots want at least 1"));
  wire::Context ctx;
  return flags.get("costs").empty() ? loadMode(flags, ctx) : scaleMode(flags, ctx);
}
