// The coordinator's side of blob transfer: answers findMissing, putChunk and
// getChunk from its store (wire/blob_transfer.h is the other side).
//
// Uploads of large blobs are assembled in a Store::Writer per (peer, blob);
// chunks must come in order (ZeroMQ keeps a peer's order), and every chunk is
// acknowledged once written, which is the uploader's flow control. A blob the
// store holds already is acknowledged without writing it again.
//
// Bounds (BlobLimits, the coordinator's flags): a blob's declared size is
// checked against the maximum before anything is written (over it: an
// Exceeded error, the client runs that work locally); an upload's first chunk
// reserves the declared size against the store's budget (Store::write) and
// counts against its peer's uploads and bytes in flight (over either cap: an
// Overloaded error, the client backs off). An upload ends when its last chunk
// is stored, on an error, when its peer is gone (forgetPeer) or after
// `uploadIdle` without a chunk (forgetIdle); its reservation ends with it.
//
// The coordinator has one per store lane (store_lanes.h), used by that lane's
// thread alone: a peer's uploads, and its caps, live on its lane's.
#pragma once

#include "coordinator/scheduler.h"
#include "storage/store.h"

#include <map>

namespace thinfarm {

struct BlobLimits {
  uint64_t maxBlob = uint64_t(2) << 30;            // bytes; --max-blob
  size_t uploadsPerPeer = 16;                      // large uploads in flight; --peer-uploads
  uint64_t uploadBytesPerPeer = uint64_t(4) << 30; // their declared sizes; --peer-upload-bytes
  std::chrono::seconds uploadIdle{30};             // no chunk for this long: dropped
};

class BlobService {
public:
  explicit BlobService(Store &store, BlobLimits limits = {}) : store_(store), limits_(limits) {}

  void onFindMissing(const wire::PeerId &peer, uint64_t requestId, const wire::FindMissing &m,
                     Outbox &out);
  void onPutChunk(const wire::PeerId &peer, uint64_t requestId, wire::PutChunk &&c, Outbox &out);
  void onGetChunk(const wire::PeerId &peer, uint64_t requestId, const wire::GetChunk &g,
                  Outbox &out);
  // Drops unfinished uploads that had no chunk for limits.uploadIdle.
  void forgetIdle(Clock::time_point now);
  // Drops the unfinished uploads of a peer that is gone.
  void forgetPeer(const wire::PeerId &peer);

private:
  struct Upload {
    std::optional<Store::Writer> writer; // none: the store has the blob already
    uint64_t next = 0;
    Clock::time_point lastSeen;
  };
  struct PeerLoad {
    size_t uploads = 0;
    uint64_t bytes = 0;
  };
  using Key = std::pair<wire::PeerId, Digest>;
  void erase(std::map<Key, Upload>::iterator it);

  Store &store_;
  BlobLimits limits_;
  std::map<Key, Upload> uploads_;
  std::map<wire::PeerId, PeerLoad> load_; // what each peer's uploads_ hold
};

} // namespace thinfarm
