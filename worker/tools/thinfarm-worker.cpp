// thinfarm-worker --coordinator tcp://HOST:PORT --slots N --store DIR
#include "base/flags.h"
#include "worker/worker.h"

#include <csignal>
#include <cstdio>
#include <filesystem>

#include <unistd.h>

using namespace thinfarm;

namespace {

std::string besideThisProgram(const char *name) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return (ec ? std::filesystem::path(".") : self.parent_path()) / name;
}

int run(int argc, char **argv) {
  Flags flags("thinfarm-worker");
  flags.value("coordinator", "", "the coordinator's address, tcp://HOST:PORT (required)");
  flags.value("slots", "1", "backend jobs to run at once");
  flags.value("store", "", "directory of this worker's blob store (required)");
  flags.value("name", "", "this worker's name in logs (default: HOSTNAME-PID)");
  flags.value("backend", besideThisProgram("thinfarm-backend"), "the thinfarm-backend program");
  flags.value("scratch", "", "directory for input files (default: /dev/shm/thinfarm-worker-PID)");
  flags.value("job-memory-mb", "0", "address-space limit of each backend child, 0 = none");
  if (Status st = flags.parse(argc, argv); !st.ok()) {
    bool help = st.error().kind == ErrorKind::Unimplemented;
    std::fprintf(help ? stdout : stderr, help ? "%s" : "thinfarm-worker: error: %s\n",
                 st.error().message.c_str());
    return help ? 0 : 2;
  }
  for (const char *required : {"coordinator", "store"})
    if (flags.get(required).empty()) {
      std::fprintf(stderr, "thinfarm-worker: error: --%s is required (see --help)\n", required);
      return 2;
    }
  auto slots = flags.number("slots");
  auto memory = flags.number("job-memory-mb");
  for (auto *n : {&slots, &memory})
    if (!n->ok()) {
      std::fprintf(stderr, "thinfarm-worker: error: %s\n", n->error().message.c_str());
      return 2;
    }
  if (*slots == 0 || *slots > 1024) {
    std::fprintf(stderr, "thinfarm-worker: error: --slots wants 1 to 1024\n");
    return 2;
  }
  if (Status st = wire::checkEndpoint(flags.get("coordinator")); !st.ok()) {
    std::fprintf(stderr, "thinfarm-worker: error: %s\n", st.error().message.c_str());
    return 2;
  }
  WorkerOptions o;
  o.coordinator = flags.get("coordinator");
  o.slots = static_cast<unsigned>(*slots);
  o.name = flags.get("name");
  o.backendProgram = flags.get("backend");
  o.memoryLimit = *memory << 20;
  o.scratch = flags.get("scratch");
  bool ownScratch = o.scratch.empty();
  if (ownScratch)
    o.scratch = "/dev/shm/thinfarm-worker-" + std::to_string(::getpid());
  auto opts = completeOptions(std::move(o));
  if (!opts.ok()) {
    std::fprintf(stderr, "thinfarm-worker: error: %s\n", opts.error().message.c_str());
    return 1;
  }
  auto store = Store::open(flags.get("store"));
  if (!store.ok()) {
    std::fprintf(stderr, "thinfarm-worker: error: %s\n", store.error().message.c_str());
    return 1;
  }
  // SIGINT/SIGTERM end the worker cleanly: every thread blocks them and the
  // main thread waits for one.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGINT);
  sigaddset(&stopSignals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  wire::Context ctx;
  int status = 0;
  {
    Worker worker(ctx, *store, *opts);
    if (Status st = worker.start(std::chrono::seconds(10)); !st.ok()) {
      std::fprintf(stderr, "thinfarm-worker: error: %s\n", st.error().message.c_str());
      status = 1;
    } else {
      std::fprintf(stderr, "thinfarm-worker: %s: %u slots registered with %s (%s)\n",
                   opts->name.c_str(), opts->slots, opts->coordinator.c_str(),
                   opts->toolchain.c_str());
      int sig = 0;
      sigwait(&stopSignals, &sig);
    }
  }
  if (ownScratch) {
    std::error_code ec;
    std::filesystem::remove_all(opts->scratch, ec);
  }
  return status;
}

} // namespace

int main(int argc, char **argv) { return run(argc, argv); }
