// The content-addressed store: blobs (bitcode, index shards, native objects)
// keyed by their Digest, in RocksDB.
//
// On-disk layout, one RocksDB database per store directory:
//
//   key       := small-key | manifest-key | chunk-key
//   small-key := 'b' sha256[32] size[8]          value := the blob itself (size <= 1 MiB)
//   manifest  := 'm' sha256[32] size[8]          value := chunk-count[4]  (size > 1 MiB)
//   chunk-key := 'c' sha256[32] size[8] index[4] value := bytes [index MiB, index+1 MiB)
//
// Integers are big-endian, so a blob's chunks sort together and in order. A
// large blob's chunks are written first and its manifest last, in the same
// write-ahead-logged batch order: a crash leaves at most unreferenced chunks,
// never a manifest without its chunks. Every write and every read checks the
// content against the digest; a mismatch is an error that names the blob,
// never silent data, and a corrupt entry is dropped so it can be put again.
#pragma once

#include "base/result.h"
#include "storage/digest.h"

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace thinfarm {

class Store {
public:
  static constexpr size_t kChunkSize = 1 << 20;

  // Opens (creating if needed) the store in dir.
  static Result<Store> open(const std::string &dir);
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

private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace thinfarm
