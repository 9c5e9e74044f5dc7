// Messages to frames and back: wire/messages.h <-> wire/thinfarm.capnp.
//
// A frame is one unsegmented Cap'n Proto message (messageToFlatArray). Decode
// copies the frame into word-aligned memory, reads it with a traversal limit
// of the frame's own size (a hostile frame cannot make the reader loop), and
// checks what the schema cannot say: digests are 32 bytes, chunks at most
// kChunk. Any exception Cap'n Proto raises on a malformed frame becomes an
// Error naming the problem; nothing a peer sends can assert.
#include "wire/messages.h"

#include "wire/capnp_clang.h" // before any Cap'n Proto header
#include "wire/thinfarm.capnp.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>

namespace thinfarm::wire {

namespace cw = capnp_wire;

namespace {

// ---- encode -------------------------------------------------------------

void put(cw::Digest::Builder b, const Digest &d) {
  b.setSha256(capnp::Data::Reader(d.sha256.data(), d.sha256.size()));
  b.setSize(d.size);
}

cw::ErrorKind toWire(ErrorKind k) {
  switch (k) {
  case ErrorKind::Failed: return cw::ErrorKind::FAILED;
  case ErrorKind::Overloaded: return cw::ErrorKind::OVERLOADED;
  case ErrorKind::Disconnected: return cw::ErrorKind::DISCONNECTED;
  case ErrorKind::Unimplemented: return cw::ErrorKind::UNIMPLEMENTED;
  case ErrorKind::Denied: return cw::ErrorKind::DENIED;
  case ErrorKind::Exceeded: return cw::ErrorKind::EXCEEDED;
  }
  return cw::ErrorKind::FAILED;
}

cw::Severity toWire(Severity s) {
  switch (s) {
  case Severity::Error: return cw::Severity::ERROR;
  case Severity::Warning: return cw::Severity::WARNING;
  case Severity::Remark: return cw::Severity::REMARK;
  case Severity::Note: return cw::Severity::NOTE;
  }
  return cw::Severity::NOTE;
}

void putTexts(capnp::List<capnp::Text>::Builder b, const std::vector<std::string> &v) {
  for (size_t i = 0; i < v.size(); ++i)
    b.set(i, v[i]);
}

void put(cw::Error::Builder b, const ErrorMsg &e) {
  b.setKind(toWire(e.kind));
  b.setMessage(e.message);
}

void put(cw::BackendConfig::Builder b, const BackendConfig &c) {
  b.setOptLevel(c.optLevel);
  b.setCgOptLevel(c.cgOptLevel);
  b.setRelocatable(c.relocatable);
  b.setPic(c.pic);
  putTexts(b.initLlvmOptions(c.llvmOptions.size()), c.llvmOptions);
  putTexts(b.initMllvm(c.mllvm.size()), c.mllvm);
}

void put(cw::ModuleRef::Builder b, const ModuleRef &m) {
  b.setIdentifier(m.identifier);
  put(b.initBitcode(), m.bitcode);
}

void putFiles(capnp::List<cw::FileRef>::Builder b, const std::vector<FileRef> &files) {
  for (size_t i = 0; i < files.size(); ++i) {
    b[i].setPath(files[i].path);
    put(b[i].initContent(), files[i].content);
  }
}

void put(cw::JobSpec::Builder b, const JobSpec &j) {
  b.setTask(j.task);
  put(b.initModule(), j.module);
  put(b.initShard(), j.shard);
  auto imports = b.initImports(j.imports.size());
  for (size_t i = 0; i < j.imports.size(); ++i)
    put(imports[i], j.imports[i]);
  putFiles(b.initIncbins(j.incbins.size()), j.incbins);
  b.setCost(j.cost);
  b.setNoop(j.noop);
  put(b.initKey(), j.key);
}

void put(cw::LinkMemo::Builder b, const LinkMemo &m) {
  put(b.initKey(), m.key);
  b.setFound(m.found);
  put(b.initOutput(), m.output);
  putFiles(b.initIncbins(m.incbins.size()), m.incbins);
  b.setTranscript(m.transcript);
  b.setMode(m.mode);
}

void put(capnp::List<cw::Diagnostic>::Builder b, const std::vector<Diagnostic> &ds) {
  for (size_t i = 0; i < ds.size(); ++i) {
    b[i].setSeverity(toWire(ds[i].severity));
    b[i].setText(ds[i].text);
  }
}

void put(cw::BlobChunk::Builder b, const BlobChunk &c) {
  put(b.initDigest(), c.digest);
  b.setOffset(c.offset);
  b.setBytes(capnp::Data::Reader(reinterpret_cast<const capnp::byte *>(c.bytes.data()),
                                 c.bytes.size()));
}

void put(cw::ChunkRef::Builder b, const ChunkRef &c) {
  put(b.initDigest(), c.digest);
  b.setOffset(c.offset);
}

void putDigests(capnp::List<cw::Digest>::Builder b, const std::vector<Digest> &ds) {
  for (size_t i = 0; i < ds.size(); ++i)
    put(b[i], ds[i]);
}

void fill(cw::Envelope::Builder env, const Message &m);

struct Encoder {
  cw::Envelope::Builder env;
  void operator()(const Batch &m) {
    auto list = env.initBatch(static_cast<unsigned>(m.messages.size()));
    for (size_t i = 0; i < m.messages.size(); ++i)
      fill(list[i], m.messages[i]);
  }
  void operator()(const ErrorMsg &m) { put(env.initError(), m); }
  void operator()(const RegisterWorker &m) {
    auto b = env.initRegisterWorker();
    b.setName(m.name);
    b.setToolchain(m.toolchain);
    b.setSlots(m.slots);
  }
  void operator()(const Registered &m) { env.initRegistered().setSlots(m.slots); }
  void operator()(const Heartbeat &) { env.initHeartbeat(); }
  void operator()(const FindMissing &m) { putDigests(env.initFindMissing(m.digests.size()), m.digests); }
  void operator()(const Missing &m) { putDigests(env.initMissing(m.digests.size()), m.digests); }
  void operator()(const PutChunk &m) { put(env.initPutChunk(), m); }
  void operator()(const PutAck &m) { put(env.initPutAck(), m); }
  void operator()(const GetChunk &m) { put(env.initGetChunk(), m); }
  void operator()(const Chunk &m) { put(env.initChunk(), m); }
  void operator()(const Session &m) {
    auto b = env.initSubmit();
    b.setSessionId(m.sessionId);
    b.setToolchain(m.toolchain);
    b.setOutput(m.output);
    b.setPart(m.part);
    put(b.initConfig(), m.config);
    auto jobs = b.initJobs(m.jobs.size());
    for (size_t i = 0; i < m.jobs.size(); ++i)
      put(jobs[i], m.jobs[i]);
  }
  void operator()(const EndSession &m) { env.initEndSession().setSessionId(m.sessionId); }
  void operator()(const RunJob &m) {
    auto b = env.initRunJob();
    b.setJobId(m.jobId);
    put(b.initConfig(), m.config);
    put(b.initSpec(), m.spec);
  }
  void operator()(const JobResult &m) {
    auto b = env.initJobResult();
    b.setSessionId(m.sessionId);
    b.setJobId(m.jobId);
    b.setTask(m.task);
    b.setFailed(m.error.has_value());
    if (m.error)
      put(b.initError(), *m.error);
    put(b.initNative(), m.native);
    put(b.initDiagnostics(m.diagnostics.size()), m.diagnostics);
    b.setSeconds(m.seconds);
    b.setWorker(m.worker);
    b.setMerged(m.merged);
    b.setNativeBytes(capnp::Data::Reader(
        reinterpret_cast<const capnp::byte *>(m.nativeBytes.data()), m.nativeBytes.size()));
    put(b.initKey(), m.key);
    b.setCached(m.cached);
  }
  void operator()(const Progress &m) {
    auto b = env.initProgress();
    b.setSessionId(m.sessionId);
    b.setDone(m.done);
    b.setMerged(m.merged);
    b.setRunning(m.running);
    b.setQueued(m.queued);
    b.setWorkers(m.workers);
  }
  void operator()(const BackendRequest &m) {
    auto b = env.initBackendRequest();
    put(b.initConfig(), m.config);
    b.setModule(m.module);
    b.setModulePath(m.modulePath);
    b.setShardPath(m.shardPath);
    putTexts(b.initImportIds(m.importIds.size()), m.importIds);
    putTexts(b.initImportPaths(m.importPaths.size()), m.importPaths);
    b.setWorkDir(m.workDir);
    b.setOutputPath(m.outputPath);
    b.setTask(m.task);
    put(b.initModuleDigest(), m.moduleDigest);
    putDigests(b.initImportDigests(m.importDigests.size()), m.importDigests);
    putFiles(b.initIncbins(m.incbins.size()), m.incbins);
  }
  void operator()(const BackendReply &m) {
    auto b = env.initBackendReply();
    b.setFailed(m.failed);
    b.setMessage(m.message);
    put(b.initDiagnostics(m.diagnostics.size()), m.diagnostics);
    b.setSeconds(m.seconds);
    put(b.initKey(), m.key);
  }
  void operator()(const LookupLink &m) { put(env.initLookupLink(), m.key); }
  void operator()(const LinkMemo &m) { put(env.initLinkMemo(), m); }
  void operator()(const RecordLink &m) { put(env.initRecordLink(), m); }
  void operator()(const GetStats &) { env.setGetStats(); }
  void operator()(const DrainWorker &m) {
    auto b = env.initDrainWorker();
    b.setName(m.name);
    b.setDrain(m.drain);
  }
  void operator()(const CancelJob &m) { env.setCancelJob(m.jobId); }
  void operator()(const StoreStats &m) {
    auto b = env.initStoreStats();
    b.setEntries(m.entries);
    b.setBytes(m.bytes);
    b.setBudget(m.budget);
    b.setActionHits(m.actionHits);
    b.setActionMisses(m.actionMisses);
    b.setMemoHits(m.memoHits);
    b.setMemoMisses(m.memoMisses);
    b.setBytesStored(m.bytesStored);
    b.setBytesServed(m.bytesServed);
    b.setEvictions(m.evictions);
    b.setEvictedBytes(m.evictedBytes);
    b.setCorrupt(m.corrupt);
    auto ws = b.initWorkers(static_cast<unsigned>(m.workers.size()));
    for (unsigned i = 0; i < m.workers.size(); ++i) {
      ws[i].setName(m.workers[i].name);
      ws[i].setSlots(m.workers[i].slots);
      ws[i].setRunning(m.workers[i].running);
      ws[i].setDone(m.workers[i].done);
      ws[i].setProbation(m.workers[i].probation);
      ws[i].setQuarantined(m.workers[i].quarantined);
      ws[i].setDraining(m.workers[i].draining);
    }
  }
};

void fill(cw::Envelope::Builder env, const Message &m) {
  env.setRequestId(m.requestId);
  std::visit(Encoder{env}, m.body);
}

// ---- decode -------------------------------------------------------------

// Thrown (and caught in decode) for what the schema allows but the protocol
// does not.
struct Malformed {
  std::string what;
};

Digest get(cw::Digest::Reader r) {
  auto h = r.getSha256();
  if (h.size() != 32)
    throw Malformed{"a digest of " + std::to_string(h.size()) + " bytes (expected 32)"};
  Digest d;
  std::memcpy(d.sha256.data(), h.begin(), 32);
  d.size = r.getSize();
  return d;
}

ErrorKind fromWire(cw::ErrorKind k) {
  switch (k) {
  case cw::ErrorKind::FAILED: return ErrorKind::Failed;
  case cw::ErrorKind::OVERLOADED: return ErrorKind::Overloaded;
  case cw::ErrorKind::DISCONNECTED: return ErrorKind::Disconnected;
  case cw::ErrorKind::UNIMPLEMENTED: return ErrorKind::Unimplemented;
  case cw::ErrorKind::DENIED: return ErrorKind::Denied;
  case cw::ErrorKind::EXCEEDED: return ErrorKind::Exceeded;
  }
  throw Malformed{"an unknown error kind"};
}

Severity fromWire(cw::Severity s) {
  switch (s) {
  case cw::Severity::ERROR: return Severity::Error;
  case cw::Severity::WARNING: return Severity::Warning;
  case cw::Severity::REMARK: return Severity::Remark;
  case cw::Severity::NOTE: return Severity::Note;
  }
  throw Malformed{"an unknown diagnostic severity"};
}

std::vector<std::string> getTexts(capnp::List<capnp::Text>::Reader r) {
  std::vector<std::string> v;
  v.reserve(r.size());
  for (auto t : r)
    v.emplace_back(t.cStr(), t.size());
  return v;
}

std::string str(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

ErrorMsg get(cw::Error::Reader r) { return {fromWire(r.getKind()), str(r.getMessage())}; }

BackendConfig get(cw::BackendConfig::Reader r) {
  BackendConfig c;
  c.optLevel = r.getOptLevel();
  c.cgOptLevel = r.getCgOptLevel();
  c.relocatable = r.getRelocatable();
  c.pic = r.getPic();
  c.llvmOptions = getTexts(r.getLlvmOptions());
  c.mllvm = getTexts(r.getMllvm());
  return c;
}

ModuleRef get(cw::ModuleRef::Reader r) { return {str(r.getIdentifier()), get(r.getBitcode())}; }

JobSpec get(cw::JobSpec::Reader r) {
  JobSpec j;
  j.task = r.getTask();
  j.module = get(r.getModule());
  j.shard = get(r.getShard());
  for (auto m : r.getImports())
    j.imports.push_back(get(m));
  for (auto f : r.getIncbins())
    j.incbins.push_back({str(f.getPath()), get(f.getContent())});
  j.cost = r.getCost();
  j.noop = r.getNoop();
  if (r.hasKey())
    j.key = get(r.getKey());
  return j;
}

std::vector<FileRef> getFiles(capnp::List<cw::FileRef>::Reader r) {
  std::vector<FileRef> files;
  for (auto f : r)
    files.push_back({str(f.getPath()), get(f.getContent())});
  return files;
}

template <class M> M getMemo(cw::LinkMemo::Reader r) {
  M m;
  m.key = get(r.getKey());
  m.found = r.getFound();
  m.output = get(r.getOutput());
  m.incbins = getFiles(r.getIncbins());
  m.transcript = str(r.getTranscript());
  m.mode = r.getMode();
  return m;
}

std::vector<Diagnostic> get(capnp::List<cw::Diagnostic>::Reader r) {
  std::vector<Diagnostic> ds;
  for (auto d : r)
    ds.push_back({fromWire(d.getSeverity()), str(d.getText())});
  return ds;
}

void get(cw::BlobChunk::Reader r, BlobChunk &c) {
  c.digest = get(r.getDigest());
  c.offset = r.getOffset();
  auto bytes = r.getBytes();
  if (bytes.size() > kChunk)
    throw Malformed{"a chunk of " + std::to_string(bytes.size()) + " bytes (at most " +
                    std::to_string(kChunk) + ")"};
  if (c.offset > c.digest.size || bytes.size() > c.digest.size - c.offset)
    throw Malformed{"a chunk beyond the end of blob " + c.digest.text()};
  c.bytes.assign(reinterpret_cast<const char *>(bytes.begin()), bytes.size());
}

void get(cw::ChunkRef::Reader r, ChunkRef &c) {
  c.digest = get(r.getDigest());
  c.offset = r.getOffset();
}

std::vector<Digest> getDigests(capnp::List<cw::Digest>::Reader r) {
  std::vector<Digest> v;
  v.reserve(r.size());
  for (auto d : r)
    v.push_back(get(d));
  return v;
}

Body getBody(cw::Envelope::Reader env, bool nested = false) {
  switch (env.which()) {
  case cw::Envelope::BATCH: {
    if (nested)
      throw Malformed{"a batch inside a batch"};
    Batch b;
    for (auto inner : env.getBatch()) {
      Message m;
      m.requestId = inner.getRequestId();
      m.body = getBody(inner, true);
      b.messages.push_back(std::move(m));
    }
    return b;
  }
  case cw::Envelope::ERROR: return get(env.getError());
  case cw::Envelope::REGISTER_WORKER: {
    auto r = env.getRegisterWorker();
    return RegisterWorker{str(r.getName()), str(r.getToolchain()), r.getSlots()};
  }
  case cw::Envelope::REGISTERED: return Registered{env.getRegistered().getSlots()};
  case cw::Envelope::HEARTBEAT: return Heartbeat{};
  case cw::Envelope::FIND_MISSING: return FindMissing{getDigests(env.getFindMissing())};
  case cw::Envelope::MISSING: return Missing{getDigests(env.getMissing())};
  case cw::Envelope::PUT_CHUNK: {
    PutChunk c;
    get(env.getPutChunk(), c);
    return c;
  }
  case cw::Envelope::PUT_ACK: {
    PutAck c;
    get(env.getPutAck(), c);
    return c;
  }
  case cw::Envelope::GET_CHUNK: {
    GetChunk c;
    get(env.getGetChunk(), c);
    return c;
  }
  case cw::Envelope::CHUNK: {
    Chunk c;
    get(env.getChunk(), c);
    return c;
  }
  case cw::Envelope::SUBMIT: {
    auto r = env.getSubmit();
    Session s;
    s.sessionId = r.getSessionId();
    s.toolchain = str(r.getToolchain());
    s.output = str(r.getOutput());
    s.part = r.getPart();
    s.config = get(r.getConfig());
    for (auto j : r.getJobs())
      s.jobs.push_back(get(j));
    return s;
  }
  case cw::Envelope::END_SESSION: return EndSession{env.getEndSession().getSessionId()};
  case cw::Envelope::RUN_JOB: {
    auto r = env.getRunJob();
    return RunJob{r.getJobId(), get(r.getConfig()), get(r.getSpec())};
  }
  case cw::Envelope::JOB_RESULT: {
    auto r = env.getJobResult();
    JobResult m;
    m.sessionId = r.getSessionId();
    m.jobId = r.getJobId();
    m.task = r.getTask();
    if (r.getFailed())
      m.error = get(r.getError());
    m.native = get(r.getNative());
    m.diagnostics = get(r.getDiagnostics());
    m.seconds = r.getSeconds();
    m.worker = str(r.getWorker());
    m.merged = r.getMerged();
    auto bytes = r.getNativeBytes();
    if (bytes.size() > kChunk)
      throw Malformed{"an inline native object of " + std::to_string(bytes.size()) + " bytes"};
    m.nativeBytes.assign(reinterpret_cast<const char *>(bytes.begin()), bytes.size());
    if (r.hasKey())
      m.key = get(r.getKey());
    m.cached = r.getCached();
    return m;
  }
  case cw::Envelope::PROGRESS: {
    auto r = env.getProgress();
    return Progress{r.getSessionId(), r.getDone(),   r.getMerged(),
                    r.getRunning(),   r.getQueued(), r.getWorkers()};
  }
  case cw::Envelope::BACKEND_REQUEST: {
    auto r = env.getBackendRequest();
    BackendRequest m;
    m.config = get(r.getConfig());
    m.module = str(r.getModule());
    m.modulePath = str(r.getModulePath());
    m.shardPath = str(r.getShardPath());
    m.importIds = getTexts(r.getImportIds());
    m.importPaths = getTexts(r.getImportPaths());
    if (m.importIds.size() != m.importPaths.size())
      throw Malformed{"a backend request with unpaired imports"};
    m.workDir = str(r.getWorkDir());
    m.outputPath = str(r.getOutputPath());
    m.task = r.getTask();
    m.moduleDigest = get(r.getModuleDigest());
    m.importDigests = getDigests(r.getImportDigests());
    if (m.importDigests.size() != m.importIds.size())
      throw Malformed{"a backend request whose import digests do not match its imports"};
    m.incbins = getFiles(r.getIncbins());
    return m;
  }
  case cw::Envelope::BACKEND_REPLY: {
    auto r = env.getBackendReply();
    BackendReply m{r.getFailed(), str(r.getMessage()), get(r.getDiagnostics()), r.getSeconds(), {}};
    if (r.hasKey())
      m.key = get(r.getKey());
    return m;
  }
  case cw::Envelope::LOOKUP_LINK: return LookupLink{get(env.getLookupLink())};
  case cw::Envelope::LINK_MEMO: return getMemo<LinkMemo>(env.getLinkMemo());
  case cw::Envelope::RECORD_LINK: return getMemo<RecordLink>(env.getRecordLink());
  case cw::Envelope::GET_STATS: return GetStats{};
  case cw::Envelope::CANCEL_JOB: return CancelJob{env.getCancelJob()};
  case cw::Envelope::DRAIN_WORKER: {
    auto r = env.getDrainWorker();
    return DrainWorker{str(r.getName()), r.getDrain()};
  }
  case cw::Envelope::STORE_STATS: {
    auto r = env.getStoreStats();
    StoreStats m;
    m.entries = r.getEntries();
    m.bytes = r.getBytes();
    m.budget = r.getBudget();
    m.actionHits = r.getActionHits();
    m.actionMisses = r.getActionMisses();
    m.memoHits = r.getMemoHits();
    m.memoMisses = r.getMemoMisses();
    m.bytesStored = r.getBytesStored();
    m.bytesServed = r.getBytesServed();
    m.evictions = r.getEvictions();
    m.evictedBytes = r.getEvictedBytes();
    m.corrupt = r.getCorrupt();
    for (auto w : r.getWorkers())
      m.workers.push_back(WorkerStats{w.getName(), w.getSlots(), w.getRunning(), w.getDone(),
                                      w.getProbation(), w.getQuarantined(), w.getDraining()});
    return m;
  }
  }
  throw Malformed{"an unknown message kind (" + std::to_string(static_cast<int>(env.which())) + ")"};
}

} // namespace

const char *kindName(const Body &body) {
  static constexpr const char *names[] = {
      "error",     "registerWorker", "heartbeat",  "findMissing", "missing",   "putChunk",
      "putAck",    "getChunk",       "chunk",      "submit",      "endSession", "runJob",
      "jobResult", "progress",       "backendRequest", "backendReply", "batch",
      "lookupLink", "linkMemo",      "recordLink", "getStats", "storeStats", "registered",
      "drainWorker", "cancelJob"};
  static_assert(std::size(names) == std::variant_size_v<Body>);
  return names[body.index()];
}

std::string encode(const Message &m) {
  capnp::MallocMessageBuilder builder;
  fill(builder.initRoot<cw::Envelope>(), m);
  auto words = capnp::messageToFlatArray(builder);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char *>(bytes.begin()), bytes.size());
}

Result<Message> decode(std::string_view frame) {
  if (frame.size() > kMaxFrame)
    return failed("malformed message: a frame of " + std::to_string(frame.size()) +
                  " bytes (at most " + std::to_string(kMaxFrame) + ")");
  if (frame.size() % sizeof(capnp::word) != 0 || frame.empty())
    return failed("malformed message: a frame of " + std::to_string(frame.size()) +
                  " bytes is not a Cap'n Proto message");
  // Cap'n Proto reads words in place: an aligned frame as it is (ZeroMQ's
  // buffers usually are), else a copy.
  kj::Array<capnp::word> copy;
  kj::ArrayPtr<const capnp::word> words;
  if (reinterpret_cast<uintptr_t>(frame.data()) % alignof(capnp::word) == 0) {
    words = kj::arrayPtr(reinterpret_cast<const capnp::word *>(frame.data()),
                         frame.size() / sizeof(capnp::word));
  } else {
    copy = kj::heapArray<capnp::word>(frame.size() / sizeof(capnp::word));
    std::memcpy(copy.begin(), frame.data(), frame.size());
    words = copy.asPtr();
  }
  capnp::ReaderOptions options;
  options.traversalLimitInWords = words.size() * 4 + 64;
  options.nestingLimit = 16;
  try {
    capnp::FlatArrayMessageReader reader(words, options);
    auto env = reader.getRoot<cw::Envelope>();
    Message m;
    m.requestId = env.getRequestId();
    m.body = getBody(env);
    return m;
  } catch (const Malformed &e) {
    return failed("malformed message: " + e.what);
  } catch (const kj::Exception &e) {
    return failed("malformed message: " + std::string(e.getDescription().cStr()));
  }
}

} // namespace thinfarm::wire
