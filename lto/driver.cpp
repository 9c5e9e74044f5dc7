// The link driver: a ThinLTO link as a list of stages.
//
//   parse → expand archives → link memo → inspect modules → thin link
//   (meanwhile the bitcode goes ahead to the farm) → complete shards
//   → plan jobs → run
//   → assemble → record the memo
//
// The link memo (memo.cpp) answers a link whose inputs did not change at all
// from the store; the action cache (on the coordinator) answers each backend
// job that ran before anywhere on the farm.
//
// A link without bitcode, a full-LTO link, or one that uses something the
// split does not model goes to stock ld.lld-19 unchanged (the last kind with
// a one-line notice), so thinfarm-ld is never the reason a link differs.
#include "lto/driver.h"

#include "base/file.h"
#include "base/process.h"

#include "client/local_farm.h"
#include "lto/assemble.h"
#include "lto/backend.h"
#include "lto/bitcode.h"
#include "lto/expand.h"
#include "lto/memo.h"
#include "lto/parse.h"
#include "lto/plan.h"
#include "lto/run.h"
#include "lto/run_farm.h"
#include "lto/shard.h"
#include "lto/thin_link.h"

#include <llvm/Support/JSON.h>
#include <llvm/Support/raw_ostream.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

namespace thinfarm {

namespace {

// Not a ThinLTO link: it goes to stock lld unchanged, silently. (A ThinLTO
// link the split cannot handle is an Unimplemented error instead, with a notice.)
struct PassThrough {};

struct Linked {
  std::string output;
  size_t modules = 0;
  RunResult run;
  bool memoHit = false;
};

using Outcome = std::variant<Linked, PassThrough>;

// A scratch directory for the link's intermediate files, removed at the end.
class Scratch {
public:
  // Layout: native/<task>.o, shim/<task>.o, member/ (regular archive
  // members), and the thin link's shards and import lists by module path.
  static Result<Scratch> create(const DriverContext &ctx) {
    std::string templ = ctx.tempDir + "/thinfarm-XXXXXX";
    if (!mkdtemp(templ.data()))
      return failed("cannot create a scratch directory in " + ctx.tempDir);
    Scratch s(templ, ctx.keepTemps);
    for (const char *sub : {"/native", "/shim", "/member"})
      if (::mkdir((templ + sub).c_str(), 0755) != 0)
        return failed("cannot create " + templ + sub);
    return s;
  }
  Scratch(Scratch &&o) noexcept : path_(std::move(o.path_)), keep_(o.keep_) { o.path_.clear(); }
  Scratch(const Scratch &) = delete;
  ~Scratch() {
    std::error_code ec;
    if (!path_.empty() && !keep_)
      std::filesystem::remove_all(path_, ec);
  }
  const std::string &path() const { return path_; }

private:
  Scratch(std::string p, bool keep) : path_(std::move(p)), keep_(keep) {}
  std::string path_;
  bool keep_;
};

// -u/--undefined/--require-defined: lld resolves those names before reading
// any input.
Status checkSplittable(const Inputs &inputs) {
  for (const InputFile &f : inputs.files) {
    if (f.kind == FileKind::SharedObject)
      return unimplemented(f.path + ": shared objects in a ThinLTO link");
    if (f.kind == FileKind::Other)
      return unimplemented(f.path + ": linker scripts as inputs of a ThinLTO link");
  }
  return ok();
}

// Full LTO passes through unchanged; a link that mixes the two is not split.
Result<bool> isThinLink(const ModuleFactsMap &facts) {
  size_t thin = 0;
  for (const auto &[id, f] : facts)
    thin += f.thin;
  if (thin == 0)
    return false;
  if (thin != facts.size())
    return unimplemented("the link mixes ThinLTO and full LTO bitcode");
  return true;
}

// The backends' diagnostics as lld prints them.
std::string backendDiagnostics(const Toolchain &tc, const std::vector<NativeObject> &natives) {
  std::string prog = baseName(tc.lld), printed;
  for (const NativeObject &out : natives)
    for (const Diagnostic &d : out.diagnostics) {
      const char *sev = d.severity == Severity::Warning ? "warning: "
                        : d.severity == Severity::Error ? "error: "
                                                        : "";
      printed += prog + ": " + sev + d.text + "\n";
    }
  return printed;
}

// The link's memo key, when there is a store to keep the memo in and the
// link can be memoized at all.
std::optional<MemoKey> linkMemoKey(const DriverContext &ctx, FarmClient *farm,
                                   const LinkCommand &cmd, const Inputs &inputs, unsigned threads) {
  if (!farm)
    return std::nullopt;
  auto secret = clientSecret(ctx.cacheDir);
  if (!secret.ok()) {
    std::fprintf(stderr, "thinfarm-ld: note: %s; the link memo is off\n",
                 secret.error().message.c_str());
    return std::nullopt;
  }
  auto key = memoKey(MemoIdentity{*secret, memoToolchain(ctx.toolchain.lld)}, cmd, inputs, threads);
  if (!key.ok())
    return std::nullopt;
  return std::move(*key);
}

std::vector<std::string> incbinFiles(const ModuleFactsMap &facts) {
  std::set<std::string> paths;
  for (const auto &[id, f] : facts)
    paths.insert(f.incbins.begin(), f.incbins.end());
  return {paths.begin(), paths.end()};
}

// Whether any operand names bitcode, directly or in an archive: decides only
// whether a fall-back is worth a notice.
bool mentionsBitcode(const std::vector<std::string> &args) {
  for (const std::string &a : args) {
    if (a.empty() || a[0] == '-')
      continue;
    auto bytes = Blob::mapFile(a[0] == '@' ? a.substr(1) : a);
    if (!bytes)
      continue;
    FileKind kind = classify(bytes->bytes());
    if (kind == FileKind::Bitcode)
      return true;
    if (a[0] == '@')
      if (mentionsBitcode(tokenizeResponseFile(bytes->bytes())))
        return true;
    if (kind == FileKind::Archive)
      if (auto ar = readArchive(a, *bytes))
        for (const ArchiveMember &m : ar->members)
          if (classify(m.bytes.bytes()) == FileKind::Bitcode)
            return true;
  }
  return false;
}

// $THINFARM_TIMING: one stderr line per stage with its wall time.
class StageClock {
public:
  explicit StageClock(bool on) : on_(on), last_(std::chrono::steady_clock::now()) {}
  void lap(const char *stage) {
    auto now = std::chrono::steady_clock::now();
    if (on_)
      std::fprintf(stderr, "thinfarm-ld: %-12s %8.3f s\n", stage,
                   std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }
  // This process's peak resident set (its lld children are not in it).
  void peakRss() const {
    struct rusage ru {};
    if (on_ && ::getrusage(RUSAGE_SELF, &ru) == 0)
      std::fprintf(stderr, "thinfarm-ld: peak RSS %ld MB\n", ru.ru_maxrss / 1024);
  }

private:
  bool on_;
  std::chrono::steady_clock::time_point last_;
};

// Before the thin link has succeeded, nothing is thinfarm's to report: an
// option value or an input that lld rejects (or that thinfarm cannot read)
// makes the link lld's, unchanged, so the user sees lld's own diagnostics
// and exit status. An Unimplemented case still gets its one-line notice.
Result<Outcome> lldsToReport(Error e) {
  if (e.kind == ErrorKind::Failed)
    return Outcome(PassThrough{});
  return e;
}

// `transcript` collects what the link prints (lld's warnings from the thin
// link, the backends and the reassembly); it is printed once the link is
// done, or before a hard error, and dropped when the link falls back to
// stock lld late, which prints them again itself.
Result<Outcome> splitLink(const DriverContext &ctx, const std::vector<std::string> &args,
                          std::string &transcript) {
  StageClock clock(ctx.timing);
  auto parsed = parseCommandLine(args);
  if (!parsed)
    return lldsToReport(std::move(parsed).error());
  LinkCommand cmd = std::move(*parsed);
  if (cmd.informational)
    return Outcome(PassThrough{});
  auto expanded = expandInputs(cmd);
  if (!expanded)
    return lldsToReport(std::move(expanded).error());
  Inputs inputs = std::move(*expanded);
  if (inputs.modules.empty())
    return Outcome(PassThrough{});
  TF_CHECK(checkSplittable(inputs));
  clock.lap("parse+expand");
  unsigned threads = ctx.threads ? ctx.threads : cmd.threads ? cmd.threads : defaultThreads();
  FarmConnection farm = FarmConnection::open(ctx);
  std::optional<MemoKey> memo = linkMemoKey(ctx, farm.client(), cmd, inputs, threads);
  if (memo) {
    auto printed = replayMemo(*farm.client(), *memo, cmd.output);
    if (!printed.ok()) {
      farm.lost(printed.error().message);
      memo.reset();
    } else if (const std::optional<std::string> &transcript = *printed) {
      std::fputs(transcript->c_str(), stderr);
      clock.lap("memo hit");
      return Outcome(Linked{cmd.output, 0, {}, true});
    }
  }
  clock.lap("memo");
  TF_TRY(Scratch scratch, Scratch::create(ctx));
  // The thin link (one core, in lld) overlaps the inspection (the others).
  TF_TRY(PendingThinLink pending, PendingThinLink::start(ctx.toolchain, cmd, scratch.path()));
  auto inspected = inspectModules(inputs.modules, threads);
  if (!inspected)
    return lldsToReport(std::move(inspected).error());
  ModuleFactsMap facts = std::move(*inspected);
  TF_TRY(bool thin, isThinLink(facts));
  if (!thin)
    return Outcome(PassThrough{});
  clock.lap("inspect");
  // The rest of the thin link keeps one core busy: the other sends ahead.
  sendInputsAhead(farm, cmd, inputs);
  TF_TRY(std::optional<ThinLinkResult> thinLinked, pending.finish());
  if (!thinLinked) // lld rejected the link: lld reports it, on the original command
    return Outcome(PassThrough{});
  ThinLinkResult thinLink = std::move(*thinLinked);
  transcript = thinLink.diagnostics;
  clock.lap("thin link");
  LazyInputs lazy(inputs);
  TF_CHECK(lazy.checkBitcodePlacement(thinLink.extractions, cmd.undefinedSymbols));
  TF_CHECK(completeShards(thinLink, facts, threads));
  clock.lap("shards");
  TF_TRY(std::vector<BackendJob> jobs, planJobs(thinLink, inputs, facts));
  clock.lap("plan");
  auto keep = [&](const BackendJob &job, BackendOutput &&out) {
    return keepNative(scratch.path(), job, std::move(out));
  };
  TF_TRY(RunResult run, runBackends(farm, ctx, cmd, jobs, threads, keep));
  clock.lap("backends");
  transcript += backendDiagnostics(ctx.toolchain, run.natives);
  TF_TRY(std::string printed,
         assemble(ctx.toolchain,
                  AssembleInput{cmd, inputs, facts, thinLink, run.natives, scratch.path(), lazy,
                                [&](const char *step) { clock.lap(step); }}));
  transcript += printed;
  std::fputs(transcript.c_str(), stderr);
  clock.lap("check+rename");
  if (memo && farm.client()) { // (a farm lost on the way gets no record)
    recordMemo(*farm.client(), *memo, cmd.output, incbinFiles(facts), transcript);
    clock.lap("memo record");
  }
  clock.peakRss();
  return Outcome(Linked{cmd.output, thinLink.modules.size(), std::move(run)});
}

// One THINFARM_LOG line (llvm::json, attributes in the order written).
template <class Fill> std::string jsonLine(Fill fill) {
  std::string text;
  llvm::raw_string_ostream os(text);
  llvm::json::OStream j(os);
  j.object([&] { fill(j); });
  os.flush();
  return text;
}

// $THINFARM_LOG: one JSON line per ThinLTO link, appended with one write so
// concurrent links (make -j) never interleave.
void appendLog(const DriverContext &ctx, const std::string &line) {
  if (ctx.logPath.empty())
    return;
  int fd = ::open(ctx.logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::fprintf(stderr, "thinfarm-ld: warning: cannot open THINFARM_LOG %s\n",
                 ctx.logPath.c_str());
    return;
  }
  if (!writeAll(fd, line + "\n", ctx.logPath).ok())
    std::fprintf(stderr, "thinfarm-ld: warning: cannot write THINFARM_LOG %s\n",
                 ctx.logPath.c_str());
  ::close(fd);
}

std::string outputOf(const std::vector<std::string> &args) {
  auto cmd = parseCommandLine(args);
  return cmd ? cmd->output : std::string();
}

} // namespace

DriverContext DriverContext::fromEnvironment() {
  DriverContext ctx;
  ctx.toolchain = Toolchain::fromEnvironment();
  // Scratch files are many and short-lived: tmpfs unless TMPDIR says otherwise.
  if (const char *t = std::getenv("TMPDIR"); t && *t)
    ctx.tempDir = t;
  else if (::access("/dev/shm", W_OK | X_OK) == 0)
    ctx.tempDir = "/dev/shm";
  if (const char *k = std::getenv("THINFARM_KEEP_TEMPS"); k && *k && std::string(k) != "0")
    ctx.keepTemps = true;
  if (const char *t = std::getenv("THINFARM_TIMING"); t && *t && std::string(t) != "0")
    ctx.timing = true;
  if (const char *l = std::getenv("THINFARM_LOG"); l && *l)
    ctx.logPath = l;
  if (const char *t = std::getenv("THINFARM_TRACE_COSTS"); t && *t)
    ctx.costTrace = t;
  auto setting = [](const char *env, std::string_view config) {
    const char *v = std::getenv(env);
    return v && *v ? std::string(v) : configValue(config);
  };
  ctx.coordinator = setting("THINFARM_COORDINATOR", "coordinator");
  ctx.keyFile = setting("THINFARM_KEY", "key");
  ctx.coordinatorKey = setting("THINFARM_COORDINATOR_KEY", "coordinator-key");
  ctx.cacheDir = defaultCacheDir();
  if (const char *s = std::getenv("THINFARM_CACHE_SIZE"); s && *s)
    ctx.cacheSize = s;
  ctx.programDir = thinfarm::programDir();
  ctx.progress = ::isatty(2);
  if (const char *j = std::getenv("THINFARM_JOBS"); j && *j)
    ctx.threads = static_cast<unsigned>(std::strtoul(j, nullptr, 10));
  return ctx;
}

int linkerMain(const DriverContext &ctx, const std::vector<std::string> &args) {
  auto start = std::chrono::steady_clock::now();
  initializeTargets();
  std::string transcript;
  auto outcome = splitLink(ctx, args, transcript);
  if (outcome.ok()) {
    if (const auto *linked = std::get_if<Linked>(&*outcome)) {
      double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      char seconds[32];
      std::snprintf(seconds, sizeof seconds, "%.3f", wall);
      const RunResult &run = linked->run;
      appendLog(ctx, jsonLine([&](llvm::json::OStream &j) {
                  j.attribute("output", linked->output);
                  j.attribute("modules", static_cast<int64_t>(linked->modules));
                  j.attribute("memo_hit", linked->memoHit);
                  j.attribute("jobs_local", static_cast<int64_t>(run.local));
                  j.attribute("jobs_remote", static_cast<int64_t>(run.remote));
                  j.attribute("cache_hits", static_cast<int64_t>(run.cacheHits));
                  j.attribute("backends_run", static_cast<int64_t>(run.ran.size()));
                  j.attribute("merged", static_cast<int64_t>(run.merged));
                  j.attributeBegin("wall_seconds");
                  j.rawValue(seconds);
                  j.attributeEnd();
                  j.attributeObject("workers", [&] {
                    for (const auto &[name, n] : run.workers)
                      j.attribute(name, static_cast<int64_t>(n));
                  });
                  // Which backends ran, when few did (an incremental relink).
                  if (run.ran.size() <= 256)
                    j.attributeArray("ran", [&] {
                      for (const std::string &id : run.ran)
                        j.value(id);
                    });
                }));
      return 0;
    }
    execLld(ctx.toolchain, args);
  }
  const Error &e = outcome.error();
  if (e.kind == ErrorKind::Unimplemented) {
    // Only worth a notice when the link would have been split.
    if (mentionsBitcode(args)) {
      std::fprintf(stderr, "thinfarm-ld: note: %s; linking with %s instead\n", e.message.c_str(),
                   ctx.toolchain.lld.c_str());
      appendLog(ctx, jsonLine([&](llvm::json::OStream &j) {
                  j.attribute("output", outputOf(args));
                  j.attribute("fallback", e.message);
                }));
    }
    execLld(ctx.toolchain, args);
  }
  std::fputs(transcript.c_str(), stderr);
  std::fprintf(stderr, "thinfarm-ld: error: %s\n", e.message.c_str());
  return 1;
}

} // namespace thinfarm
