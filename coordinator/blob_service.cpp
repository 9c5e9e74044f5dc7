#include "coordinator/blob_service.h"

namespace thinfarm {

void BlobService::onFindMissing(const wire::PeerId &peer, uint64_t requestId,
                                const wire::FindMissing &m, Outbox &out) {
  auto missing = store_.findMissing(m.digests);
  if (!missing.ok()) {
    out.push_back({peer, wire::errorReply(requestId, ErrorKind::Failed, missing.error().message)});
    return;
  }
  out.push_back({peer, wire::Message{requestId, wire::Missing{std::move(*missing)}}});
}

void BlobService::onPutChunk(const wire::PeerId &peer, uint64_t requestId, wire::PutChunk &&c,
                             Outbox &out) {
  auto fail = [&](const std::string &why, ErrorKind kind = ErrorKind::Failed) {
    out.push_back({peer, wire::errorReply(requestId, kind, why)});
  };
  auto ack = [&] {
    wire::PutAck a;
    a.digest = c.digest;
    a.offset = c.offset;
    out.push_back({peer, wire::Message{requestId, a}});
  };
  // Every size a peer declares is bounded before it is acted on.
  if (c.digest.size > limits_.maxBlob)
    return fail("blob " + c.digest.text() + " (" + std::to_string(c.digest.size) +
                    " bytes) is larger than this coordinator's maximum blob size, --max-blob " +
                    std::to_string(limits_.maxBlob) + " bytes",
                ErrorKind::Exceeded);
  if (c.digest.size <= wire::kChunk) {
    if (c.offset != 0 || c.bytes.size() != c.digest.size)
      return fail("blob " + c.digest.text() + ": a small blob comes in one chunk");
    Status st = store_.put(c.digest, c.bytes); // checks the digest
    if (!st.ok())
      return fail(st.error().message);
    return ack();
  }
  auto key = std::make_pair(peer, c.digest);
  auto it = uploads_.find(key);
  if (it == uploads_.end()) {
    if (c.offset != 0) // its start went with a connection that was shut: upload it again
      return fail("blob " + c.digest.text() + ": upload starts at offset " +
                      std::to_string(c.offset) + " (its first chunks were lost)",
                  ErrorKind::Disconnected);
    PeerLoad &load = load_[peer];
    auto refuse = [&](const std::string &why, ErrorKind kind) {
      if (load.uploads == 0)
        load_.erase(peer); // no entry for a peer with nothing in flight
      fail(why, kind);
    };
    if (load.uploads + 1 > limits_.uploadsPerPeer)
      return refuse("too many uploads in flight from this peer: the cap is --peer-uploads " +
                      std::to_string(limits_.uploadsPerPeer),
                  ErrorKind::Overloaded);
    if (load.bytes + c.digest.size > limits_.uploadBytesPerPeer)
      return refuse("blob " + c.digest.text() + ": this peer's uploads in flight would hold " +
                      std::to_string(load.bytes + c.digest.size) +
                      " bytes; the cap is --peer-upload-bytes " +
                      std::to_string(limits_.uploadBytesPerPeer),
                  ErrorKind::Overloaded);
    Upload u;
    auto present = store_.findMissing(std::span<const Digest>(&c.digest, 1));
    if (!present.ok())
      return refuse(present.error().message, ErrorKind::Failed);
    if (!present->empty()) {
      // Reserves its size against the store's budget; Overloaded while another
      // peer uploads the same blob or the budget is held: the uploader tries again.
      auto w = store_.write(c.digest);
      if (!w.ok())
        return refuse(w.error().message, w.error().kind);
      u.writer.emplace(std::move(*w));
    }
    load.uploads++;
    load.bytes += c.digest.size;
    it = uploads_.emplace(key, std::move(u)).first;
  }
  Upload &u = it->second;
  u.lastSeen = Clock::now();
  if (c.offset != u.next) {
    std::string why = "blob " + c.digest.text() + ": chunk at " + std::to_string(c.offset) +
                      " out of order (expected " + std::to_string(u.next) + ")";
    erase(it);
    return fail(why);
  }
  if (c.bytes.size() > c.digest.size - u.next) {
    std::string why = "blob " + c.digest.text() + ": more bytes than its size";
    erase(it);
    return fail(why);
  }
  u.next += c.bytes.size();
  if (u.writer) {
    if (Status st = u.writer->append(c.bytes); !st.ok()) {
      erase(it);
      return fail(st.error().message);
    }
  }
  if (u.next == c.digest.size) {
    Status st = u.writer ? u.writer->finish() : ok();
    erase(it);
    if (!st.ok())
      return fail(st.error().message);
  }
  ack();
}

void BlobService::onGetChunk(const wire::PeerId &peer, uint64_t requestId,
                             const wire::GetChunk &g, Outbox &out) {
  // A chunk's offset, inside the blob (an empty blob has one chunk, at 0):
  // the store's chunk index is 32 bits, and 2^32 MiB must not wrap to chunk 0.
  if (g.offset % wire::kChunk != 0 || (g.offset >= g.digest.size && g.offset != 0)) {
    out.push_back({peer, wire::errorReply(requestId, ErrorKind::Failed,
                                          "blob " + g.digest.text() + ": offset " +
                                              std::to_string(g.offset) + " is not a chunk's")});
    return;
  }
  auto chunk = store_.getChunk(g.digest, static_cast<uint32_t>(g.offset / wire::kChunk));
  if (!chunk.ok()) {
    out.push_back({peer, wire::errorReply(requestId, ErrorKind::Failed, chunk.error().message)});
    return;
  }
  std::optional<std::string> &bytes = *chunk;
  if (!bytes) {
    out.push_back({peer, wire::errorReply(requestId, ErrorKind::Failed,
                                          "blob " + g.digest.text() +
                                              " is not in the coordinator's store")});
    return;
  }
  wire::Chunk c;
  c.digest = g.digest;
  c.offset = g.offset;
  c.bytes = std::move(*bytes);
  out.push_back({peer, wire::Message{requestId, std::move(c)}});
}

void BlobService::erase(std::map<Key, Upload>::iterator it) {
  auto load = load_.find(it->first.first);
  if (load != load_.end()) {
    load->second.uploads -= std::min<size_t>(load->second.uploads, 1);
    load->second.bytes -= std::min(load->second.bytes, it->first.second.size);
    if (load->second.uploads == 0)
      load_.erase(load);
  }
  uploads_.erase(it); // the writer goes, and its reservation with it
}

void BlobService::forgetIdle(Clock::time_point now) {
  for (auto it = uploads_.begin(); it != uploads_.end();) {
    auto next = std::next(it);
    if (now - it->second.lastSeen > limits_.uploadIdle)
      erase(it);
    it = next;
  }
}

void BlobService::forgetPeer(const wire::PeerId &peer) {
  auto it = uploads_.lower_bound(Key(peer, Digest()));
  while (it != uploads_.end() && it->first.first == peer) {
    auto next = std::next(it);
    erase(it);
    it = next;
  }
}

} // namespace thinfarm
