#include "wire/blob_transfer.h"

#include <algorithm>
#include <deque>
#include <map>
#include <unordered_map>

namespace thinfarm::wire {

namespace {

// The next answer on the socket (a message with a request id); the rest goes
// to `other`. `since`: the socket's disconnects() before the requests were
// sent; a loss after it means they may never be answered.
Result<Message> nextAnswer(Socket &s, uint64_t since, const OtherMessage &other,
                           std::chrono::milliseconds silence = kAnswerTimeout) {
  const auto deadline = std::chrono::steady_clock::now() + silence;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto r = s.receive(std::max(left, std::chrono::milliseconds(0)));
    if (!r && s.disconnects() != since)
      return Error{ErrorKind::Disconnected,
                   "the connection to " + s.endpoint() + " was lost"};
    if (!r && std::chrono::steady_clock::now() < deadline)
      continue;
    if (!r)
      return Error{ErrorKind::Disconnected,
                   "no answer from " + s.endpoint() + " in " +
                       std::to_string(silence.count()) + " ms"};
    if (!r->message.ok())
      return std::move(r->message).error();
    Message m = std::move(*r->message);
    if (m.requestId == 0) {
      if (other)
        other(std::move(m));
      continue;
    }
    return m;
  }
}

Error fromReply(const ErrorMsg &e) { return Error{e.kind, e.message}; }

// The socket's losses so far, once it has a connection to send on.
Result<uint64_t> connection(Socket &s) {
  TF_CHECK(awaitConnection(s, kConnectTimeout));
  return s.disconnects();
}

} // namespace

Status awaitConnection(Socket &s, std::chrono::milliseconds within) {
  if (s.waitConnected(within))
    return ok();
  if (auto r = s.receive(std::chrono::milliseconds(0)); r && !r->message.ok())
    return std::move(r->message).error(); // a refused handshake says why
  return Error{ErrorKind::Disconnected, "no connection to the coordinator at " + s.endpoint() +
                                            " within " + std::to_string(within.count()) + " ms"};
}

Result<Message> call(Socket &s, Body request, const OtherMessage &other) {
  TF_TRY(const uint64_t since, connection(s));
  uint64_t id = s.newRequestId();
  TF_CHECK(s.send(Message{id, std::move(request)}));
  for (;;) {
    TF_TRY(Message m, nextAnswer(s, since, other));
    if (m.requestId != id)
      continue; // the late answer of an abandoned request
    if (auto *e = m.get<ErrorMsg>())
      return fromReply(*e);
    return m;
  }
}

Result<std::vector<Digest>> findMissing(Socket &s, std::span<const Digest> digests,
                                        const OtherMessage &other,
                                        std::chrono::milliseconds silence) {
  TF_TRY(const uint64_t since, connection(s));
  std::vector<Digest> missing;
  constexpr size_t kBatch = 16384; // keeps a frame well under kMaxFrame
  for (size_t i = 0; i < digests.size(); i += kBatch) {
    size_t n = std::min(kBatch, digests.size() - i);
    uint64_t id = s.newRequestId();
    TF_CHECK(s.send(Message{id, FindMissing{{digests.begin() + i, digests.begin() + i + n}}}));
    TF_TRY(Message m, nextAnswer(s, since, other, silence));
    if (auto *e = m.get<ErrorMsg>())
      return fromReply(*e);
    auto *got = m.get<Missing>();
    if (!got || m.requestId != id)
      return failed(std::string("protocol error: expected missing, got ") + kindName(m.body));
    missing.insert(missing.end(), got->digests.begin(), got->digests.end());
  }
  return missing;
}

Status upload(Socket &s, std::span<const BlobRef> blobs, const OtherMessage &other,
              std::chrono::milliseconds silence) {
  // Every chunk to send, in order.
  struct Piece {
    size_t blob;
    uint64_t offset;
  };
  std::deque<Piece> todo;
  for (size_t b = 0; b < blobs.size(); ++b) {
    uint64_t size = blobs[b].bytes.size();
    uint64_t off = 0;
    do {
      todo.push_back({b, off});
      off += kChunk;
    } while (off < size);
  }
  TF_TRY(const uint64_t since, connection(s));
  std::unordered_map<uint64_t, Piece> inFlight;
  while (!todo.empty() || !inFlight.empty()) {
    while (!todo.empty() && inFlight.size() < kWindow) {
      Piece p = todo.front();
      todo.pop_front();
      const BlobRef &blob = blobs[p.blob];
      PutChunk c;
      c.digest = blob.digest;
      c.offset = p.offset;
      c.bytes = std::string(blob.bytes.substr(p.offset, kChunk));
      uint64_t id = s.newRequestId();
      TF_CHECK(s.send(Message{id, std::move(c)}));
      inFlight.emplace(id, p);
    }
    TF_TRY(Message m, nextAnswer(s, since, other, silence));
    auto it = inFlight.find(m.requestId);
    if (it == inFlight.end())
      continue; // a late answer to an earlier, abandoned call
    if (auto *e = m.get<ErrorMsg>())
      return Error(fromReply(*e)).context("uploading " + blobs[it->second.blob].digest.text());
    if (!m.get<PutAck>())
      return failed(std::string("protocol error: expected putAck, got ") + kindName(m.body));
    inFlight.erase(it);
  }
  return ok();
}

Status download(Socket &s, std::span<const Digest> digests,
                const std::function<Status(const Digest &, std::string &&)> &take,
                const OtherMessage &other) {
  struct Piece {
    size_t blob;
    uint64_t offset;
  };
  std::vector<std::string> bufs(digests.size());
  std::vector<uint64_t> received(digests.size(), 0);
  // The chunks to ask for, made one at a time: a size a peer declared
  // (a job's inputs) costs nothing before the store that serves it agrees.
  Piece next{0, 0};
  auto more = [&] { return next.blob < digests.size(); };
  auto nextPiece = [&] {
    Piece p = next;
    next.offset += kChunk;
    if (next.offset >= digests[next.blob].size)
      next = {next.blob + 1, 0};
    return p;
  };
  TF_TRY(const uint64_t since, connection(s));
  std::unordered_map<uint64_t, Piece> inFlight;
  while (more() || !inFlight.empty()) {
    while (more() && inFlight.size() < kWindow) {
      Piece p = nextPiece();
      uint64_t id = s.newRequestId();
      GetChunk g;
      g.digest = digests[p.blob];
      g.offset = p.offset;
      TF_CHECK(s.send(Message{id, g}));
      inFlight.emplace(id, p);
    }
    TF_TRY(Message m, nextAnswer(s, since, other));
    auto it = inFlight.find(m.requestId);
    if (it == inFlight.end())
      continue;
    Piece p = it->second;
    inFlight.erase(it);
    const Digest &d = digests[p.blob];
    if (auto *e = m.get<ErrorMsg>())
      return Error(fromReply(*e)).context("downloading " + d.text());
    auto *c = m.get<Chunk>();
    if (!c || c->digest != d || c->offset != p.offset)
      return failed("protocol error: an answer that is not chunk " + std::to_string(p.offset) +
                    " of " + d.text());
    uint64_t expect = std::min<uint64_t>(kChunk, d.size - p.offset);
    if (c->bytes.size() != expect)
      return failed("download of " + d.text() + ": chunk at " + std::to_string(p.offset) +
                    " has " + std::to_string(c->bytes.size()) + " bytes, expected " +
                    std::to_string(expect));
    std::string &buf = bufs[p.blob];
    if (p.offset == buf.size()) { // in order, as one socket delivers them: no zero-filling first
      buf.reserve(d.size);
      buf.append(c->bytes);
    } else {
      if (buf.size() != d.size)
        buf.resize(d.size);
      buf.replace(p.offset, c->bytes.size(), c->bytes);
    }
    received[p.blob] += c->bytes.size();
    if (received[p.blob] == d.size) {
      if (Digest::of(buf) != d)
        return failed("download of " + d.text() + ": the bytes received do not match the digest");
      TF_CHECK(take(d, std::move(buf)));
      buf = std::string();
    }
  }
  return ok();
}

} // namespace thinfarm::wire
