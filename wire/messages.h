// The wire's messages as plain C++ values. wire/thinfarm.capnp is the
// authoritative description (and documents the conversations); these structs
// mirror it field for field so that no layer but wire/ sees Cap'n Proto.
#pragma once

#include "base/backend.h"
#include "base/digest.h"
#include "base/result.h"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace thinfarm::wire {

// Largest frame a socket accepts; a blob chunk plus its envelope fits.
constexpr size_t kMaxFrame = 4u << 20;
// Blob chunks: the unit of upload and download.
constexpr size_t kChunk = 1u << 20;
// Chunks a sender keeps unacknowledged (upload) or a receiver keeps requested
// (download) per stream.
constexpr size_t kWindow = 8;

struct ErrorMsg {
  ErrorKind kind = ErrorKind::Failed;
  std::string message;
};

struct ModuleRef {
  std::string identifier;
  Digest bitcode;
};

struct FileRef {
  std::string path; // relative to the build directory, never leaving it
  Digest content;
};

// Whether a path can travel as a FileRef: relative and without "..", so a
// worker can lay it out under a directory of its own.
inline bool staysInside(const std::string &path) {
  if (path.empty() || path[0] == '/')
    return false;
  for (const auto &part : std::filesystem::path(path))
    if (part == "..")
      return false;
  return true;
}

struct JobSpec {
  uint32_t task = 0;
  ModuleRef module;
  Digest shard;
  std::vector<ModuleRef> imports;
  std::vector<FileRef> incbins;
  uint64_t cost = 0;
  bool noop = false;
  Digest key; // the client's backend key; size 0: none
};

struct RegisterWorker {
  std::string name;
  std::string toolchain;
  uint32_t slots = 0;
};

struct Registered {
  uint32_t slots = 0;
};

struct Heartbeat {};

struct FindMissing {
  std::vector<Digest> digests;
};

struct Missing {
  std::vector<Digest> digests;
};

struct BlobChunk {
  Digest digest;
  uint64_t offset = 0;
  std::string bytes;
};

struct PutChunk : BlobChunk {};
struct Chunk : BlobChunk {};

struct ChunkRef {
  Digest digest;
  uint64_t offset = 0;
};

struct PutAck : ChunkRef {};
struct GetChunk : ChunkRef {};

struct Session {
  uint64_t sessionId = 0;
  std::string toolchain;
  std::string output;
  BackendConfig config;
  std::vector<JobSpec> jobs;
  uint32_t part = 0; // > 0: more jobs for the session of this id (see thinfarm.capnp)
};

struct EndSession {
  uint64_t sessionId = 0;
};

struct RunJob {
  uint64_t jobId = 0;
  BackendConfig config;
  JobSpec spec;
};

struct JobResult {
  uint64_t sessionId = 0;
  uint64_t jobId = 0;
  uint32_t task = 0;
  std::optional<ErrorMsg> error; // set: the job failed
  Digest native;
  std::vector<Diagnostic> diagnostics;
  double seconds = 0;
  std::string worker;
  bool merged = false;
  std::string nativeBytes; // the native object inline, when at most kChunk bytes
  Digest key;              // the worker's backend key (W -> K)
  bool cached = false;     // answered from the action cache (K -> C)
};

// What a result takes on the wire besides its inline object, from above.
inline size_t resultTextBound(const JobResult &r) {
  size_t n = 1024 + r.worker.size() + (r.error ? r.error->message.size() : 0);
  for (const Diagnostic &d : r.diagnostics)
    n += 32 + d.text.size();
  return n;
}

// Whether a result fits one frame with `inlineBytes` of its object riding
// with it (else the object goes as a blob; without it, when even the text is
// too much, the result cannot go at all).
inline bool fitsFrame(const JobResult &r, size_t inlineBytes) {
  return resultTextBound(r) + inlineBytes <= kMaxFrame - (64u << 10);
}

struct Progress {
  uint64_t sessionId = 0;
  uint32_t done = 0, merged = 0, running = 0, queued = 0, workers = 0;
};

struct BackendRequest {
  BackendConfig config;
  std::string module;
  std::string modulePath;
  std::string shardPath;
  std::vector<std::string> importIds;
  std::vector<std::string> importPaths;
  std::string workDir;
  std::string outputPath;
  uint32_t task = 0;
  Digest moduleDigest;
  std::vector<Digest> importDigests;
  std::vector<FileRef> incbins;
};

struct BackendReply {
  bool failed = false;
  std::string message;
  std::vector<Diagnostic> diagnostics;
  double seconds = 0;
  Digest key;
};

struct LookupLink {
  Digest key;
};

struct LinkMemo {
  Digest key;
  bool found = false;
  Digest output;
  std::vector<FileRef> incbins; // a zero digest: the file did not exist
  std::string transcript;
  uint32_t mode = 0644;
};

struct RecordLink : LinkMemo {};

struct GetStats {};

// An admin's request: no new jobs for the worker of this name (drain), or
// jobs again (drain = false). Its running jobs finish. Answered with StoreStats.
struct DrainWorker {
  std::string name;
  bool drain = true;
};

// One registered worker, by the name it has on the allow-list (with keys) or
// gave itself (without).
struct WorkerStats {
  std::string name;
  uint32_t slots = 0, running = 0;
  uint64_t done = 0; // results accepted since it registered
  uint32_t probation = 0;   // results left to check before delivery (verification.h)
  bool quarantined = false; // its results disagreed with other workers': no more jobs
  bool draining = false;    // an admin drained it: no new jobs
  bool operator==(const WorkerStats &) const = default;
};

// The answer to GetStats: the coordinator's store, in numbers, and its workers.
struct StoreStats {
  uint64_t entries = 0, bytes = 0, budget = 0; // now
  uint64_t actionHits = 0, actionMisses = 0, memoHits = 0, memoMisses = 0;
  uint64_t bytesStored = 0, bytesServed = 0;             // blob bytes written / handed out
  uint64_t evictions = 0, evictedBytes = 0, corrupt = 0; // corrupt: entries dropped on read
  std::vector<WorkerStats> workers;                      // by name
};

// The coordinator's word that a job's other run won: the worker stops it.
struct CancelJob {
  uint64_t jobId = 0;
};

struct Message;
// Several messages for one peer in one frame (never nested).
struct Batch {
  std::vector<Message> messages;
};

using Body = std::variant<ErrorMsg, RegisterWorker, Heartbeat, FindMissing, Missing, PutChunk,
                          PutAck, GetChunk, Chunk, Session, EndSession, RunJob, JobResult, Progress,
                          BackendRequest, BackendReply, Batch, LookupLink, LinkMemo, RecordLink,
                          GetStats, StoreStats, Registered, DrainWorker, CancelJob>;

struct Message {
  uint64_t requestId = 0;
  Body body;

  template <class T> const T *get() const { return std::get_if<T>(&body); }
  template <class T> T *get() { return std::get_if<T>(&body); }
};

// The name of a message's kind, for errors and logs ("putChunk").
const char *kindName(const Body &body);

// One frame's bytes. encode() never fails; decode() names what is wrong with
// a malformed frame (never asserts on peer input).
std::string encode(const Message &m);
Result<Message> decode(std::string_view frame);

inline Message errorReply(uint64_t requestId, ErrorKind kind, std::string text) {
  return Message{requestId, ErrorMsg{kind, std::move(text)}};
}

} // namespace thinfarm::wire
