// The coordinator's side of blob transfer: answers findMissing, putChunk and
// getChunk from its store (wire/blob_transfer.h is the other side).
//
// Uploads of large blobs are assembled in a Store::Writer per (peer, blob);
// chunks must come in order (ZeroMQ keeps a peer's order), and every chunk is
// acknowledged once written, which is the uploader's flow control. A blob the
// store holds already is acknowledged without writing it again.
#pragma once

#include "coordinator/scheduler.h"
#include "storage/store.h"

#include <map>

namespace thinfarm {

class BlobService {
public:
  explicit BlobService(Store &store) : store_(store) {}

  void onFindMissing(const wire::PeerId &peer, uint64_t requestId, const wire::FindMissing &m,
                     Outbox &out);
  void onPutChunk(const wire::PeerId &peer, uint64_t requestId, wire::PutChunk &&c, Outbox &out);
  void onGetChunk(const wire::PeerId &peer, uint64_t requestId, const wire::GetChunk &g,
                  Outbox &out);
  // Drops unfinished uploads of peers not heard from in a while.
  void forgetIdle(Clock::time_point now);

private:
  struct Upload {
    std::optional<Store::Writer> writer; // none: the store has the blob already
    uint64_t next = 0;
    Clock::time_point lastSeen;
  };
  Store &store_;
  std::map<std::pair<wire::PeerId, Digest>, Upload> uploads_;
};

} // namespace thinfarm
