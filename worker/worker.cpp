#include "worker/worker.h"

#include "base/file.h"
#include "base/subprocess.h"
#include "wire/blob_transfer.h"
#include "worker/backend_child.h"
#include "worker/staging.h"

#include <cerrno>
#include <csignal>
#include <condition_variable>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace thinfarm {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

Result<WorkerOptions> completeOptions(WorkerOptions o) {
  if (o.toolchain.empty() && o.sandbox)
    o.toolchain = o.sandbox->identity(); // the probe ran it already
  if (o.toolchain.empty()) {
    auto id = runCapturing({o.backendProgram, "--identity"});
    if (!id.ok())
      return failed("cannot run the backend program " + o.backendProgram);
    o.toolchain = *id;
  }
  if (o.name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    o.name = std::string(host) + "-" + std::to_string(::getpid());
  }
  return o;
}

Result<std::unordered_map<std::string, double>> readCostTable(const std::string &path) {
  TF_TRY(std::string text, readFile(path));
  std::unordered_map<std::string, double> table;
  size_t lineNo = 0;
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos)
      end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++lineNo;
    if (line.empty() || line[0] == '#')
      continue;
    char *rest = nullptr;
    double secs = std::strtod(line.c_str(), &rest);
    size_t sp1 = line.find(' '), sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
    if (rest == line.c_str() || !(secs >= 0) || sp2 == std::string::npos || sp2 + 1 >= line.size())
      return failed(path + ":" + std::to_string(lineNo) + ": not \"SECONDS COST MODULE\": " + line);
    table[line.substr(sp2 + 1)] = secs;
  }
  if (table.empty())
    return failed(path + ": no costs in it");
  return table;
}

// What the control thread and the slots share: jobs in, results out. The
// control thread waits on the socket and on `wake` (an eventfd a slot
// writes when it queues a result).
struct Worker::Queues {
  std::mutex mu;
  std::condition_variable cv;    // a slot's --test-delay-ms wait: cancelled, or stop
  std::condition_variable ready; // idle slots: a job queued (one is woken per job), or stop
  std::deque<wire::RunJob> jobs;
  std::vector<wire::Message> results;
  struct Child {
    pid_t pid = -1;
    int pidfd = -1; // -1: none (yet)
  };
  std::map<uint64_t, Child> running; // job id -> its backend child
  std::set<uint64_t> cancelled;    // running jobs the coordinator cancelled
  int wake = -1;

  void post(wire::Message &&m) {
    {
      std::lock_guard<std::mutex> lock(mu);
      results.push_back(std::move(m));
    }
    uint64_t one = 1;
    (void)!::write(wake, &one, sizeof one);
  }
};

namespace {

// Empties dir, keeping dir itself (a sandbox has it mounted).
Status emptyDirectory(const std::string &dir) {
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    if (fs::remove_all(it->path(), ec); ec)
      break;
  if (ec)
    return failed("cannot empty " + dir + ": " + ec.message());
  return ok();
}

} // namespace

// One slot: a thread, a data connection (for blob transfers) and a backend child.
struct Worker::Slot {
  Worker &w;
  unsigned index;
  std::optional<wire::Socket> sock; // none in the benchmark modes (no blobs move)
  std::optional<BackendChild> child;

  std::string dir() const { return w.options_.scratch + "/slot" + std::to_string(index); }
  std::string inputDir() const { return dir() + "/in"; }
  std::string outputDir() const { return dir() + "/out"; }

  Result<wire::BackendReply> compile(const wire::RunJob &rj, const std::vector<std::string> &paths,
                                     const std::string &workDir, const std::string &outPath) {
    const WorkerOptions &o = w.options_;
    if (child && !(child->config() == rj.config))
      child.reset();
    if (!child) {
      SandboxView view{{inputDir()}, {outputDir()}};
      TF_TRY(BackendChild c,
             BackendChild::spawn(o.backendProgram, dir() + ".stderr", o.memoryLimit, rj.config,
                                 o.sandbox ? &*o.sandbox : nullptr, view));
      child.emplace(std::move(c));
    }
    wire::BackendRequest req;
    req.config = rj.config;
    req.module = rj.spec.module.identifier;
    req.modulePath = paths[0];
    req.shardPath = paths[1];
    for (size_t i = 0; i < rj.spec.imports.size(); ++i) {
      req.importIds.push_back(rj.spec.imports[i].identifier);
      req.importPaths.push_back(paths[2 + i]);
      req.importDigests.push_back(rj.spec.imports[i].bitcode);
    }
    req.moduleDigest = rj.spec.module.bitcode;
    req.incbins = rj.spec.incbins;
    req.workDir = workDir;
    req.outputPath = outPath;
    req.task = rj.spec.task;
    const uint64_t n = w.runs_++;
    if (o.failEvery && n % o.failEvery == o.failEvery - 1)
      return wire::BackendReply{true, "test failure of " + req.module + " (--test-fail-every)", {}, 0, {}};
    const bool kill = o.killEvery && n % o.killEvery == o.killEvery - 1;
    Queues &q = *w.queues_;
    {
      // Cancellable from here: the control thread signals the child's pidfd.
      std::lock_guard<std::mutex> lock(q.mu);
      if (q.cancelled.count(rj.jobId))
        return Error{ErrorKind::Disconnected, "cancelled"};
      q.running[rj.jobId] = {child->pid(), static_cast<int>(::syscall(SYS_pidfd_open, child->pid(), 0))};
    }
    auto reply = child->run(req, kill ? SIGKILL : 0);
    {
      std::lock_guard<std::mutex> lock(q.mu);
      Queues::Child &c = q.running[rj.jobId];
      if (c.pidfd >= 0)
        ::close(c.pidfd);
      c = {};
    }
    if (!reply.ok())
      child.reset(); // it died; the next job starts a fresh one
    return reply;
  }

  // The job's files in the slot's input directory, as hard links to the
  // staged ones: <digest> for each input (their paths, in the job's order),
  // work/<path> for each .incbin file. Nothing else is there.
  Result<std::vector<std::string>> layOut(const wire::JobSpec &s,
                                          const std::vector<Digest> &inputs,
                                          const std::vector<std::string> &staged) {
    const std::string in = inputDir();
    TF_CHECK(emptyDirectory(in));
    TF_CHECK(emptyDirectory(outputDir()));
    std::vector<std::string> paths;
    auto link = [](const std::string &from, const std::string &to) -> Status {
      if (::link(from.c_str(), to.c_str()) != 0 && errno != EEXIST)
        return failed("cannot link " + from + " to " + to + ": " + std::strerror(errno));
      return ok();
    };
    for (size_t i = 0; i < inputs.size(); ++i) {
      paths.push_back(in + "/" + inputs[i].text());
      TF_CHECK(link(staged[i], paths.back()));
    }
    std::error_code ec;
    fs::create_directory(in + "/work", ec);
    size_t first = 2 + s.imports.size();
    for (size_t i = 0; i < s.incbins.size(); ++i) {
      fs::path to = fs::path(in) / "work" / s.incbins[i].path;
      fs::create_directories(to.parent_path(), ec);
      if (ec || ::link(staged[first + i].c_str(), to.c_str()) != 0)
        return failed("cannot lay out " + s.incbins[i].path);
    }
    return paths;
  }

  // A benchmark's job (--noop, --simulate-costs): no inputs, no backend; a
  // fixed object, no key (never cached).
  Result<wire::JobResult> simulate(const wire::RunJob &rj, wire::JobResult res) {
    const WorkerOptions &o = w.options_;
    if (o.simulatedSeconds) {
      auto it = o.simulatedSeconds->find(rj.spec.module.identifier);
      if (it == o.simulatedSeconds->end())
        return failed("no simulated cost for module " + rj.spec.module.identifier);
      std::this_thread::sleep_for(std::chrono::duration<double>(it->second));
      res.seconds = it->second;
    }
    res.nativeBytes = std::string(kSimulatedObject);
    res.native = Digest::of(res.nativeBytes);
    return res;
  }

  // Runs one job; the error kind says whether another worker should redo it.
  Result<wire::JobResult> runJob(const wire::RunJob &rj) {
    const WorkerOptions &o = w.options_;
    wire::JobResult res;
    res.jobId = rj.jobId;
    res.task = rj.spec.task;
    res.worker = o.name;
    if (o.noop || o.simulatedSeconds)
      return simulate(rj, std::move(res));
    if (!sock) // only the benchmark modes above run without their data connection
      return Error{ErrorKind::Disconnected, "the slot has no data connection"};
    wire::Socket &data = *sock;
    const wire::JobSpec &s = rj.spec;
    std::vector<Digest> inputs{s.module.bitcode, s.shard};
    for (const auto &m : s.imports)
      inputs.push_back(m.bitcode);
    for (const auto &f : s.incbins) {
      if (!wire::staysInside(f.path))
        return failed("the job's .incbin path " + f.path +
                      " is not relative to the build directory");
      inputs.push_back(f.content);
    }
    // Fetch what this worker's store lacks (infrastructure failures are
    // Disconnected: another worker may succeed).
    auto missing = w.store_.findMissing(inputs);
    if (!missing.ok())
      return Error{ErrorKind::Disconnected, missing.error().message};
    std::sort(missing->begin(), missing->end());
    missing->erase(std::unique(missing->begin(), missing->end()), missing->end());
    if (!missing->empty()) {
      Status got = wire::download(data, *missing, [&](const Digest &d, std::string &&bytes) {
        return w.store_.put(d, bytes);
      });
      if (!got.ok())
        return Error{ErrorKind::Disconnected, "fetching inputs: " + got.error().message};
    }
    auto staged = w.staging_->acquire(w.store_, inputs);
    if (!staged.ok())
      return Error{ErrorKind::Disconnected, staged.error().message};
    // The slot's directories hold this job's files until it is done.
    struct Done {
      Slot &slot;
      Staging &st;
      const std::vector<Digest> &d;
      ~Done() {
        (void)emptyDirectory(slot.inputDir());
        (void)emptyDirectory(slot.outputDir());
        st.release(d);
      }
    } done{*this, *w.staging_, inputs};
    auto paths = layOut(s, inputs, *staged);
    if (!paths.ok())
      return Error{ErrorKind::Disconnected, paths.error().message};
    std::string outPath = outputDir() + "/out.o";
    auto reply = compile(rj, *paths, inputDir() + "/work", outPath);
    if (!reply.ok())
      return reply.error(); // the child died: failed or lost, as it says
    if (reply->failed)
      return failed(reply->message);
    auto object = readFile(outPath);
    if (!object.ok())
      return Error{ErrorKind::Disconnected, object.error().message};
    if (o.corruptEvery && (w.objects_++ % o.corruptEvery) == o.corruptEvery - 1 && !object->empty())
      (*object)[object->size() / 2] ^= 0x20; // a consistent lie: the digest is of these bytes
    res.native = Digest::of(*object);
    res.diagnostics = std::move(reply->diagnostics);
    res.seconds = reply->seconds;
    res.key = reply->key;
    if (!wire::fitsFrame(res, 0))
      return Error{ErrorKind::Exceeded,
                   "the backend's diagnostics of " + rj.spec.module.identifier + " (" +
                       std::to_string(wire::resultTextBound(res)) +
                       " bytes) are more than one message carries"};
    if (object->size() <= wire::kChunk && wire::fitsFrame(res, object->size())) {
      res.nativeBytes = std::move(*object); // rides with the result
    } else {
      auto need = wire::findMissing(data, std::span<const Digest>(&res.native, 1));
      if (!need.ok())
        return Error{ErrorKind::Disconnected, need.error().message};
      if (!need->empty()) {
        wire::BlobRef blob{res.native, *object};
        if (auto up = wire::upload(data, std::span<const wire::BlobRef>(&blob, 1)); !up.ok())
          return Error{ErrorKind::Disconnected,
                       "uploading the native object: " + up.error().message};
      }
    }
    return res;
  }

  void loop() {
    Queues &q = *w.queues_;
    for (;;) {
      wire::RunJob rj;
      {
        std::unique_lock<std::mutex> lock(q.mu);
        q.ready.wait(lock, [&] { return w.stop_.load() || !q.jobs.empty(); });
        if (w.stop_.load())
          return;
        rj = std::move(q.jobs.front());
        q.jobs.pop_front();
        q.running[rj.jobId] = {};
        if (w.options_.testDelay.count() > 0)
          q.cv.wait_for(lock, w.options_.testDelay,
                        [&] { return w.stop_.load() || q.cancelled.count(rj.jobId) > 0; });
      }
      // An exception (memory for a peer's sizes, a library's throw) fails
      // this job, which runs again elsewhere; the slot serves on.
      Result<wire::JobResult> result = failed("not run");
      try {
        result = runJob(rj);
      } catch (const std::exception &e) {
        result = Error{ErrorKind::Disconnected, std::string("the worker's slot threw: ") + e.what()};
      }
      {
        std::lock_guard<std::mutex> lock(q.mu);
        q.running.erase(rj.jobId);
        if (q.cancelled.erase(rj.jobId))
          continue; // another run won: nothing to say
      }
      wire::JobResult res;
      if (result.ok()) {
        res = std::move(*result);
      } else {
        res.jobId = rj.jobId;
        res.task = rj.spec.task;
        res.worker = w.options_.name;
        res.error = wire::ErrorMsg{result.error().kind, result.error().message};
      }
      q.post(wire::Message{rj.jobId, std::move(res)});
    }
  }
};

// The control connection: registration, heartbeats, jobs in, results out.
// No-op jobs (the dispatch benchmark's) are answered here at once.
void Worker::control(wire::Socket sock) {
  Queues &q = *queues_;
  const WorkerOptions &o = options_;
  auto registerNow = [&] {
    (void)sock.send(wire::Message{
        0, wire::RegisterWorker{o.name, o.toolchain, o.slots}});
  };
  registerNow();
  auto lastBeat = std::chrono::steady_clock::now();
  uint64_t losses = sock.disconnects();
  while (!stop_.load()) {
    if (uint64_t now = sock.disconnects(); now != losses) {
      // The coordinator went away (restarted, or the network): register
      // again at once, on the connection the socket makes anew. What was
      // running is the coordinator's to give out again.
      losses = now;
      registerNow();
    }
    auto [ready, woken] = wire::poll(sock, q.wake, 200ms);
    if (woken) {
      uint64_t n;
      (void)!::read(q.wake, &n, sizeof n);
      std::vector<wire::Message> results;
      {
        std::lock_guard<std::mutex> lock(q.mu);
        results.swap(q.results);
      }
      (void)sock.sendAll(wire::PeerId(), std::move(results));
    }
    std::vector<wire::Message> answered; // no-op jobs, answered in one batch
    while (ready) {
      auto r = sock.receive(std::chrono::milliseconds(0));
      if (!r)
        break;
      if (!r->message.ok()) {
        std::fprintf(stderr, "thinfarm-worker: warning: from the coordinator: %s\n",
                     r->message.error().message.c_str());
        continue;
      }
      wire::Message &m = *r->message;
      if (auto *e = m.get<wire::ErrorMsg>()) {
        if (e->kind == ErrorKind::Disconnected)
          registerNow(); // the coordinator restarted or forgot us
      } else if (auto *c = m.get<wire::CancelJob>()) {
        std::lock_guard<std::mutex> lock(q.mu);
        auto queued = std::find_if(q.jobs.begin(), q.jobs.end(),
                                   [&](const wire::RunJob &j) { return j.jobId == c->jobId; });
        if (queued != q.jobs.end()) {
          q.jobs.erase(queued);
        } else if (auto run = q.running.find(c->jobId); run != q.running.end()) {
          q.cancelled.insert(c->jobId);
          if (run->second.pidfd >= 0)
            BackendChild::killTree(run->second.pid, run->second.pidfd);
          q.cv.notify_all(); // a slot waiting (--test-delay-ms) stops waiting
        }
      } else if (m.get<wire::Registered>()) {
        registered_ = true;
      } else if (auto *rj = m.get<wire::RunJob>()) {
        if (rj->spec.noop) {
          wire::JobResult res;
          res.jobId = rj->jobId;
          res.task = rj->spec.task;
          res.worker = o.name;
          res.native = Digest::of("");
          answered.push_back(wire::Message{m.requestId, std::move(res)});
          continue;
        }
        {
          std::lock_guard<std::mutex> lock(q.mu);
          q.jobs.push_back(std::move(*rj));
        }
        // One idle slot per job: waking all of them for each (64 slots, 200
        // clients' no-op jobs) kept the control thread in futex calls.
        q.ready.notify_one();
      }
    }
    if (!answered.empty())
      (void)sock.sendAll(wire::PeerId(), std::move(answered));
    auto now = std::chrono::steady_clock::now();
    if (now - lastBeat >= 500ms) { // the coordinator's kWorkerTimeout is 2 s
      lastBeat = now;
      (void)sock.send(wire::Message{0, wire::Heartbeat{}});
    }
  }
}

Worker::Worker(wire::Context &ctx, Store &store, WorkerOptions options)
    : ctx_(ctx), store_(store), options_(std::move(options)) {}

Worker::~Worker() {
  stop();
  if (queues_ && queues_->wake >= 0)
    ::close(queues_->wake);
}

Status Worker::start(std::chrono::milliseconds timeout) {
  std::error_code ec;
  fs::create_directories(options_.scratch, ec);
  if (ec)
    return failed("cannot create " + options_.scratch + ": " + ec.message());
  // Only this user may read the staged inputs (mkdtemp's mode, for a
  // scratch directory given on the command line).
  std::vector<std::string> dirs{options_.scratch + "/blobs"};
  for (unsigned i = 0; i < options_.slots; ++i) {
    std::string slot = options_.scratch + "/slot" + std::to_string(i);
    dirs.insert(dirs.end(), {slot, slot + "/in", slot + "/out"});
  }
  for (const std::string &d : dirs)
    if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST)
      return failed("cannot create " + d + ": " + std::strerror(errno));
  staging_ = std::make_unique<Staging>(options_.scratch + "/blobs", options_.stagingBudget);
  queues_ = std::make_unique<Queues>();
  queues_->wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (queues_->wake < 0)
    return failed("eventfd failed");
  TF_TRY(wire::Socket control, wire::Socket::connect(ctx_, options_.coordinator, options_.curve));
  std::vector<std::optional<wire::Socket>> socks(options_.slots);
  const bool benchmark = options_.noop || options_.simulatedSeconds;
  for (unsigned i = 0; i < options_.slots && !benchmark; ++i) {
    TF_TRY(wire::Socket s, wire::Socket::connect(ctx_, options_.coordinator, options_.curve));
    socks[i] = std::move(s);
  }
  // No exception escapes a thread: one that does is logged and stops this
  // worker cleanly (its jobs run elsewhere), instead of std::terminate.
  // Each thread named (tf-slotN, tf-control) so top and /proc say whose CPU it is.
  auto guarded = [this](const char *what, auto &&body, const std::string &name) {
    ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
    try {
      body();
    } catch (const std::exception &e) {
      std::fprintf(stderr, "thinfarm-worker: error: the %s thread stopped: %s; the worker stops\n",
                   what, e.what());
      stop_ = true;
      std::lock_guard<std::mutex> lock(queues_->mu);
      queues_->cv.notify_all();
      queues_->ready.notify_all();
    }
  };
  for (unsigned i = 0; i < options_.slots; ++i)
    threads_.emplace_back([this, i, guarded, s = std::move(socks[i])]() mutable {
      guarded("slot", [&] {
        Slot slot{*this, i, std::move(s), std::nullopt};
        slot.loop();
      }, "tf-slot" + std::to_string(i));
    });
  threads_.emplace_back([this, guarded, s = std::move(control)]() mutable {
    guarded("control", [&] { this->control(std::move(s)); }, "tf-control");
  });
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!registered_.load()) {
    if (std::chrono::steady_clock::now() > deadline || stop_.load()) {
      stop();
      return Error{ErrorKind::Disconnected, "no coordinator answers at " + options_.coordinator};
    }
    std::this_thread::sleep_for(10ms);
  }
  return ok();
}

void Worker::stop() {
  stop_ = true;
  if (queues_) {
    std::lock_guard<std::mutex> lock(queues_->mu);
    queues_->cv.notify_all();
    queues_->ready.notify_all();
  }
  for (std::thread &t : threads_)
    if (t.joinable())
      t.join();
  threads_.clear();
}

} // namespace thinfarm
