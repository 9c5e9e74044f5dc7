# The thinfarm wire: every message that crosses a process boundary.
#
# Transport (wire/transport.h): ZeroMQ. The coordinator binds a ROUTER socket
# (tcp:// between machines, ipc:// on one machine, inproc:// for its embedded
# worker pool); clients and workers connect DEALER sockets. Every ZeroMQ frame
# is exactly one Envelope, a single-segment Cap'n Proto message, at most
# kMaxFrame bytes (wire/messages.h); a larger frame is refused unread.
#
# Authentication (wire/keys.h): a coordinator with keys runs CURVE on its
# socket; only the public keys on its allow-list complete the handshake, each
# with a role, and every message is checked against its sender's role:
#   worker  registerWorker, jobResult        client  submit, endSession,
#   admin   getStats, drainWorker                    lookupLink, recordLink
#   client and worker: heartbeat, findMissing, putChunk, getChunk
# A message outside the role is answered with error(denied). The names in
# jobResult.worker and in the logs are the allow-list's, not the peer's own.
#
# Conversations (C = client, W = worker, A = admin, K = coordinator):
#
#   W -> K  registerWorker           once per connection; again when K answers
#                                    an unknown peer with error(disconnected)
#   K -> W  registered               the registration is accepted
#   K -> W  cancelJob                a job another worker finished first
#                                    (stragglers run twice): its backend is
#                                    killed, no result is sent
#   W -> K  heartbeat                twice a second, also while a job runs
#                                    (2 s silent: K gives its jobs out again;
#                                    a closed connection: at once)
#   C -> K  heartbeat                every second while a session runs
#   K -> W  runJob                   up to the worker's slot count at a time,
#                                    plus one waiting while many are pending
#   W -> K  jobResult                the native object (inline up to 1 MiB,
#                                    else uploaded first) or the error that
#                                    failed the job. K caches a success under
#                                    the key the job was dispatched with, and
#                                    only if the worker's backend computed the
#                                    same key (another key: refused), and only
#                                    once verified (coordinator/verification.h):
#                                    a client can upload blobs, never results
#   W -> K  blob traffic             each slot fetches inputs and uploads large
#                                    natives over a data connection of its own
#   C -> K  submit                   a link session: backend config and jobs
#                                    (more jobs than one frame holds: parts)
#   K -> C  progress                 twice a second while it runs (1.5 s
#                                    silent, or a closed connection: C
#                                    connects again, or runs the rest itself)
#   K -> C  jobResult                one per job; `cached` when the action
#                                    cache answered it at once (a hit),
#                                    `merged` when another session's identical
#                                    job did the work
#   C -> K  endSession               the client is done or gives up
#   C -> K  lookupLink -> linkMemo   the link memo: found, or not
#   C -> K  recordLink -> linkMemo   after a link, its output uploaded first
#   A -> K  getStats -> storeStats   the store's statistics (thinfarm-cache)
#   A -> K  drainWorker -> storeStats  no new jobs for a worker (or again jobs)
#   C,W->K  findMissing -> missing   which digests the receiver's store lacks
#   C,W->K  putChunk -> putAck       upload; the sender keeps at most
#                                    kWindow chunks unacknowledged
#   C,W->K  getChunk -> chunk        download; the receiver keeps at most
#                                    kWindow requests outstanding
#   any     error                    the request `requestId` failed; `kind`
#                                    decides what the other side does next
#
# Batching: a sender with several messages for one peer at once (the
# coordinator after a burst, a worker's finished jobs) may send them as one
# `batch`; the receiver handles them in order as if they came one by one.
#
# Flow control: every stream is pulled or acknowledged chunk by chunk, so no
# queue grows beyond the window times the chunk size (1 MiB) per peer.
#
# The backend child (worker/backend_child.h) speaks the same Envelope over its
# stdin/stdout, each frame prefixed by its length (4 bytes, little-endian):
#   worker -> child  backendRequest   child -> worker  backendReply
@0xb5e1c0a4d2f39e71;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("thinfarm::capnp_wire");

struct Digest {
  sha256 @0 :Data;  # 32 bytes
  size @1 :UInt64;
}

enum ErrorKind {
  failed @0;         # deterministic: retrying gives the same answer
  overloaded @1;     # back off, then retry
  disconnected @2;   # the peer went away: reconnect and redo
  unimplemented @3;  # not handled here: the client links locally
  denied @4;         # the peer's key is not admitted, or its role may not do
                     # this (wire/keys.h): no retry; a client links locally
  exceeded @5;       # over a fixed limit of the peer (a blob larger than its
                     # maximum, too many parts in a message): no retry; a
                     # client runs that work locally
}

struct Error {
  kind @0 :ErrorKind;
  message @1 :Text;
}

# What lld's createConfig reads from the command line (base/backend.h).
struct BackendConfig {
  optLevel @0 :Int32;
  cgOptLevel @1 :Int32;
  relocatable @2 :Bool;
  pic @3 :Bool;
  llvmOptions @4 :List(Text);  # in the order lld parses them
  mllvm @5 :List(Text);
}

struct ModuleRef {
  identifier @0 :Text;  # lld's name for the module: "vmlinux.a(main.o at 208618)"
  bitcode @1 :Digest;
}

struct FileRef {
  path @0 :Text;        # relative to the build directory
  content @1 :Digest;
}

# One ThinLTO backend, self-contained: everything it reads, by digest.
struct JobSpec {
  task @0 :UInt32;             # lld's task number within the link
  module @1 :ModuleRef;
  shard @2 :Digest;            # the module's index shard
  imports @3 :List(ModuleRef);
  incbins @4 :List(FileRef);   # laid out at their paths around the backend
  cost @5 :UInt64;             # scheduling estimate, larger runs first
  noop @6 :Bool;               # dispatch benchmark: the worker answers at once
  key @7 :Digest;              # the client's backend key (lto/backend_key.cpp),
                               # for the action cache lookup; absent: no lookup
}

enum Severity {
  error @0;
  warning @1;
  remark @2;
  note @3;
}

struct Diagnostic {
  severity @0 :Severity;
  text @1 :Text;
}

struct RegisterWorker {
  name @0 :Text;       # the worker machine's name; all its slots share it
  toolchain @1 :Text;  # backend identity; jobs go only to an equal toolchain
  slots @2 :UInt32;    # jobs it runs at once
}

struct Registered {
  slots @0 :UInt32;    # the slots the coordinator will fill (as registered)
}

struct Heartbeat {}    # "still here": the sender's connection is alive

struct Session {
  sessionId @0 :UInt64;  # chosen by the client, random
  toolchain @1 :Text;
  output @2 :Text;       # for progress and logs only
  config @3 :BackendConfig;
  jobs @4 :List(JobSpec);
  part @5 :UInt32;       # 0: a new session. A session whose jobs do not fit
                         # one frame is submitted in parts, in order, all
                         # under its id: part n > 0 adds its jobs to it
}

struct EndSession {
  sessionId @0 :UInt64;
}

struct RunJob {
  jobId @0 :UInt64;
  config @1 :BackendConfig;
  spec @2 :JobSpec;
}

struct JobResult {
  sessionId @0 :UInt64;  # K -> C
  jobId @1 :UInt64;      # W -> K
  task @2 :UInt32;
  failed @3 :Bool;
  error @4 :Error;       # when failed
  native @5 :Digest;     # when not failed
  diagnostics @6 :List(Diagnostic);
  seconds @7 :Float64;   # the backend's wall time
  worker @8 :Text;
  merged @9 :Bool;       # answered by an identical job of another session
  nativeBytes @10 :Data; # the native object itself when at most 1 MiB (most
                         # are): it rides with the result instead of taking
                         # an upload and a download round trip of its own
  key @11 :Digest;       # W -> K: the backend key the worker's backend child
                         # computed from the inputs it ran on; the only key a
                         # result is ever cached under
  cached @12 :Bool;      # K -> C: answered from the action cache
}

struct Progress {
  sessionId @0 :UInt64;
  done @1 :UInt32;
  merged @2 :UInt32;
  running @3 :UInt32;
  queued @4 :UInt32;
  workers @5 :UInt32;
}

struct BlobChunk {
  digest @0 :Digest;
  offset @1 :UInt64;
  bytes @2 :Data;        # at most 1 MiB; the last chunk ends the blob
}

struct ChunkRef {
  digest @0 :Digest;
  offset @1 :UInt64;
}

struct BackendRequest {
  config @0 :BackendConfig;
  module @1 :Text;            # identifier
  modulePath @2 :Text;        # file holding its bitcode
  shardPath @3 :Text;
  importIds @4 :List(Text);
  importPaths @5 :List(Text);
  workDir @6 :Text;           # the .incbin files are laid out under it
  outputPath @7 :Text;        # where the native object goes
  task @8 :UInt32;
  moduleDigest @9 :Digest;    # the digests the worker checked its inputs
  importDigests @10 :List(Digest); # against, for the backend key
  incbins @11 :List(FileRef);
}

struct BackendReply {
  failed @0 :Bool;
  message @1 :Text;
  diagnostics @2 :List(Diagnostic);
  seconds @3 :Float64;
  key @4 :Digest;             # the backend key of the job it ran
}

# The link memo: a link's inputs, command line and toolchain -> its output.
struct LinkMemo {
  key @0 :Digest;
  found @1 :Bool;             # lookupLink's answer: whether there is one
  output @2 :Digest;          # the output file, a blob in the store
  incbins @3 :List(FileRef);  # files the modules' asm pulled in, as they were
                              # (a zero digest: the file did not exist); the
                              # client checks them before using the memo
  transcript @4 :Text;        # what the link printed to stderr
  mode @5 :UInt32;            # the output file's permission bits
}

# The store's statistics (storage/store.h StoreStats), cumulative.
struct StoreStats {
  entries @0 :UInt64;
  bytes @1 :UInt64;
  budget @2 :UInt64;
  actionHits @3 :UInt64;
  actionMisses @4 :UInt64;
  memoHits @5 :UInt64;
  memoMisses @6 :UInt64;
  bytesStored @7 :UInt64;
  bytesServed @8 :UInt64;
  evictions @9 :UInt64;
  evictedBytes @10 :UInt64;
  corrupt @11 :UInt64;
  workers @12 :List(WorkerStats);  # the registered workers, by name
}

struct WorkerStats {
  name @0 :Text;       # the allow-list's name (with keys), else the worker's own
  slots @1 :UInt32;
  running @2 :UInt32;
  done @3 :UInt64;     # results accepted since it registered
  probation @4 :UInt32; # results left that a second worker checks before delivery
  quarantined @5 :Bool; # its results disagreed with other workers': it gets no jobs
  draining @6 :Bool;    # an admin drained it: its running jobs finish, no new ones
}

struct DrainWorker {
  name @0 :Text;        # the worker's name (the allow-list's)
  drain @1 :Bool;       # true: no new jobs; false: jobs again
}

struct Envelope {
  requestId @0 :UInt64;  # echoed in the answer
  union {
    error @1 :Error;
    registerWorker @2 :RegisterWorker;
    heartbeat @3 :Heartbeat;
    findMissing @4 :List(Digest);
    missing @5 :List(Digest);
    putChunk @6 :BlobChunk;
    putAck @7 :ChunkRef;
    getChunk @8 :ChunkRef;
    chunk @9 :BlobChunk;
    submit @10 :Session;
    endSession @11 :EndSession;
    runJob @12 :RunJob;
    jobResult @13 :JobResult;
    progress @14 :Progress;
    backendRequest @15 :BackendRequest;
    backendReply @16 :BackendReply;
    batch @17 :List(Envelope);  # several messages for one peer in one frame;
                                # never nested, never carrying blob chunks
    lookupLink @18 :Digest;     # -> linkMemo
    linkMemo @19 :LinkMemo;
    recordLink @20 :LinkMemo;   # -> linkMemo (found), once the output is uploaded
    getStats @21 :Void;         # -> storeStats
    storeStats @22 :StoreStats;
    registered @23 :Registered;
    drainWorker @24 :DrainWorker;  # -> storeStats
    cancelJob @25 :UInt64;      # K -> W: stop running this job id (another
                                # run of it, started for a straggler, won)
  }
}
