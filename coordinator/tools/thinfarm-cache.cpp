// thinfarm-cache: the store's statistics from the command line.
//
//   thinfarm-cache                       the embedded default's store ($THINFARM_CACHE_DIR)
//   thinfarm-cache --coordinator ADDR    a running coordinator's, over the wire
//   thinfarm-cache --store DIR           a store directory, read directly
//
// A running coordinator is asked (its counters are the live ones); a store no
// daemon holds is opened read-only.
#include "base/flags.h"
#include "storage/store.h"
#include "client/client.h"
#include "client/local_farm.h"

#include <nlohmann/json.hpp>

#include <cstdio>

using namespace thinfarm;

namespace {

std::string human(uint64_t bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

std::string ratio(uint64_t hits, uint64_t misses) {
  if (hits + misses == 0)
    return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, " (%.1f%% hits)",
                100.0 * static_cast<double>(hits) / static_cast<double>(hits + misses));
  return buf;
}

// The store's statistics, as the coordinator reports them (wire::StoreStats) or
// as read from a store directory (StoreStats): the same fields.
// A running coordinator also lists its workers.
const std::vector<wire::WorkerStats> *workersOf(const wire::StoreStats &s) { return &s.workers; }
const std::vector<wire::WorkerStats> *workersOf(const StoreStats &) { return nullptr; }

template <class Stats> void print(const std::string &where, const Stats &s, bool json) {
  const std::vector<wire::WorkerStats> *workers = workersOf(s);
  if (json) {
    // nlohmann::ordered_json: the fields in the order written.
    nlohmann::ordered_json j = {
        {"entries", s.entries},         {"bytes", s.bytes},
        {"budget", s.budget},           {"action_hits", s.actionHits},
        {"action_misses", s.actionMisses}, {"memo_hits", s.memoHits},
        {"memo_misses", s.memoMisses},  {"bytes_stored", s.bytesStored},
        {"bytes_served", s.bytesServed}, {"evictions", s.evictions},
        {"evicted_bytes", s.evictedBytes}, {"corrupt", s.corrupt}};
    if (workers) {
      j["workers"] = nlohmann::ordered_json::array();
      for (const wire::WorkerStats &w : *workers)
        j["workers"].push_back({{"name", w.name},
                                {"slots", w.slots},
                                {"running", w.running},
                                {"done", w.done},
                                {"probation", w.probation},
                                {"quarantined", w.quarantined},
                                {"draining", w.draining}});
    }
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("store          %s\n", where.c_str());
  std::printf("entries        %llu, %s%s\n", (unsigned long long)s.entries, human(s.bytes).c_str(),
              s.budget ? (" of a " + human(s.budget) + " budget").c_str() : "");
  std::printf("action cache   %llu hits, %llu misses%s\n", (unsigned long long)s.actionHits,
              (unsigned long long)s.actionMisses, ratio(s.actionHits, s.actionMisses).c_str());
  std::printf("link memo      %llu hits, %llu misses%s\n", (unsigned long long)s.memoHits,
              (unsigned long long)s.memoMisses, ratio(s.memoHits, s.memoMisses).c_str());
  std::printf("stored         %s\n", human(s.bytesStored).c_str());
  std::printf("served         %s\n", human(s.bytesServed).c_str());
  std::printf("evicted        %llu entries, %s\n", (unsigned long long)s.evictions,
              human(s.evictedBytes).c_str());
  std::printf("corrupt        %llu entries dropped\n", (unsigned long long)s.corrupt);
  if (workers)
    for (const wire::WorkerStats &w : *workers)
      std::printf("worker         %s: %u slots, %u running, %llu results%s\n", w.name.c_str(),
                  w.slots, w.running, (unsigned long long)w.done,
                  w.quarantined ? ", QUARANTINED"
                  : w.draining  ? ", draining"
                  : w.probation ? (", on probation for " + std::to_string(w.probation) + " more").c_str()
                                : "");
}

int run(int argc, char **argv) {
  Flags flags("thinfarm-cache");
  flags.value("coordinator", "", "ask this running coordinator (tcp://HOST:PORT, ipc://PATH)");
  flags.value("key", "", "an admin key file, for a coordinator with keys");
  flags.value("coordinator-key", "", "that coordinator's public key, or its .pub file");
  flags.value("store", "", "read this store directory directly");
  flags.toggle("json", "print one JSON object");
  flags.value("drain", "", "no new jobs for this worker (its running ones finish); an admin key");
  flags.value("resume", "", "jobs again for this drained worker; an admin key");
  if (Status st = flags.parse(argc, argv); !st.ok())
    return flags.usageError(st.error());
  auto die = [](const Error &e) {
    std::fprintf(stderr, "thinfarm-cache: error: %s\n", e.message.c_str());
    return 1;
  };
  std::string endpoint = flags.get("coordinator"), store = flags.get("store");
  if (endpoint.empty() && store.empty()) {
    std::string cache = defaultCacheDir();
    endpoint = runningLocalCoordinator(cache);
    if (endpoint.empty())
      store = cache + "/store";
  }
  if (!endpoint.empty()) {
    auto curve = wire::clientCurve(endpoint, flags.get("key"), flags.get("coordinator-key"));
    if (!curve.ok())
      return flags.usageError(curve.error());
    wire::Context ctx;
    FarmClient client(ctx, endpoint, *curve);
    auto s = !flags.get("drain").empty()    ? client.drain(flags.get("drain"), true)
             : !flags.get("resume").empty() ? client.drain(flags.get("resume"), false)
                                            : client.stats();
    if (!s.ok())
      return die(s.error());
    print(endpoint, *s, flags.has("json"));
    return 0;
  }
  auto s = Store::readStats(store);
  if (!s.ok())
    return die(s.error());
  print(store, *s, flags.has("json"));
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const nlohmann::json::exception &e) { // --json: not expected of numbers and fixed keys
    std::fprintf(stderr, "thinfarm-cache: error: %s\n", e.what());
    return 1;
  }
}
