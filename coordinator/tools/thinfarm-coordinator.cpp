// thinfarm-coordinator --listen tcp://HOST:PORT --store DIR --key FILE --allow FILE
#include "base/flags.h"
#include "base/process.h"
#include "coordinator/coordinator.h"
#include "worker/staging.h"
#include "worker/worker.h"

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

using namespace thinfarm;
using namespace std::chrono_literals;

namespace {

// The embedded default's slots: a worker in this process, on the
// coordinator's own store, reaching it over inproc://.
constexpr const char *kPoolEndpoint = "inproc://thinfarm-local-slots";

std::vector<std::string> splitCommas(const std::string &s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos)
      comma = s.size();
    if (comma > start)
      out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

int run(int argc, char **argv) {
  Flags flags("thinfarm-coordinator");
  flags.required("listen", "addresses to listen on, comma-separated: tcp://HOST:PORT, ipc://PATH");
  flags.required("store", "directory of the blob store");
  flags.value("local-slots", "0", "also run this many backend slots in this process");
  flags.value("bwrap", "/usr/bin/bwrap",
              "the bubblewrap program that sandboxes the local slots' backends (if it can)");
  flags.value("backend", programDir() + "/thinfarm-backend", "the thinfarm-backend program (local slots)");
  flags.value("idle-exit", "0", "exit after this many seconds without clients, 0 = never");
  flags.value("lock", "", "hold an exclusive lock on this file while running (the embedded default)");
  flags.value("max-size", "20G", "the store's size budget (K, M, G, T suffixes; 0: unlimited); "
                                 "least recently used entries are evicted beyond it");
  flags.value("key", "", "this coordinator's key file (thinfarm-keygen): CURVE on every connection");
  flags.value("allow", "", "the allow-list of keys and roles (wire/keys.h); SIGHUP reloads it");
  flags.toggle("insecure", "listen on tcp:// without keys: loopback addresses only (tests)");
  flags.value("verify-fraction", "0.02",
              "the fraction of results from workers past probation that a second worker checks");
  flags.value("probation", "50", "results of a new worker checked by a second one before delivery");
  flags.value("job-deadline", "0",
              "seconds a backend job may run before it runs elsewhere; 0: 60 + 1 per 64 KiB of input");
  flags.value("max-sessions", "256", "links one client may have open at once");
  flags.value("max-queued-jobs", "100000", "backend jobs one client may have waiting at once");
  flags.toggle("verbose", "log registrations and send failures");
  // Bounds per peer (wire/transport.h, coordinator/blob_service.h).
  flags.value("max-connections", "1024", "open connections, all peers; more are shut at once");
  flags.value("max-connections-per-key", "64", "open connections of one CURVE key");
  flags.value("handshake-timeout", "5", "seconds a new connection has to complete its handshake");
  flags.value("heartbeat", "2", "seconds between ZeroMQ heartbeats; a peer silent for 5 is dropped");
  flags.value("max-unread", "64M",
              "bytes a TCP connection may have sent that are not yet messages (an unfinished "
              "multipart message, a backlog); more and it is shut; 0: unchecked");
  flags.value("max-blob", "2G", "the largest blob the store takes (K, M, G, T suffixes)");
  flags.value("peer-uploads", "16", "large uploads one peer may have in flight");
  flags.value("peer-upload-bytes", "4G", "declared bytes of one peer's uploads in flight");
  flags.value("upload-timeout", "30", "seconds without a chunk after which an upload is dropped");
  if (Status st = flags.parse(argc, argv); !st.ok())
    return flags.usageError(st.error());
  auto budget = flags.bytes("max-size");
  if (!budget.ok())
    return flags.usageError(budget.error());
  auto slots = flags.number("local-slots");
  auto idle = flags.number("idle-exit");
  auto probation = flags.number("probation");
  auto deadline = flags.number("job-deadline");
  auto maxSessions = flags.number("max-sessions");
  auto maxQueued = flags.number("max-queued-jobs");
  auto maxConnections = flags.number("max-connections");
  auto perKey = flags.number("max-connections-per-key");
  auto handshake = flags.number("handshake-timeout");
  auto heartbeat = flags.number("heartbeat");
  auto maxUnread = flags.bytes("max-unread");
  auto maxBlob = flags.bytes("max-blob");
  auto peerUploads = flags.number("peer-uploads");
  auto peerBytes = flags.bytes("peer-upload-bytes");
  auto uploadTimeout = flags.number("upload-timeout");
  for (auto *n : {&slots, &idle, &probation, &deadline, &maxSessions, &maxQueued, &maxConnections,
                  &perKey, &handshake, &heartbeat, &maxUnread, &maxBlob, &peerUploads, &peerBytes,
                  &uploadTimeout})
    if (!n->ok())
      return flags.usageError(n->error());
  CoordinatorOptions o;
  o.listen = splitCommas(flags.get("listen"));
  for (const std::string &e : o.listen)
    if (Status st = wire::checkEndpoint(e); !st.ok())
      return flags.usageError(st.error());
  if (!flags.get("key").empty()) {
    auto keys = wire::readKeyFile(flags.get("key"));
    if (!keys.ok())
      return flags.usageError(keys.error());
    if (flags.get("allow").empty())
      return flags.usageError(failed("--key needs --allow, the keys it admits"));
    if (flags.has("insecure"))
      return flags.usageError(failed("--insecure and --key: choose one"));
    o.keys = *keys;
    o.allowList = flags.get("allow");
  } else {
    // Without keys anyone who reaches the port owns the farm: never on an
    // address other machines reach, and on loopback only when asked.
    for (const std::string &e : o.listen) {
      if (e.rfind("tcp://", 0) != 0)
        continue;
      if (wire::reachableFromOtherMachines(e))
        return flags.usageError(failed(
            "listening on " + e + " needs --key and --allow (--insecure is for loopback only)"));
      if (!flags.has("insecure"))
        return flags.usageError(failed("listening on " + e +
                                       " without keys: give --key and --allow, or --insecure"));
    }
  }
  char *end = nullptr;
  const std::string fraction = flags.get("verify-fraction");
  SchedulerOptions &so = o.scheduling;
  so.verify.fraction = std::strtod(fraction.c_str(), &end);
  if (fraction.empty() || *end || !(so.verify.fraction >= 0 && so.verify.fraction <= 1))
    return flags.usageError(failed("--verify-fraction wants a number from 0 to 1, not " + fraction));
  so.verify.probation = static_cast<uint32_t>(std::min<uint64_t>(*probation, UINT32_MAX));
  so.jobDeadline = std::chrono::seconds(*deadline);
  so.maxSessions = static_cast<uint32_t>(std::min<uint64_t>(*maxSessions, UINT32_MAX));
  so.maxQueuedJobs = *maxQueued;
  so.workerGrace = Scheduler::kWorkerTimeout; // after a restart, the workers come back
  o.storeDir = flags.get("store");
  o.storeBudget = *budget;
  // Every connection is a descriptor: the cap stays below what the process
  // may open (raised to its hard limit), or accept() would fail in a loop.
  rlimit fds{};
  if (::getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur < fds.rlim_max) {
    fds.rlim_cur = fds.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &fds);
  }
  uint64_t fdRoom = ::getrlimit(RLIMIT_NOFILE, &fds) == 0 && fds.rlim_cur > 256
                        ? static_cast<uint64_t>(fds.rlim_cur) - 256 // the store, the pool
                        : 64;
  if (*maxConnections > fdRoom) {
    std::fprintf(stderr,
                 "thinfarm-coordinator: note: --max-connections %llu is more than %llu "
                 "descriptors allow; using %llu\n",
                 static_cast<unsigned long long>(*maxConnections),
                 static_cast<unsigned long long>(fds.rlim_cur),
                 static_cast<unsigned long long>(fdRoom));
    *maxConnections = fdRoom;
  }
  o.transport.maxConnections = *maxConnections;
  o.transport.maxConnectionsPerKey = *perKey;
  o.transport.handshake = std::chrono::seconds(*handshake);
  o.transport.heartbeat = std::chrono::seconds(*heartbeat);
  o.transport.maxUnread = *maxUnread;
  o.blobs.maxBlob = *maxBlob;
  o.blobs.uploadsPerPeer = *peerUploads;
  o.blobs.uploadBytesPerPeer = *peerBytes;
  o.blobs.uploadIdle = std::chrono::seconds(*uploadTimeout);
  const unsigned localSlots = static_cast<unsigned>(*slots);
  if (localSlots)
    o.listen.push_back(kPoolEndpoint);
  std::string scratch; // the local slots' staging directory (mkdtemp), removed on exit
  o.idleExit = std::chrono::seconds(*idle);
  o.verbose = flags.has("verbose");

  StopSignals signals;
  std::atomic<bool> stop{false};
  // SIGHUP reloads the allow-list of the coordinator while it runs.
  std::mutex reloadMutex;
  Coordinator *reloadable = nullptr;
  std::thread([&] {
    while (signals.wait() == SIGHUP) {
      std::lock_guard lock(reloadMutex);
      if (reloadable)
        reloadable->reloadAccess();
    }
    stop = true;
  }).detach();

  int status = 0;
  {
    wire::Context ctx;
    auto coord = Coordinator::create(ctx, o);
    if (!coord.ok()) {
      std::fprintf(stderr, "thinfarm-coordinator: error: %s\n", coord.error().message.c_str());
      return 1;
    }
    int lockFd = -1;
    if (!flags.get("lock").empty()) {
      lockFd = ::open(flags.get("lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
      if (lockFd < 0 || ::flock(lockFd, LOCK_EX | LOCK_NB) != 0) {
        std::fprintf(stderr, "thinfarm-coordinator: error: another coordinator holds %s\n",
                     flags.get("lock").c_str());
        return 1;
      }
      (void)!::ftruncate(lockFd, 0);
    }
    std::fprintf(stderr, "thinfarm-coordinator: listening on %s%s, store %s%s\n",
                 flags.get("listen").c_str(),
                 o.keys ? (" (CURVE, key " + o.keys->publicKey + ")").c_str() : "",
                 o.storeDir.c_str(),
                 localSlots ? (", " + std::to_string(localSlots) + " local slots").c_str() : "");
    // The local slots start beside the loop (they register through it), all
    // of it (the sandbox's probe, ~15 ms, and the backend's identity
    // included) off the path to "ready": a first link's memo lookup need not
    // wait for them, and its session waits for them (workerGrace). Slots
    // that cannot start stop the daemon: its links run here, with a notice.
    std::unique_ptr<Worker> pool;
    std::atomic<bool> poolFailed{false};
    std::thread poolStarter;
    auto startSlots = [&]() -> Status {
      WorkerOptions w;
      w.coordinator = kPoolEndpoint;
      w.slots = localSlots;
      w.name = "embedded"; // "local" is thinfarm-ld's own in-process pool
      w.backendProgram = flags.get("backend");
      // Local slots run this user's own jobs: sandboxed when this machine
      // can, else unconfined, said once here; a first build never fails for
      // want of bubblewrap.
      if (auto sandbox = Sandbox::probe(w.backendProgram, flags.get("bwrap")); sandbox.ok())
        w.sandbox = std::move(*sandbox);
      else
        std::fprintf(stderr, "thinfarm-coordinator: notice: local slots run without a sandbox: %s\n",
                     sandbox.error().message.c_str());
      TF_TRY(scratch, makeScratchDir("/dev/shm/thinfarm-coordinator-"));
      w.scratch = scratch;
      TF_TRY(WorkerOptions complete, completeOptions(std::move(w)));
      pool = std::make_unique<Worker>(ctx, (*coord)->store(), std::move(complete));
      return pool->start(10s);
    };
    if (localSlots)
      poolStarter = std::thread([&] {
        Status st = ok();
        try {
          st = startSlots();
        } catch (const std::exception &e) { // never std::terminate from a thread
          st = failed(e.what());
        }
        if (!st.ok()) {
          std::fprintf(stderr, "thinfarm-coordinator: error: local slots: %s\n",
                       st.error().message.c_str());
          poolFailed = stop = true;
        }
      });
    // Ready: the lock file gets our pid, which is what a starter waits for
    // (local_farm.h) and how it stops us.
    auto ready = [&] {
      std::string pid = std::to_string(::getpid()) + "\n";
      if (lockFd >= 0 && ::pwrite(lockFd, pid.data(), pid.size(), 0) < 0)
        std::fprintf(stderr, "thinfarm-coordinator: warning: cannot write %s\n",
                     flags.get("lock").c_str());
    };
    {
      std::lock_guard lock(reloadMutex);
      reloadable = coord->get();
    }
    if (Status st = (*coord)->run(stop, ready); !st.ok()) {
      std::fprintf(stderr, "thinfarm-coordinator: error: %s\n", st.error().message.c_str());
      status = 1;
    }
    {
      std::lock_guard lock(reloadMutex);
      reloadable = nullptr;
    }
    if (poolStarter.joinable())
      poolStarter.join();
    if (poolFailed)
      status = 1;
    if (pool)
      pool->stop();
  }
  std::error_code ec;
  if (!scratch.empty())
    std::filesystem::remove_all(scratch, ec);
  return status;
}

} // namespace

int main(int argc, char **argv) { return run(argc, argv); }
