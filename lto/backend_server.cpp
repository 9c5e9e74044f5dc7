// The backend child: one ThinLTO backend at a time, for a worker.
//
// A worker runs every backend in a child process (thinfarm-backend) so that a
// crash, an abort or an out-of-memory in LLVM on bad bitcode fails that job
// and nothing else. The child lives for many jobs: LLVM's start-up (target
// registration, option parsing) is paid once per configuration. LLVM's
// command-line options are process-wide, so a child serves one backend
// configuration; the worker starts another child for another one.
//
// Protocol: wire frames on stdin (backendRequest) and stdout (backendReply).
// Inputs are files the worker laid out; the native object is written to the
// request's output path. A crash prints one line naming the module to stderr
// (crash.cpp) and exits; the worker reads it from there.
#include "lto/backend_server.h"

#include "backend_id.h"
#include "lto/backend.h"
#include "lto/backend_key.h"
#include "lto/build_id.h"
#include "wire/frame.h"

#include <llvm/Config/llvm-config.h>

#include <chrono>
#include <optional>

#include <unistd.h>

namespace thinfarm {

std::string backendIdentity() {
  return "LLVM " LLVM_VERSION_STRING " " LLVM_DEFAULT_TARGET_TRIPLE " build-id/" + llvmBuildId() +
         " thinfarm-backend/" THINFARM_BACKEND_ID;
}

namespace {

Result<BackendJob> loadJob(const wire::BackendRequest &req) {
  BackendJob job;
  job.task = req.task;
  TF_TRY(Blob bitcode, Blob::mapFile(req.modulePath));
  job.module = Module{req.module, std::move(bitcode)};
  TF_TRY(job.indexShard, Blob::mapFile(req.shardPath));
  for (size_t i = 0; i < req.importIds.size(); ++i) {
    TF_TRY(Blob b, Blob::mapFile(req.importPaths[i]));
    job.imports.push_back(Module{req.importIds[i], std::move(b)});
  }
  return job;
}

// The key of the job the request describes, from the inputs as the worker
// checked them; none when the shard is not readable (the backend will say why).
std::optional<Digest> keyOf(const std::string &identity, const wire::BackendRequest &req,
                            const BackendJob &job) {
  BackendKeyInputs in;
  in.toolchain = identity;
  in.config = &req.config;
  in.moduleId = req.module;
  in.module = req.moduleDigest;
  in.shard = job.indexShard.bytes();
  for (size_t i = 0; i < req.importIds.size(); ++i)
    in.imports.push_back({req.importIds[i], req.importDigests[i]});
  for (const wire::FileRef &f : req.incbins)
    in.incbins.push_back({f.path, f.content});
  auto key = backendKey(in);
  if (!key.ok())
    return std::nullopt;
  return *key;
}

wire::BackendReply serve(std::optional<BackendProcess> &process, const std::string &identity,
                         const wire::BackendRequest &req) {
  wire::BackendReply reply;
  auto fail = [&](const Error &e) {
    reply.failed = true;
    reply.message = e.message;
    return reply;
  };
  auto start = std::chrono::steady_clock::now();
  if (!process) {
    // A worker's child: the configuration came from a client over the wire.
    if (Status st = checkRemoteOptions(req.config); !st.ok())
      return fail(Error{ErrorKind::Denied, "this worker refuses " + st.error().message});
    auto p = BackendProcess::initialize(req.config);
    if (!p.ok())
      return fail(p.error());
    process.emplace(std::move(*p));
  } else if (!(process->config() == req.config)) {
    return fail(failed("this backend child serves another configuration"));
  }
  auto job = loadJob(req);
  if (!job.ok())
    return fail(job.error());
  if (auto key = keyOf(identity, req, *job))
    reply.key = *key;
  if (!req.workDir.empty() && ::chdir(req.workDir.c_str()) != 0)
    return fail(failed("cannot enter " + req.workDir));
  auto out = process->run(*job);
  if (!out.ok())
    return fail(out.error());
  reply.diagnostics = std::move(out->diagnostics);
  if (auto w = writeFile(req.outputPath, out->object); !w.ok())
    return fail(w.error());
  reply.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return reply;
}

} // namespace

int backendServerMain() {
  std::optional<BackendProcess> process;
  const std::string identity = backendIdentity();
  for (;;) {
    auto msg = wire::readFrame(0);
    if (!msg.ok()) {
      if (msg.error().kind == ErrorKind::Disconnected)
        return 0; // the worker closed our input: done
      std::fprintf(stderr, "thinfarm-backend: error: %s\n", msg.error().message.c_str());
      return 1;
    }
    const auto *req = msg->get<wire::BackendRequest>();
    if (!req) {
      std::fprintf(stderr, "thinfarm-backend: error: expected a backend request, got %s\n",
                   wire::kindName(msg->body));
      return 1;
    }
    wire::Message reply{msg->requestId, serve(process, identity, *req)};
    if (!wire::writeFrame(1, reply).ok())
      return 1;
  }
}

} // namespace thinfarm
