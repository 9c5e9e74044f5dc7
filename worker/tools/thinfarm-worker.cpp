// thinfarm-worker --coordinator tcp://HOST:PORT --key FILE --coordinator-key KEY --slots N --store DIR
//
// Backends run sandboxed (worker/sandbox.h): a worker compiles other people's
// bitcode, so it refuses to start when bubblewrap is missing or cannot create
// namespaces, unless told --no-sandbox.
#include "base/flags.h"
#include "base/process.h"
#include "worker/staging.h"
#include "worker/worker.h"

#include <cstdio>

#include <unistd.h>

using namespace thinfarm;

int main(int argc, char **argv) {
  // Before any thread exists (the store's, ZeroMQ's, the slots'), so that
  // every thread inherits the blocked SIGINT/SIGTERM and only stop.wait()
  // takes them: otherwise the signal may land on a thread that does not block
  // it and end the process on the spot, without the cleanup below.
  StopSignals stop;
  Flags flags("thinfarm-worker");
  flags.required("coordinator", "the coordinator's address, tcp://HOST:PORT");
  flags.required("store", "directory of this worker's blob store");
  flags.value("key", "", "this worker's key file (thinfarm-keygen)");
  flags.value("coordinator-key", "", "the coordinator's public key, or its .pub file");
  flags.value("slots", "1", "backend jobs to run at once");
  flags.value("name", "", "this worker's name in logs (default: HOSTNAME-PID)");
  flags.value("backend", programDir() + "/thinfarm-backend", "the thinfarm-backend program");
  flags.value("scratch", "", "directory for input files (default: a new /dev/shm/thinfarm-worker-XXXXXX, removed on exit)");
  flags.value("bwrap", "/usr/bin/bwrap", "the bubblewrap program that sandboxes backends");
  flags.toggle("no-sandbox",
               "run backends unconfined (with a warning). By default each backend runs in a"
               " bubblewrap sandbox (/usr/bin/bwrap, Debian package bubblewrap): no network, no"
               " /etc, /home or /tmp, only the read-only toolchain and its own job's files; the"
               " worker refuses to start if bwrap is missing or cannot create namespaces");
  flags.value("job-memory-mb", "0", "address-space limit of each backend child, 0 = none");
  flags.value("max-size", "10G", "the store's size budget (K, M, G, T suffixes; 0: unlimited)");
  flags.value("test-corrupt-every", "0",
              "for tests of the coordinator's verification only: alter every Nth native object");
  flags.value("test-kill-every", "0",
              "for tests of the retry policy only: SIGKILL the backend child of every Nth job");
  flags.value("test-fail-every", "0",
              "for tests of the retry policy only: fail every Nth job as its backend would");
  flags.value("test-delay-ms", "0",
              "for tests of stragglers only: each job waits this long in its slot before it runs");
  flags.toggle("noop", "for benchmarks only: each slot answers every job at once with a tiny"
                       " fixed object (no backend, no inputs fetched; never cached)");
  flags.value("simulate-costs", "",
              "for benchmarks only: each slot sleeps for the job's cost in this table"
              " (\"SECONDS COST MODULE\" lines, bench/data/) instead of running it, then answers"
              " as --noop does");
  if (Status st = flags.parse(argc, argv); !st.ok())
    return flags.usageError(st.error());
  auto slots = flags.number("slots");
  auto memory = flags.number("job-memory-mb");
  auto corrupt = flags.number("test-corrupt-every");
  auto killEvery = flags.number("test-kill-every");
  auto failEvery = flags.number("test-fail-every");
  auto delay = flags.number("test-delay-ms");
  for (auto *n : {&slots, &memory, &corrupt, &killEvery, &failEvery, &delay})
    if (!n->ok())
      return flags.usageError(n->error());
  if (*slots == 0 || *slots > 1024)
    return flags.usageError(failed("--slots wants 1 to 1024"));
  if (Status st = wire::checkEndpoint(flags.get("coordinator")); !st.ok())
    return flags.usageError(st.error());
  auto die = [](const Error &e) {
    std::fprintf(stderr, "thinfarm-worker: error: %s\n", e.message.c_str());
    return 1;
  };
  auto curve =
      wire::clientCurve(flags.get("coordinator"), flags.get("key"), flags.get("coordinator-key"));
  if (!curve.ok())
    return flags.usageError(curve.error());

  WorkerOptions o;
  o.coordinator = flags.get("coordinator");
  o.curve = *curve;
  o.slots = static_cast<unsigned>(*slots);
  o.name = flags.get("name");
  o.backendProgram = flags.get("backend");
  o.memoryLimit = *memory << 20;
  o.corruptEvery = static_cast<unsigned>(*corrupt);
  o.killEvery = static_cast<unsigned>(*killEvery);
  o.failEvery = static_cast<unsigned>(*failEvery);
  o.testDelay = std::chrono::milliseconds(*delay);
  o.scratch = flags.get("scratch");
  o.noop = flags.has("noop");
  if (!flags.get("simulate-costs").empty()) {
    if (o.noop)
      return flags.usageError(failed("--noop and --simulate-costs: choose one"));
    auto table = readCostTable(flags.get("simulate-costs"));
    if (!table.ok())
      return flags.usageError(table.error());
    o.simulatedSeconds =
        std::make_shared<const std::unordered_map<std::string, double>>(std::move(*table));
  }
  if (o.noop || o.simulatedSeconds) {
    std::fprintf(stderr, "thinfarm-worker: warning: %s: a benchmark worker, its slots run"
                         " nothing\n", o.noop ? "--noop" : "--simulate-costs");
  } else if (flags.has("no-sandbox")) {
    std::fprintf(stderr, "thinfarm-worker: warning: --no-sandbox: backends can read and write"
                         " whatever this user can\n");
  } else {
    auto sandbox = Sandbox::probe(o.backendProgram, flags.get("bwrap"));
    if (!sandbox.ok())
      return die(failed("cannot sandbox backends: " + sandbox.error().message +
                        "; run with --no-sandbox to run them unconfined"));
    o.sandbox = std::move(*sandbox);
  }
  auto opts = completeOptions(std::move(o));
  if (!opts.ok())
    return die(opts.error());
  auto budget = flags.bytes("max-size");
  if (!budget.ok())
    return flags.usageError(budget.error());
  StoreOptions so;
  so.budgetBytes = *budget;
  auto store = Store::open(flags.get("store"), so);
  if (!store.ok())
    return die(store.error());
  bool ownScratch = opts->scratch.empty();
  if (ownScratch) {
    auto dir = makeScratchDir("/dev/shm/thinfarm-worker-");
    if (!dir.ok())
      return die(dir.error());
    opts->scratch = *dir;
  }

  int status = 0;
  {
    wire::Context ctx;
    Worker worker(ctx, *store, *opts);
    if (Status st = worker.start(std::chrono::seconds(10)); !st.ok()) {
      status = die(st.error());
    } else {
      std::fprintf(stderr, "thinfarm-worker: %s: %u slots registered with %s (%s)%s\n",
                   opts->name.c_str(), opts->slots, opts->coordinator.c_str(),
                   opts->toolchain.c_str(), opts->sandbox ? ", sandboxed" : "");
      while (stop.wait() == SIGHUP) {
      }
    }
  }
  if (ownScratch) {
    std::error_code ec;
    std::filesystem::remove_all(opts->scratch, ec);
  }
  return status;
}
