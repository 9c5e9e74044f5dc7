// Writes the wire's seed corpora (make-seeds.sh runs it): one real encoded
// message of each kind, as the daemons send them, for wire_codec; the same
// as a pipe stream of length-prefixed frames for wire_frame; and scripts for
// blob_chunk (an upload in order, out of order, spoiled, by two peers).
// usage: thinfarm-fuzz-seeds CORPUS_DIR   (writes CORPUS_DIR/<target>/<name>)
#include "base/file.h"
#include "wire/messages.h"

#include <cstdio>
#include <filesystem>

using namespace thinfarm;
using namespace thinfarm::wire;

namespace {

Digest digestOf(std::string_view s) { return Digest::of(s); }

BackendConfig config() {
  BackendConfig c;
  c.optLevel = 2;
  c.cgOptLevel = 2;
  c.pic = true;
  c.llvmOptions = {"-mcpu=x86-64-v2", "-import-instr-limit=5"};
  c.mllvm = {"-import-instr-limit=5"};
  return c;
}

JobSpec job() {
  JobSpec j;
  j.task = 3;
  j.module = {"vmlinux.a(main.o at 1234)", digestOf("bitcode")};
  j.shard = digestOf("shard");
  j.imports = {{"lib/string.o", digestOf("string bitcode")}};
  j.incbins = {{"kernel/config_data.gz", digestOf("config")}};
  j.cost = 4096;
  j.key = digestOf("backend key");
  return j;
}

std::vector<std::pair<std::string, Message>> messages() {
  std::vector<std::pair<std::string, Message>> ms;
  auto add = [&](std::string name, Body b) { ms.push_back({std::move(name), Message{7, std::move(b)}}); };
  add("error", ErrorMsg{ErrorKind::Overloaded, "too many sessions"});
  add("registerWorker", RegisterWorker{"build-3", "llvm 19.1.7 abcdef", 2});
  add("registered", Registered{2});
  add("heartbeat", Heartbeat{});
  add("findMissing", FindMissing{{digestOf("a"), digestOf("bb")}});
  add("missing", Missing{{digestOf("bb")}});
  PutChunk put;
  put.digest = digestOf("hello blob");
  put.bytes = "hello blob";
  add("putChunk", put);
  PutAck ack;
  ack.digest = put.digest;
  add("putAck", ack);
  GetChunk get;
  get.digest = Digest{digestOf("x").sha256, 3u << 20};
  get.offset = 1u << 20;
  add("getChunk", get);
  Chunk chunk;
  chunk.digest = put.digest;
  chunk.bytes = put.bytes;
  add("chunk", chunk);
  Session s;
  s.sessionId = 11;
  s.toolchain = "llvm 19.1.7 abcdef";
  s.output = "vmlinux.o";
  s.config = config();
  s.jobs = {job(), job()};
  add("submit", s);
  add("endSession", EndSession{11});
  add("runJob", RunJob{5, config(), job()});
  JobResult r;
  r.sessionId = 11;
  r.jobId = 5;
  r.task = 3;
  r.native = digestOf("native");
  r.nativeBytes = "native";
  r.diagnostics = {{Severity::Warning, "inlining failed"}};
  r.seconds = 0.25;
  r.worker = "build-3";
  r.key = digestOf("backend key");
  add("jobResult", r);
  JobResult failedResult = r;
  failedResult.error = ErrorMsg{ErrorKind::Failed, "backend crashed"};
  add("jobResult-failed", failedResult);
  add("progress", Progress{11, 3, 1, 2, 4, 2});
  BackendRequest br;
  br.config = config();
  br.module = "main.o";
  br.modulePath = "in/0";
  br.shardPath = "in/0.thinlto.bc";
  br.importIds = {"lib/string.o"};
  br.importPaths = {"in/1"};
  br.workDir = "/dev/shm/slot0";
  br.outputPath = "out/0.o";
  br.task = 3;
  br.moduleDigest = digestOf("bitcode");
  br.importDigests = {digestOf("string bitcode")};
  br.incbins = {{"kernel/config_data.gz", digestOf("config")}};
  add("backendRequest", br);
  add("backendReply", BackendReply{false, "", {{Severity::Remark, "r"}}, 0.5, digestOf("k")});
  add("lookupLink", LookupLink{digestOf("memo key")});
  LinkMemo memo;
  memo.key = digestOf("memo key");
  memo.found = true;
  memo.output = digestOf("vmlinux.o bytes");
  memo.incbins = {{"kernel/config_data.gz", digestOf("config")}};
  memo.transcript = "ld.lld: warning: something\n";
  memo.mode = 0755;
  add("linkMemo", memo);
  RecordLink record;
  static_cast<LinkMemo &>(record) = memo;
  add("recordLink", record);
  add("getStats", GetStats{});
  StoreStats st;
  st.entries = 10;
  st.bytes = 1 << 20;
  st.budget = 5ull << 30;
  st.workers = {{"build-3", 2, 1, 40}};
  add("storeStats", st);
  Batch batch;
  batch.messages = {Message{1, ack}, Message{2, ack}};
  add("batch", batch);
  return ms;
}

std::string le32(size_t n) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i)
    s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

void put(const std::string &dir, const std::string &name, const std::string &bytes) {
  std::filesystem::create_directories(dir);
  if (!writeFileAtomic(dir + "/" + name, bytes).ok())
    std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), name.c_str());
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  std::string root = argv[1];
  std::string stream;
  for (const auto &[name, m] : messages()) {
    std::string frame = encode(m);
    put(root + "/wire_codec", name, frame);
    stream += le32(frame.size()) + frame;
    if (name == "backendRequest" || name == "backendReply") // what the pipe carries
      put(root + "/wire_frame", name, le32(frame.size()) + frame);
  }
  put(root + "/wire_frame", "every-kind", stream);
  put(root + "/wire_frame", "truncated", stream.substr(0, 100));

  // blob_chunk scripts (blob_chunk_fuzz.cpp): op byte (bit 7: peer b; low
  // bits: 0 raw frame, 1 chunk of a known blob, 2 fetch, 3 findMissing, 4 idle).
  auto chunk = [](int peer, int blob, int index, int spoil) {
    std::string op{static_cast<char>(peer << 7 | 1), static_cast<char>(blob),
                   static_cast<char>(index), static_cast<char>(spoil)};
    if (spoil % 6 != 0) // where: a 16-bit position or length
      op += std::string{5, 0};
    return op;
  };
  auto fetch = [](int blob, int index) {
    return std::string{2, static_cast<char>(blob), static_cast<char>(index << 1)};
  };
  std::string ask = {3, 7};
  put(root + "/blob_chunk", "small-upload",
      ask + chunk(0, 0, 0, 0) + ask + fetch(0, 0));
  put(root + "/blob_chunk", "large-upload",
      ask + chunk(0, 1, 0, 0) + chunk(0, 1, 1, 0) + ask + fetch(1, 0) + fetch(1, 1) + fetch(1, 2));
  put(root + "/blob_chunk", "out-of-order", chunk(0, 1, 1, 0) + chunk(0, 1, 0, 0) + chunk(0, 1, 1, 0));
  put(root + "/blob_chunk", "spoiled", chunk(0, 1, 0, 1) + chunk(0, 1, 1, 0) + fetch(1, 0));
  put(root + "/blob_chunk", "two-peers",
      chunk(0, 1, 0, 0) + chunk(1, 1, 0, 0) + chunk(1, 1, 1, 0) + chunk(0, 1, 1, 0) + fetch(1, 1));
  put(root + "/blob_chunk", "abandoned", chunk(0, 1, 0, 0) + std::string{4} + chunk(0, 1, 1, 0));
  std::string frame = encode(Message{9, GetChunk{{digestOf("hello blob"), 0}}});
  put(root + "/blob_chunk", "raw-frame",
      std::string{0, static_cast<char>(frame.size()), static_cast<char>(frame.size() >> 8)} + frame);
  return 0;
}
