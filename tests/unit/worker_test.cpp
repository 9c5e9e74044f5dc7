// A worker's job path end to end, all real: a coordinator (ZeroMQ over ipc,
// RocksDB in a temporary directory), a Worker with a store of its own (so it
// fetches the job's blobs over the wire) running the real thinfarm-backend,
// and the FarmClient that thinfarm-ld uses. The job is a module ld.lld-19
// cut an index shard for; the native object must be the one lld's own
// backend writes (its --thinlto-cache-dir entry), a second run must come from
// the action cache, and a corrupt module must fail naming the module.
// The worker runs its backend in the bubblewrap sandbox, as thinfarm-worker
// does: a module whose asm reaches for a file that is not one of its job's
// inputs fails, and no byte of that file comes back or is stored.
#include "farm_fixture.h"
#include "lto/backend_server.h"
#include "lto/run_farm.h"
#include "worker/worker.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace thinfarm {
namespace {

using namespace std::chrono_literals;

class WorkerTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_TRUE(coordinator_.running());
    auto store = Store::open(dir_.file("worker-store"));
    ASSERT_TRUE(store.ok()) << store.error().message;
    workerStore_.emplace(std::move(*store));
    WorkerOptions w;
    w.coordinator = coordinator_.endpoint();
    w.slots = 1;
    w.name = "w1";
    w.backendProgram = THINFARM_BACKEND_PROGRAM;
    w.scratch = dir_.file("staging");
    auto sandbox = Sandbox::probe(THINFARM_BACKEND_PROGRAM);
    ASSERT_TRUE(sandbox.ok()) << sandbox.error().message;
    w.sandbox = std::move(*sandbox);
    auto complete = completeOptions(std::move(w));
    ASSERT_TRUE(complete.ok()) << complete.error().message;
    toolchain_ = complete->toolchain;
    worker_ = std::make_unique<Worker>(ctx_, *workerStore_, std::move(*complete));
    Status started = worker_->start(10s);
    ASSERT_TRUE(started.ok()) << started.error().message;

    // m.o, and the shard and native object ld.lld-19 makes of it in a -r link.
    dir_.write("m.c", "static int v[4];\n"
                      "int get(int i) { return v[i & 3]; }\n"
                      "void put(int i, int x) { v[i & 3] = x; }\n");
    ASSERT_EQ(test::run("cd " + dir_.path() +
                        " && clang-19 -O2 -flto=thin -c m.c"
                        " && ld.lld-19 -r -o idx.o m.o --thinlto-index-only"
                        " && ld.lld-19 -r -o ref.o m.o --thinlto-cache-dir=cache"),
              "");
    module_ = test::readAll(dir_.file("m.o"));
    shard_ = test::readAll(dir_.file("m.o.thinlto.bc"));
    for (const auto &e : std::filesystem::directory_iterator(dir_.file("cache")))
      if (e.path().filename().string().starts_with("llvmcache-"))
        lldNative_ = test::readAll(e.path());
    ASSERT_FALSE(lldNative_.empty()) << "ld.lld-19 left no cache entry";
  }
  void TearDown() override { worker_.reset(); }

  // One job for m.o (the task number 3), as thinfarm-ld would submit it.
  FarmSubmission submission(const std::string &module) { return submission("m.o", module, shard_); }
  FarmSubmission submission(const std::string &id, const std::string &module,
                            const std::string &shard) {
    FarmSubmission sub;
    sub.toolchain = toolchain_;
    sub.output = "out.o";
    sub.config.relocatable = true;
    wire::JobSpec spec;
    spec.task = 3;
    spec.module = {id, Digest::of(module)};
    spec.shard = Digest::of(shard);
    spec.cost = module.size();
    auto key = jobKey(sub, spec, shard);
    EXPECT_TRUE(key.ok());
    spec.key = *key;
    sub.jobs.push_back(spec);
    sub.blobs = {{spec.module.bitcode, module}, {spec.shard, shard}};
    return sub;
  }

  Result<FarmOutcome> run(const FarmSubmission &sub, std::vector<FarmResult> &results) {
    return test::runFarmClient(ctx_, coordinator_.endpoint(), sub, results);
  }

  test::ScratchDir dir_;
  wire::Context ctx_;
  test::InProcessCoordinator coordinator_{ctx_, dir_, "coordinator"};
  std::optional<Store> workerStore_;
  std::unique_ptr<Worker> worker_;
  std::string toolchain_, module_, shard_, lldNative_;
};

TEST_F(WorkerTest, RunsTheJobAsLldDoesThenTheCacheAnswers) {
  EXPECT_EQ(toolchain_, backendIdentity());
  std::vector<FarmResult> results;
  auto outcome = run(submission(module_), results);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  EXPECT_TRUE(outcome->unfinished.empty()) << outcome->why;
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].task, 3u);
  EXPECT_EQ(results[0].worker, "w1");
  EXPECT_FALSE(results[0].cached);
  EXPECT_TRUE(results[0].native == lldNative_)
      << "the worker's native object differs from ld.lld-19's own ("
      << results[0].native.size() << " vs " << lldNative_.size() << " bytes)";

  // The same job again: from the action cache, the same bytes.
  results.clear();
  outcome = run(submission(module_), results);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].cached);
  EXPECT_TRUE(results[0].native == lldNative_);
}

TEST_F(WorkerTest, CorruptModuleFailsTheLinkNamingTheModule) {
  std::string corrupt = module_;
  corrupt.resize(corrupt.size() / 2); // a truncated bitcode file
  std::vector<FarmResult> results;
  auto outcome = run(submission(corrupt), results);
  ASSERT_FALSE(outcome.ok()) << "a truncated module was linked";
  EXPECT_NE(outcome.error().message.find("m.o"), std::string::npos) << outcome.error().message;
  EXPECT_TRUE(results.empty());
}

// A client that skips thinfarm-ld's own check: the worker's backend child
// refuses LLVM options that would read or write its files, naming them.
TEST_F(WorkerTest, OptionsThatReachFilesAreRefused) {
  for (const std::string &opt : {std::string("@/etc/passwd"), std::string("-info-output-file=x"),
                                 std::string("-align-all-functions=/etc/passwd")}) {
    FarmSubmission sub = submission(module_);
    sub.config.llvmOptions = {opt};
    sub.jobs[0].key = *jobKey(sub, sub.jobs[0], shard_);
    std::vector<FarmResult> results;
    auto outcome = run(sub, results);
    ASSERT_FALSE(outcome.ok()) << opt << " was run";
    EXPECT_NE(outcome.error().message.find("this worker refuses the LLVM option '" + opt + "'"),
              std::string::npos)
        << outcome.error().message;
    EXPECT_EQ(outcome.error().message.find("root:"), std::string::npos) << "a file's text came back";
  }
}

// Every file under dir, bytes concatenated (a store's RocksDB files).
std::string allBytesUnder(const std::string &dir) {
  std::string all;
  for (const auto &e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file())
      all += test::readAll(e.path());
  return all;
}

// A client that declares none of the files its module asm .incbin's: a host
// file, a file in the host's /tmp, another job's staged input by its
// absolute path and by a path relative to the backend's working directory.
// Each job fails in the sandbox; no byte of those files is returned or
// stored; the worker then runs an honest job as before.
TEST_F(WorkerTest, UndeclaredIncbinFilesAreNotThere) {
  // A staged input of an earlier job (another client's, say).
  dir_.write("other.c", "int other(int x) { return x * 3; }\n");
  ASSERT_EQ(test::run("cd " + dir_.path() +
                      " && clang-19 -O2 -flto=thin -c other.c"
                      " && ld.lld-19 -r -o other-idx.o other.o --thinlto-index-only"),
            "");
  const std::string other = test::readAll(dir_.file("other.o"));
  std::vector<FarmResult> results;
  auto outcome = run(submission("other.o", other, test::readAll(dir_.file("other.o.thinlto.bc"))),
                     results);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  const std::string staged = dir_.file("staging/blobs/" + Digest::of(other).text());
  ASSERT_TRUE(std::filesystem::exists(staged)) << "the worker's staging layout changed";

  const std::string marker = "thinfarm-secret-" + Digest::of(dir_.path()).text();
  const std::string secret = dir_.write("secret", marker + marker);
  for (const std::string &path :
       {std::string("/etc/hostname"), secret, staged,
        "../../../blobs/" + Digest::of(other).text()}) {
    SCOPED_TRACE(path);
    dir_.write("evil.c", "asm(\".section .rodata.evil,\\\"a\\\"\\n"
                         ".globl evil\\nevil:\\n.incbin \\\"" + path + "\\\"\\n\");\n"
                         "int get(void) { return 7; }\n");
    // (clang reads the file too: the relative path names a copy here.)
    ASSERT_EQ(test::run("cd " + dir_.path() +
                        " && rm -f evil.o evil.o.thinlto.bc && mkdir -p c/c/c blobs"
                        " && cp other.o blobs/" + Digest::of(other).text() +
                        " && cd c/c/c && clang-19 -O2 -flto=thin -c ../../../evil.c -o ../../../evil.o"
                        " && cd ../../.. && ld.lld-19 -r -o evil-idx.o evil.o --thinlto-index-only"),
              "");
    std::string evil = test::readAll(dir_.file("evil.o"));
    std::string evilShard = test::readAll(dir_.file("evil.o.thinlto.bc"));
    ASSERT_FALSE(evilShard.empty());
    results.clear();
    outcome = run(submission("evil.o", evil, evilShard), results);
    if (outcome.ok()) {
      ADD_FAILURE() << "the job ran: its object has " << results.at(0).native.size() << " bytes";
      continue;
    }
    EXPECT_NE(outcome.error().message.find("evil.o"), std::string::npos)
        << outcome.error().message;
    EXPECT_NE(outcome.error().message.find("Could not find incbin file"), std::string::npos)
        << outcome.error().message;
    EXPECT_EQ(outcome.error().message.find(marker), std::string::npos);
    EXPECT_TRUE(results.empty());
  }
  for (const std::string &store : {dir_.file("worker-store"), dir_.file("coordinator-store")})
    EXPECT_EQ(allBytesUnder(store).find(marker), std::string::npos) << "a secret is in " << store;

  // The worker serves on, with the same bytes as lld's own backend.
  results.clear();
  outcome = run(submission(module_), results);
  ASSERT_TRUE(outcome.ok()) << outcome.error().message;
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].cached);
  EXPECT_TRUE(results[0].native == lldNative_);
}

} // namespace
} // namespace thinfarm
