// The content-addressed store: blobs (bitcode, index shards, native objects,
// link outputs) keyed by their Digest, and small records that depend on a blob
// (the action cache, the link memo), in RocksDB.
//
// On-disk layout, one RocksDB database per store directory:
//
//   key       := small | manifest | chunk | pending | record | use | stats | version
//   small     := 'b' sha256[32] size[8]          value := the blob itself (size <= 1 MiB)
//   manifest  := 'm' sha256[32] size[8]          value := chunk-count[4]  (size > 1 MiB)
//   chunk     := 'c' sha256[32] size[8] index[4] value := bytes [index MiB, index+1 MiB)
//   pending   := 'p' sha256[32] size[8]          value := empty: a large blob being written
//   record    := kind[1] key-sha256[32] size[8]  value := blob[40] check[16] payload
//                kind: 'a' action cache, 'l' link memo; blob: the digest (sha256, size)
//                the record depends on; check: SHA-256(kind, key, blob, payload)[0..16)
//   use       := 'u' entry-key[41]               value := last-used[8] bytes[8]
//                entry-key: a small, manifest or record key; last-used in seconds since
//                the epoch; bytes: the blob's size or the record value's
//   stats     := 'S'                             value := 9 counters [8] (StoreStats order)
//   version   := 'V'                             value := format[4] (2)
//
// Integers are big-endian, so a blob's chunks sort together and in order.
//
// Visibility: an entry exists for readers iff its use key does; the use key
// is written in the batch that makes the entry visible (the small value, the
// manifest, the record) and deleted with it. Presence checks read only it.
//
// Least recently used: a read, a presence check or a record hit refreshes
// last-used (at most once per touchInterval, so reads do not each become a
// write). When a write takes the total past the budget, entries are evicted
// oldest first until the total is at most 90% of it. A record whose blob was
// evicted is dropped when it is next read.
//
// Crash safety: RocksDB's write-ahead log makes each batch atomic across a
// kill -9. A large blob's chunks are written before its manifest batch, under
// a pending key written first and deleted in the manifest batch; at open,
// chunks of a pending blob without a manifest are deleted. So a crash loses
// at most the entries being written, and leaks nothing.
//
// Corruption: every read checks the content against its digest (a record,
// against its check); RocksDB's own Corruption status counts the same. A
// damaged entry is dropped and reported (blobs: an error naming it; records:
// absent), so the caller recomputes it; `corrupt` counts them.
#pragma once

#include "base/digest.h"
#include "base/result.h"

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace thinfarm {

struct StoreOptions {
  uint64_t budgetBytes = 0;   // 0: unlimited
  int64_t touchInterval = 60; // seconds between refreshes of one entry's last-used time
};

struct StoreStats {
  uint64_t entries = 0, bytes = 0, budget = 0; // now
  uint64_t actionHits = 0, actionMisses = 0, memoHits = 0, memoMisses = 0;
  uint64_t bytesStored = 0, bytesServed = 0;             // blob bytes written / handed out
  uint64_t evictions = 0, evictedBytes = 0, corrupt = 0; // corrupt: entries dropped on read
  uint64_t reserved = 0; // now: bytes held for blobs being written (not persisted)
};

enum class RecordKind : char { Action = 'a', LinkMemo = 'l' };

class Store {
public:
  static constexpr size_t kChunkSize = 1 << 20;
  static constexpr uint32_t kFormat = 2;

  // Opens (creating if needed) the store in dir. A store of the older format
  // (no version key) is a cache: it is emptied.
  static Result<Store> open(const std::string &dir, StoreOptions options = {});
  // The statistics of a store another process may hold open (read-only open).
  static Result<StoreStats> readStats(const std::string &dir);
  Store(Store &&) noexcept;
  Store &operator=(Store &&) noexcept;
  ~Store();

  // The digests of `wanted` the store does not hold, in the order given.
  Result<std::vector<Digest>> findMissing(std::span<const Digest> wanted);

  // Stores bytes under digest after checking that they hash to it.
  Status put(const Digest &digest, std::string_view bytes);
  // Stores several blobs; small ones in one atomic batch.
  Status putBatch(std::span<const std::pair<Digest, std::string_view>> blobs);

  // The blob's bytes, checked against its digest; nullopt when absent.
  Result<std::optional<std::string>> get(const Digest &digest);

  // One kChunkSize piece of a blob, for serving downloads chunk by chunk. A
  // small blob is checked against its digest; a large blob's chunk cannot be
  // on its own, so the receiver checks the assembled blob. nullopt: absent.
  Result<std::optional<std::string>> getChunk(const Digest &digest, uint32_t index);

  // Streams a blob in chunks of at most kChunkSize to `sink`, checking the
  // digest as it goes; an error after the last chunk means the consumer must
  // discard what it received. Absent: a Failed error saying so.
  Status read(const Digest &digest, const std::function<Status(std::string_view)> &sink);

  // Receives a large blob chunk by chunk; finish() checks the digest and makes
  // the blob visible. Dropped without finish(), it leaves nothing readable.
  // write() reserves the digest's size against the budget first (evicting to
  // make room), and append() takes no byte beyond it, so an upload that
  // never finishes cannot take the store past its budget; the reservation
  // ends with finish() or the writer. A blob larger than the budget is an
  // Exceeded error, one that does not fit beside the reservations of other
  // writers an Overloaded one.
  // One writer of a large blob at a time: write() while another is open is
  // Overloaded (try again later), and put() of that blob waits for it.
  class Writer {
  public:
    Writer(Writer &&) noexcept;
    ~Writer();
    Status append(std::string_view bytes);
    Status finish();

  private:
    friend class Store;
    struct State;
    explicit Writer(std::unique_ptr<State> s);
    std::unique_ptr<State> s_;
  };
  Result<Writer> write(const Digest &digest);

  // Stores a record under key; it stays valid only while `blob` is stored.
  Status putRecord(RecordKind kind, const Digest &key, std::string_view value, const Digest &blob);
  // The record's value; nullopt when absent, damaged (dropped) or when its
  // blob is gone (dropped). Counts a hit or a miss for its kind.
  Result<std::optional<std::string>> getRecord(RecordKind kind, const Digest &key);
  void dropRecord(RecordKind kind, const Digest &key);
  // Drops every record of `kind` whose value `which` selects (a worker's
  // results, when it is quarantined); returns how many. A scan: for rare events.
  Result<size_t> dropRecords(RecordKind kind, const std::function<bool(std::string_view)> &which);

  StoreStats stats() const;
  // Persists the counters when they changed since the last time; the owner
  // calls it about once a second (and the destructor does), so a crash loses
  // at most the counts since. One caller at a time.
  Status flushStats();

private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace thinfarm
