// thinfarm-dispatch-bench: the coordinator's dispatch rate with no-op jobs.
//
// Keeps `--window` sessions of `--batch` no-op jobs in flight against a
// coordinator (whose workers answer no-op jobs at once), for `--jobs` jobs in
// all, and reports jobs per second and the p50/p99 latency from a job's
// submission to its result at the client. Every job is distinct (its module
// digest differs), so nothing is merged.
#include "base/flags.h"
#include "wire/transport.h"

#include <algorithm>
#include <cstdio>
#include <unordered_map>

using namespace thinfarm;
using Clock = std::chrono::steady_clock;

int main(int argc, char **argv) {
  Flags flags("thinfarm-dispatch-bench");
  flags.value("coordinator", "", "the coordinator's address (required)");
  flags.value("jobs", "200000", "no-op jobs in all");
  flags.value("batch", "16", "jobs per session");
  flags.value("window", "4", "sessions in flight");
  flags.value("toolchain", "", "the workers' backend identity (required)");
  if (Status st = flags.parse(argc, argv); !st.ok()) {
    std::fprintf(stderr, "thinfarm-dispatch-bench: %s\n", st.error().message.c_str());
    return 2;
  }
  uint64_t total = *flags.number("jobs"), batch = *flags.number("batch"),
           window = *flags.number("window");
  wire::Context ctx;
  auto sock = wire::Socket::connect(ctx, flags.get("coordinator"));
  if (!sock.ok()) {
    std::fprintf(stderr, "thinfarm-dispatch-bench: %s\n", sock.error().message.c_str());
    return 1;
  }
  struct Open {
    Clock::time_point submitted;
    uint64_t left;
  };
  std::unordered_map<uint64_t, Open> open;
  std::vector<double> latencies;
  latencies.reserve(total);
  uint64_t submitted = 0, nextSession = 1;
  auto submit = [&] {
    wire::Session s;
    s.sessionId = nextSession++;
    s.toolchain = flags.get("toolchain");
    uint64_t n = std::min(batch, total - submitted);
    for (uint64_t i = 0; i < n; ++i) {
      wire::JobSpec j;
      j.task = static_cast<uint32_t>(i);
      j.module.identifier = "noop";
      j.module.bitcode = Digest::of(std::to_string(submitted + i));
      j.noop = true;
      s.jobs.push_back(std::move(j));
    }
    submitted += n;
    open[s.sessionId] = {Clock::now(), n};
    return sock->send(wire::Message{sock->newRequestId(), std::move(s)});
  };
  auto start = Clock::now();
  while (latencies.size() < total) {
    while (open.size() < window && submitted < total)
      if (Status st = submit(); !st.ok()) {
        std::fprintf(stderr, "thinfarm-dispatch-bench: %s\n", st.error().message.c_str());
        return 1;
      }
    auto r = sock->receive(std::chrono::milliseconds(5000));
    if (!r) {
      std::fprintf(stderr, "thinfarm-dispatch-bench: no answer for 5 s (%zu of %llu done)\n",
                   latencies.size(), static_cast<unsigned long long>(total));
      return 1;
    }
    if (!r->message.ok())
      continue;
    if (auto *e = r->message->get<wire::ErrorMsg>()) {
      std::fprintf(stderr, "thinfarm-dispatch-bench: %s\n", e->message.c_str());
      return 1;
    }
    auto *res = r->message->get<wire::JobResult>();
    if (!res)
      continue;
    auto it = open.find(res->sessionId);
    if (it == open.end())
      continue;
    latencies.push_back(std::chrono::duration<double, std::milli>(Clock::now() - it->second.submitted).count());
    if (--it->second.left == 0) {
      (void)sock->send(wire::Message{0, wire::EndSession{res->sessionId}});
      open.erase(it);
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double p) { return latencies[static_cast<size_t>(p * (latencies.size() - 1))]; };
  std::printf("%zu no-op jobs in %.2f s: %.0f jobs/s; submit-to-result p50 %.2f ms, p99 %.2f ms, "
              "max %.2f ms (sessions of %llu, %llu in flight)\n",
              latencies.size(), secs, latencies.size() / secs, pct(0.5), pct(0.99), latencies.back(),
              static_cast<unsigned long long>(batch), static_cast<unsigned long long>(window));
  return 0;
}
