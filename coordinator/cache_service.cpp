#include "coordinator/cache_service.h"

#include <algorithm>

namespace thinfarm {

namespace {

bool hasKey(const Digest &d) {
  return d.size != 0;
}

template <class T> std::optional<T> decodeAs(const std::string &bytes) {
  auto m = wire::decode(bytes);
  if (!m.ok())
    return std::nullopt;
  if (auto *v = m->get<T>())
    return std::move(*v);
  return std::nullopt;
}

// What a store lookup found; nothing when it failed (a failed lookup is a miss).
std::optional<std::string> found(Result<std::optional<std::string>> &&r) {
  if (!r.ok())
    return std::nullopt;
  return std::move(*r);
}

// Reads a blob through to check it against its digest; a damaged blob is
// dropped by the store and reported absent.
bool intact(Store &store, const Digest &d) {
  return store.read(d, [](std::string_view) { return ok(); }).ok();
}

// Whether a job is looked up in the action cache (no-op jobs never are).
bool lookedUp(const wire::JobSpec &spec) {
  return hasKey(spec.key) && !spec.noop;
}

} // namespace

bool CacheService::mayHit(const wire::Session &s) {
  return std::any_of(s.jobs.begin(), s.jobs.end(), lookedUp);
}

void CacheService::answerHits(const wire::PeerId &peer, wire::Session &s, Outbox &out) {
  std::vector<wire::JobSpec> misses;
  for (wire::JobSpec &spec : s.jobs) {
    std::optional<wire::JobResult> hit;
    if (lookedUp(spec)) {
      if (auto value = found(store_.getRecord(RecordKind::Action, spec.key)))
        hit = decodeAs<wire::JobResult>(*value);
    }
    if (hit) {
      // The object is read back whole (checked against its digest) even when
      // it is too large to ride inline: a damaged one turns the hit into a miss.
      auto bytes = found(store_.get(hit->native));
      if (!bytes) {
        hit.reset();
      } else if (bytes->size() <= wire::kChunk && wire::fitsFrame(*hit, bytes->size())) {
        hit->nativeBytes = std::move(*bytes);
      }
    }
    if (!hit) {
      misses.push_back(std::move(spec));
      continue;
    }
    hit->sessionId = s.sessionId;
    hit->jobId = 0;
    hit->task = spec.task;
    hit->worker = "cache";
    hit->cached = true;
    hit->merged = false;
    hit->key = Digest{};
    out.push_back({peer, wire::Message{0, std::move(*hit)}});
  }
  s.jobs = std::move(misses);
}

std::optional<wire::JobResult> CacheService::cacheable(const wire::JobResult &r) {
  if (r.error || !hasKey(r.key) || r.native.size == 0)
    return std::nullopt;
  wire::JobResult kept;
  kept.key = r.key;
  kept.native = r.native;
  kept.diagnostics = r.diagnostics;
  kept.seconds = r.seconds;
  kept.worker = r.worker; // whose record it is, should that worker be quarantined
  return kept;
}

void CacheService::record(const wire::JobResult &r) {
  wire::JobResult value = r;
  value.key = Digest{};
  // A failure to cache costs a later hit, never a result: nothing to report.
  (void)store_.putRecord(RecordKind::Action, r.key, wire::encode(wire::Message{0, value}),
                         r.native);
}

void CacheService::forget(const Digest &key) {
  store_.dropRecord(RecordKind::Action, key);
}

Result<size_t> CacheService::dropResultsOf(const std::string &worker) {
  return store_.dropRecords(RecordKind::Action, [&](std::string_view value) {
    auto r = decodeAs<wire::JobResult>(std::string(value));
    return r && r->worker == worker;
  });
}

namespace {

Digest memoKeyOf(const Digest &key, const std::string &client) {
  return client.empty() ? key : Digest::of("link memo of " + client + ": " + key.text());
}

} // namespace

void CacheService::onLookupLink(const wire::PeerId &peer, uint64_t requestId,
                                const wire::LookupLink &l, const std::string &client,
                                Outbox &out) {
  wire::LinkMemo reply;
  reply.key = l.key;
  if (auto value = found(store_.getRecord(RecordKind::LinkMemo, memoKeyOf(l.key, client)))) {
    if (auto memo = decodeAs<wire::LinkMemo>(*value); memo && intact(store_, memo->output)) {
      reply = std::move(*memo);
      reply.key = l.key;
      reply.found = true;
    }
  }
  out.push_back({peer, wire::Message{requestId, std::move(reply)}});
}

void CacheService::onRecordLink(const wire::PeerId &peer, uint64_t requestId,
                                const wire::RecordLink &r, const std::string &client,
                                Outbox &out) {
  auto fail = [&](const std::string &why) {
    out.push_back({peer, wire::errorReply(requestId, ErrorKind::Failed, why)});
  };
  auto missing = store_.findMissing(std::span<const Digest>(&r.output, 1));
  if (!missing.ok())
    return fail(missing.error().message);
  if (!missing->empty())
    return fail("link memo: the output " + r.output.text() +
                " is not in the store; upload it first");
  wire::LinkMemo value = r;
  value.found = true;
  Digest key = memoKeyOf(r.key, client);
  if (!found(store_.getRecord(RecordKind::LinkMemo, key)))
    if (Status st = store_.putRecord(RecordKind::LinkMemo, key,
                                     wire::encode(wire::Message{0, value}), r.output);
        !st.ok())
      return fail(st.error().message);
  wire::LinkMemo ack;
  ack.key = r.key;
  ack.found = true;
  out.push_back({peer, wire::Message{requestId, std::move(ack)}});
}

void CacheService::onGetStats(const wire::PeerId &peer, uint64_t requestId,
                              std::vector<wire::WorkerStats> workers, Outbox &out) {
  const StoreStats s = store_.stats();
  wire::StoreStats m;
  m.workers = std::move(workers);
  m.entries = s.entries;
  m.bytes = s.bytes;
  m.budget = s.budget;
  m.actionHits = s.actionHits;
  m.actionMisses = s.actionMisses;
  m.memoHits = s.memoHits;
  m.memoMisses = s.memoMisses;
  m.bytesStored = s.bytesStored;
  m.bytesServed = s.bytesServed;
  m.evictions = s.evictions;
  m.evictedBytes = s.evictedBytes;
  m.corrupt = s.corrupt;
  out.push_back({peer, wire::Message{requestId, m}});
}

} // namespace thinfarm
