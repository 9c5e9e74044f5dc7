#include "storage/store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>

namespace thinfarm {

namespace {

void putBE(std::string &out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t getBE(std::string_view in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v = v << 8 | static_cast<uint8_t>(in[i]);
  return v;
}

constexpr size_t kDigestBytes = 40; // sha256[32] size[8]
constexpr size_t kCheckBytes = 16;

std::string digestBytes(const Digest &d) {
  std::string k(reinterpret_cast<const char *>(d.sha256.data()), d.sha256.size());
  putBE(k, d.size, 8);
  return k;
}

Digest digestFrom(std::string_view bytes) {
  Digest d;
  std::memcpy(d.sha256.data(), bytes.data(), 32);
  d.size = getBE(bytes.substr(32), 8);
  return d;
}

std::string key(char tag, const Digest &d) {
  return std::string(1, tag) + digestBytes(d);
}

std::string chunkKey(const Digest &d, uint32_t index) {
  std::string k = key('c', d);
  putBE(k, index, 4);
  return k;
}

uint32_t chunkCount(uint64_t size) {
  return static_cast<uint32_t>((size + Store::kChunkSize - 1) / Store::kChunkSize);
}

bool large(const Digest &d) {
  return d.size > Store::kChunkSize;
}

// The key that holds a blob's visibility: its small value or its manifest.
std::string blobKey(const Digest &d) {
  return key(large(d) ? 'm' : 'b', d);
}

std::string useKey(const std::string &entryKey) {
  return "u" + entryKey;
}

std::string useValue(int64_t lastUsed, uint64_t bytes) {
  std::string v;
  putBE(v, static_cast<uint64_t>(lastUsed), 8);
  putBE(v, bytes, 8);
  return v;
}

int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string recordCheck(RecordKind kind, const Digest &k, const Digest &blob,
                        std::string_view payload) {
  DigestBuilder b;
  b.update(std::string_view(reinterpret_cast<const char *>(&kind), 1));
  b.updateDigest(k);
  b.updateDigest(blob);
  b.update(payload);
  Digest d = b.finish();
  return std::string(reinterpret_cast<const char *>(d.sha256.data()), kCheckBytes);
}

Error storeError(const std::string &what, const rocksdb::Status &s) {
  return failed("store: " + what + ": " + s.ToString());
}

// The persisted counters, in StoreStats order after its three "now" fields.
constexpr int kCounters = 9;

struct Counters {
  std::atomic<uint64_t> v[kCounters]{};
  enum {
    ActionHits,
    ActionMisses,
    MemoHits,
    MemoMisses,
    Stored,
    Served,
    Evictions,
    Evicted,
    Corrupt
  };
  void add(int i, uint64_t n) { v[i].fetch_add(n, std::memory_order_relaxed); }
  std::string encode() const {
    std::string out;
    for (const auto &c : v)
      putBE(out, c.load(std::memory_order_relaxed), 8);
    return out;
  }
  void decode(std::string_view in) {
    for (int i = 0; i < kCounters && static_cast<size_t>(i + 1) * 8 <= in.size(); ++i)
      v[i] = getBE(in.substr(static_cast<size_t>(i) * 8), 8);
  }
  void fill(StoreStats &s) const {
    auto g = [&](int i) { return v[i].load(std::memory_order_relaxed); };
    s.actionHits = g(ActionHits);
    s.actionMisses = g(ActionMisses);
    s.memoHits = g(MemoHits);
    s.memoMisses = g(MemoMisses);
    s.bytesStored = g(Stored);
    s.bytesServed = g(Served);
    s.evictions = g(Evictions);
    s.evictedBytes = g(Evicted);
    s.corrupt = g(Corrupt);
  }
};

// Sums the use keys: how many entries, how many bytes.
void scanUse(rocksdb::DB &db, uint64_t &entries, uint64_t &bytes) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
  entries = bytes = 0;
  for (it->Seek("u"); it->Valid() && it->key().starts_with("u"); it->Next()) {
    ++entries;
    if (it->value().size() == 16)
      bytes += getBE(std::string_view(it->value().data() + 8, 8), 8);
  }
}

} // namespace

struct Store::Impl {
  std::unique_ptr<rocksdb::DB> db;
  StoreOptions options;
  Counters counters;
  std::string flushed;   // the counters as last persisted (flushStats)
  mutable std::mutex mu; // the totals below, and check-then-write sequences
  uint64_t entries = 0, total = 0;
  uint64_t reserved = 0; // declared sizes of the blobs being written (Writer)

  // Holds `bytes` of the budget for a blob about to be written, evicting
  // what it takes to make room: a writer can never take the store past its
  // budget, however many bytes it receives before it is abandoned.
  Status reserve(const Digest &d, uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu);
    uint64_t budget = options.budgetBytes;
    if (budget != 0 && bytes > budget)
      return Error{ErrorKind::Exceeded, "blob " + d.text() + " (" + std::to_string(bytes) +
                                            " bytes) is larger than the store's budget of " +
                                            std::to_string(budget) + " bytes"};
    if (budget != 0 && reserved + bytes > budget)
      return Error{ErrorKind::Overloaded,
                   "the store's budget of " + std::to_string(budget) + " bytes is held by " +
                       std::to_string(reserved) + " bytes of uploads in flight; try again later"};
    reserved += bytes;
    evictLocked();
    return ok();
  }
  void release(uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu);
    reserved -= std::min(reserved, bytes);
  }

  // Large blobs a Writer is writing. Every writer of a digest writes the same
  // chunk keys, and a writer's bytes are checked only by finish(): two at
  // once, and a peer's spoiled chunk lands in the blob an honest upload
  // finishes (or its abandoned write drops the honest one's chunks). So one
  // at a time: write() refuses a second, put() waits for the first.
  std::set<Digest> writing;
  std::condition_variable writerDone;

  Status writeBatch(rocksdb::WriteBatch &batch, const std::string &what) {
    rocksdb::Status s = db->Write(rocksdb::WriteOptions(), &batch);
    if (!s.ok())
      return storeError(what, s);
    return ok();
  }

  // The use value of an entry: nullopt when the entry does not exist.
  Result<std::optional<std::string>> use(const std::string &entryKey) {
    std::string value;
    rocksdb::Status s = db->Get(rocksdb::ReadOptions(), useKey(entryKey), &value);
    if (s.IsNotFound())
      return std::optional<std::string>();
    if (!s.ok())
      return storeError("reading the use of an entry", s);
    return std::optional<std::string>(std::move(value));
  }

  // Refreshes an entry's last-used time, at most once per touchInterval.
  void touch(const std::string &entryKey, const std::string &useVal) {
    if (useVal.size() != 16)
      return;
    int64_t now = nowSeconds();
    if (now - static_cast<int64_t>(getBE(useVal, 8)) < options.touchInterval)
      return;
    (void)db->Put(rocksdb::WriteOptions(), useKey(entryKey),
                  useValue(now, getBE(std::string_view(useVal).substr(8), 8)));
  }

  Result<bool> has(const Digest &d) {
    TF_TRY(auto u, use(blobKey(d)));
    if (u)
      touch(blobKey(d), *u);
    return u.has_value();
  }

  // Removes every key of a blob (after corruption, an aborted write, or eviction).
  void drop(const Digest &d, bool corrupt) {
    std::lock_guard<std::mutex> lock(mu);
    dropLocked(d);
    if (corrupt)
      counters.add(Counters::Corrupt, 1);
  }

  // Adds the deletes of an entry to batch, with its use key; returns its bytes
  // if it existed (for the totals).
  std::optional<uint64_t> forget(rocksdb::WriteBatch &batch, const std::string &entryKey) {
    auto u = use(entryKey);
    batch.Delete(entryKey);
    batch.Delete(useKey(entryKey));
    if (!u.ok())
      return std::nullopt;
    const std::optional<std::string> &useVal = *u;
    if (!useVal || useVal->size() != 16)
      return std::nullopt;
    return getBE(std::string_view(*useVal).substr(8), 8);
  }

  void account(std::optional<uint64_t> removed) {
    if (!removed)
      return;
    entries -= std::min<uint64_t>(entries, 1);
    total -= std::min(total, *removed);
  }

  void dropLocked(const Digest &d) {
    rocksdb::WriteBatch batch;
    auto removed = forget(batch, blobKey(d));
    batch.Delete(key(large(d) ? 'b' : 'm', d)); // whatever an older writer left
    batch.Delete(key('p', d));
    batch.DeleteRange(chunkKey(d, 0), chunkKey(d, chunkCount(d.size) + 1));
    if (db->Write(rocksdb::WriteOptions(), &batch).ok())
      account(removed);
  }

  void dropRecord(const std::string &recordKey, bool corrupt) {
    std::lock_guard<std::mutex> lock(mu);
    rocksdb::WriteBatch batch;
    auto removed = forget(batch, recordKey);
    if (db->Write(rocksdb::WriteOptions(), &batch).ok())
      account(removed);
    if (corrupt)
      counters.add(Counters::Corrupt, 1);
  }

  // Writes batch, which makes a new entry of `bytes` visible, and keeps to the budget.
  Status addEntry(rocksdb::WriteBatch &batch, const std::string &what, uint64_t bytes,
                  std::optional<uint64_t> replaced) {
    TF_CHECK(writeBatch(batch, what));
    account(replaced);
    entries++;
    total += bytes;
    evictLocked();
    return ok();
  }

  // Evicts least recently used entries until the total is at most 90% of
  // the budget. Called with mu held.
  void evictLocked() {
    // Reserved bytes count as used: they are on their way in.
    if (options.budgetBytes == 0 || total + reserved <= options.budgetBytes)
      return;
    struct Entry {
      int64_t lastUsed;
      std::string key;
      uint64_t bytes;
    };
    std::vector<Entry> all;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("u"); it->Valid() && it->key().starts_with("u"); it->Next()) {
      std::string_view v(it->value().data(), it->value().size());
      if (v.size() != 16)
        continue;
      all.push_back({static_cast<int64_t>(getBE(v, 8)), it->key().ToString().substr(1),
                     getBE(v.substr(8), 8)});
    }
    it.reset();
    std::sort(all.begin(), all.end(),
              [](const Entry &a, const Entry &b) { return a.lastUsed < b.lastUsed; });
    uint64_t target = options.budgetBytes / 10 * 9;
    for (const Entry &e : all) {
      if (total + reserved <= target)
        break;
      char tag = e.key[0];
      if ((tag == 'b' || tag == 'm') && e.key.size() == 1 + kDigestBytes) {
        dropLocked(digestFrom(std::string_view(e.key).substr(1)));
      } else {
        rocksdb::WriteBatch batch;
        auto removed = forget(batch, e.key);
        if (!db->Write(rocksdb::WriteOptions(), &batch).ok())
          continue;
        account(removed);
      }
      counters.add(Counters::Evictions, 1);
      counters.add(Counters::Evicted, e.bytes);
    }
  }

  // A read found the entry damaged (RocksDB's Corruption included).
  Error corruptBlob(const Digest &d, const std::string &what) {
    drop(d, true);
    return failed("blob " + d.text() + " " + what + "; dropped from the store");
  }

  // Open-time repair: chunks of large blobs whose writer died before the manifest.
  Status dropUnfinished() {
    std::vector<Digest> pending;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("p"); it->Valid() && it->key().starts_with("p"); it->Next())
      if (it->key().size() == 1 + kDigestBytes)
        pending.push_back(digestFrom(std::string_view(it->key().data() + 1, kDigestBytes)));
    it.reset();
    for (const Digest &d : pending) {
      TF_TRY(auto u, use(key('m', d)));
      rocksdb::WriteBatch batch;
      batch.Delete(key('p', d));
      if (!u)
        batch.DeleteRange(chunkKey(d, 0), chunkKey(d, chunkCount(d.size) + 1));
      TF_CHECK(writeBatch(batch, "dropping an unfinished blob"));
    }
    return ok();
  }
};

struct Store::Writer::State {
  Store::Impl *impl;
  Digest digest;
  DigestBuilder hash;
  std::string pending;
  uint64_t received = 0;
  uint32_t nextChunk = 0;
  bool done = false;
  bool reserved = false;   // the digest's size is held against the budget
  bool registered = false; // in impl->writing

  void releaseReservation() {
    if (reserved)
      impl->release(digest.size);
    reserved = false;
  }
  // Everything the writer holds: its reservation and its turn.
  void release() {
    releaseReservation();
    if (!registered)
      return;
    std::lock_guard<std::mutex> lock(impl->mu);
    impl->writing.erase(digest);
    registered = false;
    impl->writerDone.notify_all();
  }

  Status flushChunk(std::string_view bytes) {
    rocksdb::WriteBatch batch;
    if (nextChunk == 0) // the pending key goes first: open() finds orphans by it
      batch.Put(key('p', digest), "");
    batch.Put(chunkKey(digest, nextChunk++), rocksdb::Slice(bytes.data(), bytes.size()));
    return impl->writeBatch(batch, "writing " + digest.text());
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store &&) noexcept = default;
Store &Store::operator=(Store &&) noexcept = default;
Store::~Store() {
  if (impl_)
    (void)flushStats();
}

Result<Store> Store::open(const std::string &dir, StoreOptions storeOptions) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.compression = rocksdb::kNoCompression; // bitcode and objects: compress poorly, read often
  rocksdb::DB *db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &db);
  if (!s.ok())
    return failed("cannot open the store in " + dir + ": " + s.ToString());
  auto impl = std::make_unique<Impl>();
  impl->db.reset(db);
  impl->options = storeOptions;

  std::string version;
  s = db->Get(rocksdb::ReadOptions(), "V", &version);
  if (s.ok() && (version.size() != 4 || getBE(version, 4) != kFormat))
    return failed("store " + dir + " has format version " +
                  (version.size() == 4 ? std::to_string(getBE(version, 4)) : "(unreadable)") +
                  "; this thinfarm reads " + std::to_string(kFormat));
  if (s.IsNotFound()) {
    // New, or an older thinfarm's cache: start empty.
    rocksdb::WriteBatch batch;
    batch.DeleteRange(std::string(1, '\0'), std::string(1, '\x7f'));
    std::string v;
    putBE(v, kFormat, 4);
    batch.Put("V", v);
    TF_CHECK(impl->writeBatch(batch, "initializing " + dir));
  } else if (!s.ok()) {
    return storeError("reading the format of " + dir, s);
  }
  std::string stats;
  if (db->Get(rocksdb::ReadOptions(), "S", &stats).ok())
    impl->counters.decode(stats);
  impl->flushed = impl->counters.encode();
  TF_CHECK(impl->dropUnfinished());
  scanUse(*db, impl->entries, impl->total);
  {
    std::lock_guard<std::mutex> lock(impl->mu);
    impl->evictLocked(); // a smaller budget than last time
  }
  return Store(std::move(impl));
}

Result<StoreStats> Store::readStats(const std::string &dir) {
  rocksdb::DB *db = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir, &db);
  if (!s.ok())
    return failed("cannot open the store in " + dir + ": " + s.ToString());
  std::unique_ptr<rocksdb::DB> owner(db);
  Counters c;
  std::string stats;
  if (db->Get(rocksdb::ReadOptions(), "S", &stats).ok())
    c.decode(stats);
  StoreStats out;
  c.fill(out);
  scanUse(*db, out.entries, out.bytes);
  return out;
}

StoreStats Store::stats() const {
  StoreStats out;
  impl_->counters.fill(out);
  std::lock_guard<std::mutex> lock(impl_->mu);
  out.entries = impl_->entries;
  out.bytes = impl_->total;
  out.budget = impl_->options.budgetBytes;
  out.reserved = impl_->reserved;
  return out;
}

// Only when they changed: an idle coordinator writes nothing.
Status Store::flushStats() {
  std::string now = impl_->counters.encode();
  if (now == impl_->flushed)
    return ok();
  rocksdb::Status s = impl_->db->Put(rocksdb::WriteOptions(), "S", now);
  if (!s.ok())
    return storeError("writing statistics", s);
  impl_->flushed = std::move(now);
  return ok();
}

Result<std::vector<Digest>> Store::findMissing(std::span<const Digest> wanted) {
  std::vector<Digest> missing;
  for (const Digest &d : wanted) {
    TF_TRY(bool present, impl_->has(d));
    if (!present)
      missing.push_back(d);
  }
  return missing;
}

Status Store::put(const Digest &digest, std::string_view bytes) {
  std::pair<Digest, std::string_view> one{digest, bytes};
  return putBatch(std::span(&one, 1));
}

Status Store::putBatch(std::span<const std::pair<Digest, std::string_view>> blobs) {
  for (const auto &[digest, bytes] : blobs) {
    Digest actual = Digest::of(bytes);
    if (actual != digest)
      return failed("blob " + digest.text() + ": refused, its content hashes to " + actual.text());
  }
  std::unique_lock<std::mutex> lock(impl_->mu);
  rocksdb::WriteBatch batch;
  uint64_t added = 0, count = 0;
  int64_t now = nowSeconds();
  for (const auto &[digest, bytes] : blobs) {
    TF_TRY(auto u, impl_->use(blobKey(digest)));
    if (u) {
      impl_->touch(blobKey(digest), *u);
      continue;
    }
    if (large(digest)) {
      // Streams through a writer of its own (which takes the lock to
      // finish), once no other writer has this blob (Impl::writing).
      impl_->writerDone.wait(lock, [&] { return impl_->writing.count(digest) == 0; });
      TF_TRY(auto written, impl_->use(blobKey(digest)));
      if (written)
        continue;
      auto state = std::make_unique<Writer::State>();
      state->impl = impl_.get();
      state->digest = digest;
      state->registered = impl_->writing.insert(digest).second;
      lock.unlock();
      Status st = ok();
      { // the writer ends before the lock is taken again: its destructor takes it
        Writer w(std::move(state));
        for (size_t off = 0; st.ok() && off < bytes.size(); off += kChunkSize)
          st = w.append(bytes.substr(off, kChunkSize));
        if (st.ok())
          st = w.finish();
      }
      lock.lock();
      TF_CHECK(st);
      continue;
    }
    batch.Put(key('b', digest), rocksdb::Slice(bytes.data(), bytes.size()));
    batch.Put(useKey(key('b', digest)), useValue(now, digest.size));
    added += digest.size;
    ++count;
  }
  if (count == 0)
    return ok();
  TF_CHECK(impl_->writeBatch(batch, "writing " + std::to_string(count) + " blobs"));
  impl_->entries += count;
  impl_->total += added;
  impl_->counters.add(Counters::Stored, added);
  impl_->evictLocked();
  return ok();
}

Status Store::read(const Digest &digest, const std::function<Status(std::string_view)> &sink) {
  rocksdb::ReadOptions ro;
  std::string value;
  DigestBuilder hash;
  TF_TRY(auto u, impl_->use(blobKey(digest)));
  if (!u)
    return failed("blob " + digest.text() + " is not in the store");
  if (!large(digest)) {
    rocksdb::Status s = impl_->db->Get(ro, key('b', digest), &value);
    if (s.IsCorruption() || s.IsNotFound())
      return impl_->corruptBlob(digest, s.IsNotFound() ? "is missing" : "is unreadable");
    if (!s.ok())
      return storeError("reading " + digest.text(), s);
    hash.update(value);
    Digest actual = hash.finish();
    if (actual != digest)
      return impl_->corruptBlob(digest, "is corrupt (its content hashes to " + actual.text() + ")");
    impl_->touch(blobKey(digest), *u);
    impl_->counters.add(Counters::Served, value.size());
    return sink(value);
  }
  rocksdb::Status s = impl_->db->Get(ro, key('m', digest), &value);
  if (!s.ok() && !s.IsNotFound() && !s.IsCorruption())
    return storeError("reading " + digest.text(), s);
  if (!s.ok() || value.size() != 4 || getBE(value, 4) != chunkCount(digest.size))
    return impl_->corruptBlob(digest, "has a corrupt manifest");
  uint32_t chunks = chunkCount(digest.size);
  for (uint32_t i = 0; i < chunks; ++i) {
    s = impl_->db->Get(ro, chunkKey(digest, i), &value);
    if (!s.ok())
      return impl_->corruptBlob(digest, "has a missing or unreadable chunk " + std::to_string(i));
    hash.update(value);
    impl_->counters.add(Counters::Served, value.size());
    TF_CHECK(sink(value));
  }
  Digest actual = hash.finish();
  if (actual != digest)
    return impl_->corruptBlob(digest, "is corrupt (its content hashes to " + actual.text() + ")");
  impl_->touch(blobKey(digest), *u);
  return ok();
}

Result<std::optional<std::string>> Store::get(const Digest &digest) {
  TF_TRY(auto u, impl_->use(blobKey(digest)));
  if (!u)
    return std::optional<std::string>();
  std::string out;
  out.reserve(digest.size);
  TF_CHECK(read(digest, [&](std::string_view chunk) {
    out.append(chunk);
    return ok();
  }));
  return std::optional<std::string>(std::move(out));
}

Result<std::optional<std::string>> Store::getChunk(const Digest &digest, uint32_t index) {
  if (!large(digest)) {
    if (index != 0)
      return failed("blob " + digest.text() + " has one chunk, not " + std::to_string(index + 1));
    return get(digest);
  }
  TF_TRY(auto u, impl_->use(blobKey(digest)));
  if (!u)
    return std::optional<std::string>();
  if (index >= chunkCount(digest.size))
    return failed("blob " + digest.text() + " has no chunk " + std::to_string(index));
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), chunkKey(digest, index), &value);
  if (!s.ok() ||
      value.size() != std::min<uint64_t>(kChunkSize, digest.size - uint64_t(index) * kChunkSize))
    return impl_->corruptBlob(digest,
                              "chunk " + std::to_string(index) + " is missing or truncated");
  if (index == 0)
    impl_->touch(blobKey(digest), *u);
  impl_->counters.add(Counters::Served, value.size());
  return std::optional<std::string>(std::move(value));
}

Result<Store::Writer> Store::write(const Digest &digest) {
  auto st = std::make_unique<Writer::State>();
  st->impl = impl_.get();
  st->digest = digest;
  if (large(digest)) {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (!impl_->writing.insert(digest).second)
      return Error{ErrorKind::Overloaded,
                   "blob " + digest.text() + ": another upload of it is under way"};
    st->registered = true;
  }
  if (Status r = impl_->reserve(digest, digest.size); !r.ok()) {
    st->release();
    return std::move(r).error();
  }
  st->reserved = true;
  return Writer(std::move(st));
}

Status Store::putRecord(RecordKind kind, const Digest &k, std::string_view value,
                        const Digest &blob) {
  std::string entryKey = key(static_cast<char>(kind), k);
  std::string stored = digestBytes(blob) + recordCheck(kind, k, blob, value);
  stored.append(value);
  std::lock_guard<std::mutex> lock(impl_->mu);
  rocksdb::WriteBatch batch;
  auto replaced = impl_->forget(batch, entryKey); // the deletes are overwritten below
  batch.Put(entryKey, stored);
  batch.Put(useKey(entryKey), useValue(nowSeconds(), stored.size()));
  return impl_->addEntry(batch, "writing a record", stored.size(), replaced);
}

Result<std::optional<std::string>> Store::getRecord(RecordKind kind, const Digest &k) {
  bool action = kind == RecordKind::Action;
  auto miss = [&] {
    impl_->counters.add(action ? Counters::ActionMisses : Counters::MemoMisses, 1);
    return std::optional<std::string>();
  };
  std::string entryKey = key(static_cast<char>(kind), k);
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), entryKey, &value);
  if (s.IsNotFound())
    return miss();
  if (!s.ok() && !s.IsCorruption())
    return storeError("reading a record", s);
  if (!s.ok() || value.size() < kDigestBytes + kCheckBytes) {
    impl_->dropRecord(entryKey, true);
    return miss();
  }
  Digest blob = digestFrom(value);
  std::string_view payload = std::string_view(value).substr(kDigestBytes + kCheckBytes);
  if (value.compare(kDigestBytes, kCheckBytes, recordCheck(kind, k, blob, payload)) != 0) {
    impl_->dropRecord(entryKey, true);
    return miss();
  }
  TF_TRY(bool present, impl_->has(blob));
  if (!present) { // its blob was evicted or dropped: the record is worthless
    impl_->dropRecord(entryKey, false);
    return miss();
  }
  if (auto u = impl_->use(entryKey); u.ok())
    if (const std::optional<std::string> &useVal = *u)
      impl_->touch(entryKey, *useVal);
  impl_->counters.add(action ? Counters::ActionHits : Counters::MemoHits, 1);
  return std::optional<std::string>(std::string(payload));
}

void Store::dropRecord(RecordKind kind, const Digest &k) {
  impl_->dropRecord(key(static_cast<char>(kind), k), false);
}

Result<size_t> Store::dropRecords(RecordKind kind,
                                  const std::function<bool(std::string_view)> &which) {
  const std::string prefix(1, static_cast<char>(kind));
  std::vector<std::string> doomed;
  {
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      std::string_view value(it->value().data(), it->value().size());
      if (value.size() >= kDigestBytes + kCheckBytes &&
          which(value.substr(kDigestBytes + kCheckBytes)))
        doomed.emplace_back(it->key().data(), it->key().size());
    }
    if (!it->status().ok())
      return storeError("scanning records", it->status());
  }
  for (const std::string &k : doomed)
    impl_->dropRecord(k, false);
  return doomed.size();
}

Store::Writer::Writer(std::unique_ptr<State> s) : s_(std::move(s)) {}
Store::Writer::Writer(Writer &&) noexcept = default;

Store::Writer::~Writer() {
  if (!s_)
    return;
  // Unfinished: its chunks are garbage, unless another writer completed the
  // same blob meanwhile (the chunks are then that blob's, byte for byte).
  if (!s_->done && large(s_->digest) && s_->nextChunk > 0) {
    auto present = s_->impl->use(blobKey(s_->digest));
    if (present.ok() && !*present)
      s_->impl->drop(s_->digest, false);
  }
  if (s_)
    s_->release();
}

Status Store::Writer::append(std::string_view bytes) {
  State &s = *s_;
  if (s.done)
    return failed("blob " + s.digest.text() + ": append after finish");
  if (bytes.size() > s.digest.size - s.received)
    return failed("blob " + s.digest.text() + ": more bytes than its size");
  s.received += bytes.size();
  s.hash.update(bytes);
  s.pending.append(bytes);
  while (large(s.digest) && s.pending.size() >= kChunkSize) {
    TF_CHECK(s.flushChunk(std::string_view(s.pending).substr(0, kChunkSize)));
    s.pending.erase(0, kChunkSize);
  }
  return ok();
}

Status Store::Writer::finish() {
  State &s = *s_;
  if (s.done)
    return failed("blob " + s.digest.text() + ": finished twice");
  s.done = true;
  s.releaseReservation(); // from here on the blob is either dropped or counted in the total
  struct Release { // on every path, after the lock below is let go
    State &s;
    ~Release() { s.release(); }
  } release{s};
  auto abandon = [&](const std::string &why) {
    auto present = s.impl->use(blobKey(s.digest));
    if (present.ok() && !*present)
      s.impl->drop(s.digest, false);
    return failed("blob " + s.digest.text() + ": " + why);
  };
  if (s.received != s.digest.size)
    return abandon("truncated, received " + std::to_string(s.received) + " bytes");
  Digest actual = s.hash.finish();
  if (actual != s.digest)
    return abandon("refused, its content hashes to " + actual.text());
  if (large(s.digest) && !s.pending.empty())
    TF_CHECK(s.flushChunk(s.pending));
  std::lock_guard<std::mutex> lock(s.impl->mu);
  TF_TRY(auto existing, s.impl->use(blobKey(s.digest)));
  if (existing) // another writer finished the same blob first
    return ok();
  rocksdb::WriteBatch batch;
  if (!large(s.digest)) {
    batch.Put(key('b', s.digest), s.pending);
  } else {
    std::string count;
    putBE(count, s.nextChunk, 4);
    batch.Put(key('m', s.digest), count); // the blob becomes visible
    batch.Delete(key('p', s.digest));
  }
  batch.Put(useKey(blobKey(s.digest)), useValue(nowSeconds(), s.digest.size));
  TF_CHECK(s.impl->addEntry(batch, "writing " + s.digest.text(), s.digest.size, std::nullopt));
  s.impl->counters.add(Counters::Stored, s.digest.size);
  return ok();
}

} // namespace thinfarm
