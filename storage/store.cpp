#include "storage/store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <cstring>

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

std::string key(char tag, const Digest &d) {
  std::string k(1, tag);
  k.append(reinterpret_cast<const char *>(d.sha256.data()), d.sha256.size());
  putBE(k, d.size, 8);
  return k;
}

std::string chunkKey(const Digest &d, uint32_t index) {
  std::string k = key('c', d);
  putBE(k, index, 4);
  return k;
}

uint32_t chunkCount(uint64_t size) {
  return static_cast<uint32_t>((size + Store::kChunkSize - 1) / Store::kChunkSize);
}

Error storeError(const std::string &what, const rocksdb::Status &s) {
  return failed("store: " + what + ": " + s.ToString());
}

} // namespace

struct Store::Impl {
  std::unique_ptr<rocksdb::DB> db;

  Status writeBatch(rocksdb::WriteBatch &batch, const std::string &what) {
    rocksdb::Status s = db->Write(rocksdb::WriteOptions(), &batch);
    if (!s.ok())
      return storeError(what, s);
    return ok();
  }

  // Removes every key of a blob (after corruption, or an aborted write).
  void drop(const Digest &d) {
    rocksdb::WriteBatch batch;
    batch.Delete(key('b', d));
    batch.Delete(key('m', d));
    batch.DeleteRange(chunkKey(d, 0), chunkKey(d, chunkCount(d.size) + 1));
    (void)db->Write(rocksdb::WriteOptions(), &batch);
  }

  Result<bool> has(const Digest &d) {
    std::string value;
    for (char tag : {'b', 'm'}) {
      rocksdb::Status s = db->Get(rocksdb::ReadOptions(), key(tag, d), &value);
      if (s.ok())
        return true;
      if (!s.IsNotFound())
        return storeError("reading " + d.text(), s);
    }
    return false;
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

  bool large() const { return digest.size > Store::kChunkSize; }

  Status flushChunk(std::string_view bytes) {
    rocksdb::Status s =
        impl->db->Put(rocksdb::WriteOptions(), chunkKey(digest, nextChunk++), bytes);
    if (!s.ok())
      return storeError("writing " + digest.text(), s);
    return ok();
  }
};

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::Store(Store &&) noexcept = default;
Store &Store::operator=(Store &&) noexcept = default;
Store::~Store() = default;

Result<Store> Store::open(const std::string &dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.compression = rocksdb::kNoCompression; // bitcode and objects: compress poorly, read often
  rocksdb::DB *db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &db);
  if (!s.ok())
    return failed("cannot open the store in " + dir + ": " + s.ToString());
  auto impl = std::make_unique<Impl>();
  impl->db.reset(db);
  return Store(std::move(impl));
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
  rocksdb::WriteBatch batch;
  for (const auto &[digest, bytes] : blobs) {
    Digest actual = Digest::of(bytes);
    if (actual != digest)
      return failed("blob " + digest.text() + ": refused, its content hashes to " + actual.text());
    if (digest.size > kChunkSize) {
      TF_TRY(Writer w, write(digest));
      for (size_t off = 0; off < bytes.size(); off += kChunkSize)
        TF_CHECK(w.append(bytes.substr(off, kChunkSize)));
      TF_CHECK(w.finish());
      continue;
    }
    batch.Put(key('b', digest), rocksdb::Slice(bytes.data(), bytes.size()));
  }
  if (batch.Count() == 0)
    return ok();
  return impl_->writeBatch(batch, "writing " + std::to_string(batch.Count()) + " blobs");
}

Status Store::read(const Digest &digest, const std::function<Status(std::string_view)> &sink) {
  rocksdb::ReadOptions ro;
  std::string value;
  DigestBuilder hash;
  rocksdb::Status s = impl_->db->Get(ro, key('b', digest), &value);
  if (s.ok()) {
    hash.update(value);
    Digest actual = hash.finish();
    if (actual != digest) {
      impl_->drop(digest);
      return failed("blob " + digest.text() + " is corrupt (its content hashes to " +
                    actual.text() + "); dropped from the store");
    }
    return sink(value);
  }
  if (!s.IsNotFound())
    return storeError("reading " + digest.text(), s);
  s = impl_->db->Get(ro, key('m', digest), &value);
  if (s.IsNotFound())
    return failed("blob " + digest.text() + " is not in the store");
  if (!s.ok())
    return storeError("reading " + digest.text(), s);
  if (value.size() != 4 || getBE(value, 4) != chunkCount(digest.size)) {
    impl_->drop(digest);
    return failed("blob " + digest.text() + " has a corrupt manifest; dropped from the store");
  }
  uint32_t chunks = chunkCount(digest.size);
  for (uint32_t i = 0; i < chunks; ++i) {
    s = impl_->db->Get(ro, chunkKey(digest, i), &value);
    if (!s.ok()) {
      impl_->drop(digest);
      return failed("blob " + digest.text() + ": chunk " + std::to_string(i) +
                    " is missing; dropped from the store");
    }
    hash.update(value);
    TF_CHECK(sink(value));
  }
  Digest actual = hash.finish();
  if (actual != digest) {
    impl_->drop(digest);
    return failed("blob " + digest.text() + " is corrupt (its content hashes to " +
                  actual.text() + "); dropped from the store");
  }
  return ok();
}

Result<std::optional<std::string>> Store::get(const Digest &digest) {
  TF_TRY(bool present, impl_->has(digest));
  if (!present)
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
  if (digest.size <= kChunkSize) {
    if (index != 0)
      return failed("blob " + digest.text() + " has one chunk, not " + std::to_string(index + 1));
    return get(digest);
  }
  TF_TRY(bool present, impl_->has(digest));
  if (!present)
    return std::optional<std::string>();
  if (index >= chunkCount(digest.size))
    return failed("blob " + digest.text() + " has no chunk " + std::to_string(index));
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), chunkKey(digest, index), &value);
  if (!s.ok() || value.size() != std::min<uint64_t>(kChunkSize, digest.size - uint64_t(index) * kChunkSize)) {
    impl_->drop(digest);
    return failed("blob " + digest.text() + ": chunk " + std::to_string(index) +
                  " is missing or truncated; dropped from the store");
  }
  return std::optional<std::string>(std::move(value));
}

Result<Store::Writer> Store::write(const Digest &digest) {
  auto st = std::make_unique<Writer::State>();
  st->impl = impl_.get();
  st->digest = digest;
  return Writer(std::move(st));
}

Store::Writer::Writer(std::unique_ptr<State> s) : s_(std::move(s)) {}
Store::Writer::Writer(Writer &&) noexcept = default;

Store::Writer::~Writer() {
  // Unfinished: its chunks are garbage, unless another writer completed the
  // same blob meanwhile (the chunks are then that blob's, byte for byte).
  if (s_ && !s_->done && s_->large() && s_->nextChunk > 0) {
    auto present = s_->impl->has(s_->digest);
    if (present.ok() && !*present)
      s_->impl->drop(s_->digest);
  }
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
  while (s.large() && s.pending.size() >= kChunkSize) {
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
  if (s.received != s.digest.size) {
    s.impl->drop(s.digest);
    return failed("blob " + s.digest.text() + ": truncated, received " +
                  std::to_string(s.received) + " bytes");
  }
  Digest actual = s.hash.finish();
  if (actual != s.digest) {
    s.impl->drop(s.digest);
    return failed("blob " + s.digest.text() + ": refused, its content hashes to " + actual.text());
  }
  rocksdb::WriteBatch batch;
  if (!s.large()) {
    batch.Put(key('b', s.digest), s.pending);
  } else {
    if (!s.pending.empty())
      TF_CHECK(s.flushChunk(s.pending));
    std::string count;
    putBE(count, s.nextChunk, 4);
    batch.Put(key('m', s.digest), count); // last: the blob becomes visible
  }
  return s.impl->writeBatch(batch, "writing " + s.digest.text());
}

} // namespace thinfarm
