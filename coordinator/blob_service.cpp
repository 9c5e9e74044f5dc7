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
  auto fail = [&](const std::string &why) {
    out.push_back({peer, wire::errorReply(requestId, ErrorKind::Failed, why)});
  };
  auto ack = [&] {
    wire::PutAck a;
    a.digest = c.digest;
    a.offset = c.offset;
    out.push_back({peer, wire::Message{requestId, a}});
  };
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
    if (c.offset != 0)
      return fail("blob " + c.digest.text() + ": upload starts at offset " +
                  std::to_string(c.offset));
    Upload u;
    auto present = store_.findMissing(std::span<const Digest>(&c.digest, 1));
    if (!present.ok())
      return fail(present.error().message);
    if (!present->empty()) {
      auto w = store_.write(c.digest);
      if (!w.ok()) { // Overloaded while another peer uploads it: the uploader tries again
        out.push_back({peer, wire::errorReply(requestId, w.error().kind, w.error().message)});
        return;
      }
      u.writer.emplace(std::move(*w));
    }
    it = uploads_.emplace(key, std::move(u)).first;
  }
  Upload &u = it->second;
  u.lastSeen = Clock::now();
  if (c.offset != u.next) {
    std::string why = "blob " + c.digest.text() + ": chunk at " + std::to_string(c.offset) +
                      " out of order (expected " + std::to_string(u.next) + ")";
    uploads_.erase(it);
    return fail(why);
  }
  u.next += c.bytes.size();
  if (u.writer) {
    if (Status st = u.writer->append(c.bytes); !st.ok()) {
      uploads_.erase(it);
      return fail(st.error().message);
    }
  }
  if (u.next == c.digest.size) {
    Status st = u.writer ? u.writer->finish() : ok();
    uploads_.erase(it);
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

void BlobService::forgetIdle(Clock::time_point now) {
  std::erase_if(uploads_, [&](const auto &kv) {
    return now - kv.second.lastSeen > std::chrono::seconds(60);
  });
}

} // namespace thinfarm
