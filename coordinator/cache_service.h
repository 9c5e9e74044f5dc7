// The coordinator's caches over its store: the action cache and the link memo.
//
// Action cache: backend key -> native object + the diagnostics the backend
// printed. A submitted job whose key is cached is answered at once (marked
// `cached`), with the diagnostics, so a cached build prints what an uncached
// one printed; the rest go to the scheduler. Only a result the scheduler
// accepted from a registered worker for a job it was running is written, and
// under the key that worker's backend child computed from the inputs it ran
// on, never under the client's claim: a client can upload blobs but cannot
// make the cache answer anybody's job with them. A hit is checked before it
// is used: the native object is read back against its digest; a damaged one
// is dropped (store.h) and the job runs as a miss.
//
// Link memo: a key the client computed -> the link's output, the .incbin
// files it depended on and its stderr. Clients write it (only they produce
// outputs); the key includes a secret of the client's (lto/memo.cpp), so an
// entry answers only links of the client that wrote it, or of clients that
// share its secret.
//
// Record values are wire-encoded messages (a jobResult, a linkMemo) in the
// store's record format (storage/store.h).
#pragma once

#include "coordinator/scheduler.h"
#include "storage/store.h"

#include <optional>

namespace thinfarm {

class CacheService {
public:
  explicit CacheService(Store &store) : store_(store) {}

  // Answers the session's cached jobs and removes them from it.
  // mayHit: whether it has jobs to look up at all (no-op ones are not).
  static bool mayHit(const wire::Session &s);
  void answerHits(const wire::PeerId &peer, wire::Session &s, Outbox &out);

  // What of a worker's result the cache keeps, if it is a success with a key;
  // record() it once the scheduler accepted the result.
  static std::optional<wire::JobResult> cacheable(const wire::JobResult &r);
  void record(const wire::JobResult &r);
  // A record found wrong (verification.h), and every record a quarantined
  // worker wrote (their values name it).
  void forget(const Digest &key);
  Result<size_t> dropResultsOf(const std::string &worker);

  // The link memo is per client: with CURVE, each allow-list name has a
  // namespace of its own (client: "" without keys), so one member's entries
  // never answer another's links. An entry is written once: a second record
  // under the same key is acknowledged and dropped.
  void onLookupLink(const wire::PeerId &peer, uint64_t requestId, const wire::LookupLink &l,
                    const std::string &client, Outbox &out);
  void onRecordLink(const wire::PeerId &peer, uint64_t requestId, const wire::RecordLink &r,
                    const std::string &client, Outbox &out);
  // The store's statistics, with the scheduler's list of workers.
  void onGetStats(const wire::PeerId &peer, uint64_t requestId,
                  std::vector<wire::WorkerStats> workers, Outbox &out);

private:
  Store &store_;
};

} // namespace thinfarm
