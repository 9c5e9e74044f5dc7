// Fuzzes how the coordinator accepts and serves blob chunks
// (coordinator/blob_service.cpp over a real Store in a scratch directory,
// fed through the wire codec as a peer's frames would be).
//
// The input is a script of operations by two peers: raw frames (decoded,
// then handed to the service if they are blob traffic), and chunks of two
// real blobs (one small, one of two chunks) sent in any order, spoiled or
// not, fetched back and asked about. What must hold:
//  - every request gets exactly one answer, to its sender, under its id;
//  - an ack of a blob's last chunk means the store holds that blob;
//  - a chunk served is exactly the blob's bytes at that offset, and encodes
//    into a frame its receiver accepts;
//  - nothing stored under a digest differs from it (no corruption counted).
// The store persists across inputs (opening RocksDB per input would be most
// of the time); each input salts its two blobs, so every input starts with
// blobs the store has not seen, and a small budget keeps the store small.
#include "coordinator/blob_service.h"
#include "storage/store.h"
#include "tests/fuzz/fuzz.h"
#include "wire/messages.h"

#include <cstring>
#include <optional>

using namespace thinfarm;

namespace {

Store openStore(const std::string &dir) {
  auto s = Store::open(dir, StoreOptions{64u << 20, 60});
  if (!s.ok())
    fuzz::fail("cannot open a store: " + s.error().message);
  return std::move(*s);
}

struct Fixture {
  fuzz::ScratchDir dir; // declared first: outlives the store
  Store store{openStore(dir.path() + "/store")};
  uint64_t salt = 0;
};

Fixture &fixture() {
  static Fixture f;
  return f;
}

struct KnownBlob {
  std::string bytes;
  Digest digest;
};

// Reads the script; past its end every read is 0.
class Script {
public:
  Script(const uint8_t *data, size_t size) : p_(data), end_(data + size) {}
  bool more() const { return p_ < end_; }
  uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
  uint16_t u16() { return static_cast<uint16_t>(byte() | byte() << 8); }
  uint64_t u64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= uint64_t(byte()) << (8 * i);
    return v;
  }
  std::string_view take(size_t n) {
    n = std::min<size_t>(n, end_ - p_);
    std::string_view s(reinterpret_cast<const char *>(p_), n);
    p_ += n;
    return s;
  }

private:
  const uint8_t *p_, *end_;
};

class Run {
public:
  explicit Run(Fixture &fx) : fx_(fx), service_(fx.store), salt_(++fx.salt) {
    corruptBefore_ = fx.store.stats().corrupt;
  }

  // A known blob, made when the script first names it (most inputs never
  // touch the large one: a MiB to copy and hash).
  const KnownBlob &blob(unsigned which) {
    KnownBlob &b = blobs_[which & 1];
    if (b.bytes.empty()) {
      std::string tag(reinterpret_cast<const char *>(&salt_), sizeof salt_);
      if (which & 1) {
        static const std::string pattern = [] {
          std::string p(wire::kChunk + 3000, '\0');
          for (size_t i = 0; i < p.size(); ++i)
            p[i] = static_cast<char>((i * 2654435761u) >> 13);
          return p;
        }();
        b.bytes = pattern;
        b.bytes.replace(0, tag.size(), tag);
      } else {
        b.bytes = "a small blob, one chunk " + tag;
      }
      b.digest = Digest::of(b.bytes);
    }
    return b;
  }

  void step(Script &s) {
    uint8_t op = s.byte();
    wire::PeerId peer = op & 0x80 ? "peer-b" : "peer-a";
    uint64_t id = ++requestId_;
    switch (op & 7) {
    case 0: { // a raw frame from the peer
      size_t n = s.u16() % 2048;
      std::string frame(s.take(n));
      frame.resize((frame.size() + 7) / 8 * 8, '\0');
      if (auto m = wire::decode(frame); m.ok())
        deliver(peer, id, std::move(m->body));
      break;
    }
    case 1: { // a chunk of a known blob, perhaps spoiled
      const KnownBlob &b = blob(s.byte());
      wire::PutChunk c;
      c.digest = b.digest;
      c.offset = uint64_t(s.byte() % 3) * wire::kChunk;
      if (c.offset <= b.bytes.size())
        c.bytes = b.bytes.substr(c.offset, wire::kChunk);
      uint8_t spoil = s.byte();
      switch (spoil % 6) {
      case 1:
        if (!c.bytes.empty())
          c.bytes[s.u16() % c.bytes.size()] ^= static_cast<char>(1 + spoil / 6);
        break;
      case 2: c.bytes.resize(std::min<size_t>(c.bytes.size(), s.u16())); break;
      case 3: c.offset += s.u16(); break;
      case 4: c.digest.size += s.u16(); break;
      case 5: c.offset = s.u64(); break;
      default: break;
      }
      sendAsFrame(peer, id, std::move(c));
      break;
    }
    case 2: { // fetch a chunk of a known blob
      wire::GetChunk g;
      g.digest = blob(s.byte()).digest;
      uint8_t how = s.byte();
      g.offset = how & 1 ? s.u64() : uint64_t(how >> 1) * wire::kChunk;
      sendAsFrame(peer, id, g);
      break;
    }
    case 3: { // which of the known blobs are missing
      wire::FindMissing f;
      uint8_t which = s.byte();
      for (int i = 0; i < 3; ++i)
        if (which >> i & 1)
          f.digests.push_back(blob(i).digest);
      sendAsFrame(peer, id, std::move(f));
      break;
    }
    default: // time passes: unfinished uploads are dropped
      service_.forgetIdle(Clock::now() + std::chrono::minutes(2));
      break;
    }
  }

  void finish() {
    for (const KnownBlob &b : blobs_) {
      if (b.bytes.empty())
        continue;
      auto got = fx_.store.get(b.digest);
      if (!got.ok())
        continue; // counted as corrupt, checked below
      const std::optional<std::string> &stored = *got;
      if (stored.has_value() && *stored != b.bytes)
        fuzz::fail("the store returns other bytes for " + b.digest.text());
    }
    if (fx_.store.stats().corrupt != corruptBefore_)
      fuzz::fail("the store found corrupt entries: something stored bytes that are not "
                 "its digest's");
  }

private:
  // Through the codec, as the peer's frame would come: what decode refuses
  // never reaches the service.
  void sendAsFrame(const wire::PeerId &peer, uint64_t id, wire::Body body) {
    auto m = wire::decode(wire::encode(wire::Message{id, std::move(body)}));
    if (m.ok())
      deliver(peer, id, std::move(m->body));
  }

  const KnownBlob *known(const Digest &d) const {
    for (const KnownBlob &b : blobs_)
      if (!b.bytes.empty() && b.digest == d)
        return &b;
    return nullptr;
  }

  const wire::Message &onlyAnswer(const wire::PeerId &peer, uint64_t id) {
    if (out_.size() != 1)
      fuzz::fail(std::to_string(out_.size()) + " answers to one request");
    if (out_[0].first != peer || out_[0].second.requestId != id)
      fuzz::fail("an answer to another peer or under another request id");
    // The answer crosses the wire too: its receiver must accept the frame.
    auto back = wire::decode(wire::encode(out_[0].second));
    if (!back.ok())
      fuzz::fail(std::string("the service answers a ") + wire::kindName(out_[0].second.body) +
                 " its peer cannot decode: " + back.error().message);
    return out_[0].second;
  }

  void deliver(const wire::PeerId &peer, uint64_t id, wire::Body &&body) {
    out_.clear();
    if (auto *c = std::get_if<wire::PutChunk>(&body)) {
      const Digest digest = c->digest;
      const uint64_t offset = c->offset, end = c->offset + c->bytes.size();
      service_.onPutChunk(peer, id, std::move(*c), out_);
      const wire::Message &a = onlyAnswer(peer, id);
      if (auto *ack = a.get<wire::PutAck>()) {
        if (ack->digest != digest || ack->offset != offset)
          fuzz::fail("an ack of another chunk");
        if (end == digest.size) {
          auto missing = fx_.store.findMissing(std::span<const Digest>(&digest, 1));
          if (!missing.ok() || !missing->empty())
            fuzz::fail("the last chunk of " + digest.text() +
                       " is acknowledged, but the store does not hold the blob");
        }
      } else if (!a.get<wire::ErrorMsg>()) {
        fuzz::fail(std::string("a putChunk answered with ") + wire::kindName(a.body));
      }
    } else if (auto *g = std::get_if<wire::GetChunk>(&body)) {
      service_.onGetChunk(peer, id, *g, out_);
      const wire::Message &a = onlyAnswer(peer, id);
      if (auto *chunk = a.get<wire::Chunk>()) {
        if (chunk->digest != g->digest || chunk->offset != g->offset)
          fuzz::fail("a getChunk answered with another chunk");
        if (g->offset >= g->digest.size && g->digest.size != 0)
          fuzz::fail("a chunk served at offset " + std::to_string(g->offset) + " of a blob of " +
                     std::to_string(g->digest.size) + " bytes");
        if (const KnownBlob *b = known(g->digest);
            b && chunk->bytes != std::string_view(b->bytes).substr(g->offset, wire::kChunk))
          fuzz::fail("a chunk served with other bytes than the blob's at offset " +
                     std::to_string(g->offset));
      } else if (!a.get<wire::ErrorMsg>()) {
        fuzz::fail(std::string("a getChunk answered with ") + wire::kindName(a.body));
      }
    } else if (auto *f = std::get_if<wire::FindMissing>(&body)) {
      service_.onFindMissing(peer, id, *f, out_);
      const wire::Message &a = onlyAnswer(peer, id);
      if (auto *missing = a.get<wire::Missing>()) {
        if (missing->digests.size() > f->digests.size())
          fuzz::fail("more digests missing than asked about");
      } else if (!a.get<wire::ErrorMsg>()) {
        fuzz::fail(std::string("a findMissing answered with ") + wire::kindName(a.body));
      }
    }
  }

  Fixture &fx_;
  BlobService service_;
  uint64_t salt_;
  KnownBlob blobs_[2];
  Outbox out_;
  uint64_t requestId_ = 0;
  uint64_t corruptBefore_ = 0;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Run run(fixture());
  Script script(data, size);
  for (int steps = 0; script.more() && steps < 64; ++steps)
    run.step(script);
  run.finish();
  return 0;
}
