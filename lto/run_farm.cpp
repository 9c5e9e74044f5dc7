// Stage 6: run the backend jobs, on the farm when there is one.
//
// Each job becomes a wire JobSpec that names its inputs by digest (SHA-256 +
// size): the module, its index shard, every module it imports from and its
// .incbin files. The farm client uploads only what the coordinator's store
// lacks, so a module that a hundred jobs import, or that an earlier link sent,
// crosses the network once. Results come back in completion order and are kept
// (written to scratch, symbols read) as they arrive, which overlaps that work
// with the remaining backends.
//
// The farm never decides the output: a job it cannot finish (coordinator
// gone, no worker with this backend, a worker lost twice) runs here, in this
// process, with a one-line notice; only a backend failure (bad bitcode) fails
// the link, as it would have locally. A job whose .incbin path leaves the
// build directory runs here too: a worker lays the files out under its own
// directory and could not reproduce an absolute path.
#include "lto/run_farm.h"

#include "base/file.h"
#include "base/flags.h"
#include "client/client.h"
#include "client/local_farm.h"
#include "lto/backend_key.h"
#include "lto/backend_server.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <unordered_map>

#include <fcntl.h>
#include <unistd.h>

namespace thinfarm {

Result<Digest> jobKey(const FarmSubmission &sub, const wire::JobSpec &spec,
                      std::string_view shard) {
  BackendKeyInputs in;
  in.toolchain = sub.toolchain;
  in.config = &sub.config;
  in.moduleId = spec.module.identifier;
  in.module = spec.module.bitcode;
  in.shard = shard;
  for (const wire::ModuleRef &m : spec.imports)
    in.imports.push_back({m.identifier, m.bitcode});
  for (const wire::FileRef &f : spec.incbins)
    in.incbins.push_back({f.path, f.content});
  return backendKey(in);
}

namespace {

bool portableIncbins(const BackendJob &job) {
  return std::all_of(job.incbins.begin(), job.incbins.end(),
                     [](const IncbinFile &f) { return wire::staysInside(f.path); });
}

// Digests of every blob the jobs name, computed once each, in parallel.
struct Digests {
  std::unordered_map<std::string, Digest> modules; // by identifier
  std::vector<Digest> shards;                      // by job
  std::unordered_map<std::string, Digest> incbins; // by path
};

Digests digestAll(const std::vector<BackendJob> &jobs, unsigned threads) {
  Digests d;
  std::vector<std::pair<const std::string *, const Blob *>> work; // modules then incbins
  for (const BackendJob &j : jobs) {
    if (d.modules.emplace(j.module.identifier, Digest{}).second)
      work.push_back({&j.module.identifier, &j.module.bitcode});
    for (const Module &m : j.imports)
      if (d.modules.emplace(m.identifier, Digest{}).second)
        work.push_back({&m.identifier, &m.bitcode});
  }
  size_t moduleCount = work.size();
  for (const BackendJob &j : jobs)
    for (const IncbinFile &f : j.incbins)
      if (d.incbins.emplace(f.path, Digest{}).second)
        work.push_back({&f.path, &f.bytes});
  std::vector<Digest> out(work.size() + jobs.size());
  std::vector<size_t> order(out.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  parallelFor(order, threads, [&](size_t i) {
    out[i] = i < work.size() ? Digest::of(work[i].second->bytes())
                             : Digest::of(jobs[i - work.size()].indexShard.bytes());
  });
  for (size_t i = 0; i < work.size(); ++i)
    (i < moduleCount ? d.modules : d.incbins)[*work[i].first] = out[i];
  d.shards.assign(out.begin() + static_cast<long>(work.size()), out.end());
  return d;
}

// Each job's backend key (backend_key.cpp), so the coordinator can answer it
// from the action cache. A job whose key cannot be computed goes without one.
void addKeys(FarmSubmission &sub, const std::vector<BackendJob> &jobs, unsigned threads) {
  std::vector<size_t> order(sub.jobs.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  parallelFor(order, threads, [&](size_t i) {
    wire::JobSpec &spec = sub.jobs[i];
    if (auto key = jobKey(sub, spec, jobs[spec.task].indexShard.bytes()); key.ok())
      spec.key = *key;
  });
}

FarmSubmission submission(const LinkCommand &cmd, const std::vector<BackendJob> &jobs,
                          const std::vector<size_t> &farmJobs, unsigned threads) {
  Digests d = digestAll(jobs, threads);
  FarmSubmission sub;
  sub.toolchain = backendIdentity();
  sub.output = cmd.output;
  sub.config = cmd.backend;
  std::set<Digest> sent;
  auto blob = [&](const Digest &dg, std::string_view bytes) {
    if (sent.insert(dg).second)
      sub.blobs.push_back({dg, bytes});
  };
  for (size_t i : farmJobs) {
    const BackendJob &j = jobs[i];
    wire::JobSpec spec;
    spec.task = static_cast<uint32_t>(i);
    spec.module = {j.module.identifier, d.modules.at(j.module.identifier)};
    blob(spec.module.bitcode, j.module.bitcode.bytes());
    spec.shard = d.shards[i];
    blob(spec.shard, j.indexShard.bytes());
    for (const Module &m : j.imports) {
      spec.imports.push_back({m.identifier, d.modules.at(m.identifier)});
      blob(spec.imports.back().bitcode, m.bitcode.bytes());
    }
    for (const IncbinFile &f : j.incbins) {
      spec.incbins.push_back({f.path, d.incbins.at(f.path)});
      blob(spec.incbins.back().content, f.bytes.bytes());
    }
    spec.cost = j.cost();
    sub.jobs.push_back(std::move(spec));
  }
  addKeys(sub, jobs, threads);
  return sub;
}

// The farm's address for this link, or empty to run here.
Result<std::string> farmEndpoint(const DriverContext &ctx) {
  if (ctx.coordinator == "off")
    return std::string();
  if (!ctx.coordinator.empty())
    return ctx.coordinator;
  LocalFarm farm;
  farm.cacheDir = ctx.cacheDir;
  farm.coordinator = ctx.programDir + "/thinfarm-coordinator";
  farm.identity = backendIdentity();
  if (!ctx.cacheSize.empty()) {
    if (!Flags::parseBytes(ctx.cacheSize))
      return failed("THINFARM_CACHE_SIZE wants a size such as 512M or 20G, not '" + ctx.cacheSize +
                    "'");
    farm.maxSize = ctx.cacheSize;
  }
  return ensureLocalCoordinator(farm);
}

class ProgressLine {
public:
  ProgressLine(bool on, std::string output) : on_(on), output_(std::move(output)) {}
  ~ProgressLine() {
    if (on_ && shown_)
      std::fputs("\r\033[K", stderr);
  }
  void show(const wire::Progress &p, size_t total) {
    if (!on_)
      return;
    shown_ = true;
    std::fprintf(stderr, "\r\033[K  LTO     %s  %u/%zu modules, %u merged, %u running, %u workers",
                 output_.c_str(), p.done, total, p.merged, p.running, p.workers);
    std::fflush(stderr);
  }

private:
  bool on_;
  bool shown_ = false;
  std::string output_;
};

Status runHere(const DriverContext &ctx, const LinkCommand &cmd, const std::vector<BackendJob> &jobs,
               const std::vector<size_t> &which, unsigned threads, const KeepOutput &keep,
               RunResult &result) {
  if (which.empty())
    return ok();
  TF_TRY(BackendProcess backend, BackendProcess::initialize(cmd.backend));
  std::vector<BackendJob> subset;
  subset.reserve(which.size());
  for (size_t i : which)
    subset.push_back(jobs[i]);
  std::vector<double> seconds;
  TF_TRY(std::vector<NativeObject> natives,
         runJobs(backend, subset, threads, keep, ctx.costTrace.empty() ? nullptr : &seconds));
  if (!ctx.costTrace.empty()) {
    std::string lines;
    for (size_t k = 0; k < subset.size(); ++k)
      lines += std::to_string(seconds[k]) + " " + std::to_string(subset[k].cost()) + " " +
               subset[k].module.identifier + "\n";
    int fd = ::open(ctx.costTrace.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    Status st = fd < 0 ? failed("cannot open " + ctx.costTrace) : writeAll(fd, lines, ctx.costTrace);
    if (fd >= 0)
      ::close(fd);
    if (!st.ok())
      std::fprintf(stderr, "thinfarm-ld: warning: THINFARM_TRACE_COSTS: %s\n",
                   st.error().message.c_str());
  }
  for (size_t k = 0; k < which.size(); ++k) {
    result.natives[which[k]] = std::move(natives[k]);
    result.ran.push_back(jobs[which[k]].module.identifier);
  }
  result.local += which.size();
  result.workers["local"] += which.size();
  return ok();
}

} // namespace

FarmConnection FarmConnection::open(const DriverContext &ctx) {
  FarmConnection f;
  auto endpoint = farmEndpoint(ctx);
  if (!endpoint.ok()) {
    std::fprintf(stderr, "thinfarm-ld: note: %s; running the backends here\n",
                 endpoint.error().message.c_str());
    return f;
  }
  if (endpoint->empty())
    return f;
  std::optional<wire::ClientCurve> curve; // the embedded default needs none
  if (!ctx.coordinator.empty()) {
    auto c = wire::clientCurve(*endpoint, ctx.keyFile, ctx.coordinatorKey);
    if (!c.ok()) {
      std::fprintf(stderr, "thinfarm-ld: note: farm %s: %s; running the backends here\n",
                   endpoint->c_str(), c.error().message.c_str());
      return f;
    }
    curve = std::move(*c);
  }
  f.endpoint_ = *endpoint;
  f.wire_ = std::make_unique<wire::Context>();
  f.client_ = std::make_unique<FarmClient>(*f.wire_, *endpoint, std::move(curve));
  return f;
}

void FarmConnection::lost(std::string why) {
  lost_ = std::move(why);
  client_.reset();
}

void sendInputsAhead(FarmConnection &farm, const LinkCommand &cmd, const Inputs &inputs) {
  if (!farm.client() || !checkRemoteOptions(cmd.backend).ok())
    return;
  std::vector<std::string_view> blobs;
  for (const InputFile &f : inputs.files) {
    if (f.lazy)
      continue;
    if (f.kind == FileKind::Bitcode)
      blobs.push_back(f.bytes.bytes());
    else if (f.kind == FileKind::Archive && f.wholeArchive)
      for (const ExpandedMember &m : f.members)
        if (m.kind == FileKind::Bitcode)
          blobs.push_back(m.member.bytes.bytes());
  }
  if (!blobs.empty())
    farm.client()->sendAhead(std::move(blobs));
}

Result<RunResult> runBackends(FarmConnection &farm, const DriverContext &ctx,
                              const LinkCommand &cmd, const std::vector<BackendJob> &jobs,
                              unsigned threads, const KeepOutput &keep) {
  RunResult result;
  result.natives.resize(jobs.size());
  std::vector<size_t> farmJobs, hereJobs;
  for (size_t i = 0; i < jobs.size(); ++i)
    (portableIncbins(jobs[i]) ? farmJobs : hereJobs).push_back(i);

  // Options a worker would refuse (they reach files) keep the backends here;
  // the farm still serves the link memo.
  bool here = !farm.client();
  std::string why = farm.lostReason();
  if (Status st = checkRemoteOptions(cmd.backend); !here && !st.ok()) {
    here = true;
    why = st.error().message;
  }
  if (here) {
    if (!why.empty())
      std::fprintf(stderr, "thinfarm-ld: note: farm at %s: %s; running %zu of %zu backends here\n",
                   farm.endpoint().c_str(), why.c_str(), jobs.size(), jobs.size());
    hereJobs.clear();
    for (size_t i = 0; i < jobs.size(); ++i)
      hereJobs.push_back(i);
    TF_CHECK(runHere(ctx, cmd, jobs, hereJobs, threads, keep, result));
    return result;
  }

  FarmSubmission sub = submission(cmd, jobs, farmJobs, threads);
  FarmClient &client = *farm.client();
  ProgressLine line(ctx.progress, cmd.output);
  auto take = [&](FarmResult &&r) -> Status {
    const BackendJob &job = jobs[r.task];
    TF_TRY(NativeObject n, keep(job, BackendOutput{std::move(r.native), std::move(r.diagnostics)}));
    result.natives[r.task] = std::move(n);
    result.remote++;
    result.workers[r.worker]++;
    if (r.cached)
      result.cacheHits++;
    else
      result.ran.push_back(job.module.identifier);
    return ok();
  };
  TF_TRY(FarmOutcome outcome,
         client.run(sub, take, [&](const wire::Progress &p) { line.show(p, farmJobs.size()); }));
  result.merged = outcome.merged;
  if (!outcome.unfinished.empty()) {
    std::fprintf(stderr, "thinfarm-ld: note: farm at %s: %s; running %zu of %zu backends here\n",
                 client.endpoint().c_str(), outcome.why.c_str(), outcome.unfinished.size(),
                 jobs.size());
    for (uint32_t t : outcome.unfinished)
      hereJobs.push_back(t);
    if (outcome.farmLost)
      farm.lost(outcome.why); // nothing more is asked of it in this link (the memo)
  }
  std::sort(hereJobs.begin(), hereJobs.end());
  TF_CHECK(runHere(ctx, cmd, jobs, hereJobs, threads, keep, result));
  return result;
}

} // namespace thinfarm
