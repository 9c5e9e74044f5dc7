// thinfarm-store-corrupt DIR SHA256HEX | --all
//
// A test aid, not part of thinfarm: damages stored blobs behind the store's
// back, the way bit rot or a bug below RocksDB would. It rewrites a blob's
// value (a small blob, or a large blob's first chunk) with one byte flipped,
// through RocksDB, so RocksDB's own checksums stay valid and only thinfarm's
// digest check can notice. The key grammar is storage/store.h's.
#include <rocksdb/db.h>

#include <cstdio>
#include <memory>
#include <string>

namespace {

std::string hex(std::string_view bytes) {
  std::string out;
  char b[3];
  for (unsigned char c : bytes) {
    std::snprintf(b, sizeof b, "%02x", c);
    out += b;
  }
  return out;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: thinfarm-store-corrupt DIR SHA256HEX|--all\n");
    return 2;
  }
  std::string want = argv[2];
  bool all = want == "--all";
  rocksdb::DB *raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(rocksdb::Options(), argv[1], &raw);
  if (!s.ok()) {
    std::fprintf(stderr, "thinfarm-store-corrupt: cannot open %s: %s\n", argv[1],
                 s.ToString().c_str());
    return 1;
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  std::vector<std::pair<std::string, std::string>> victims;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view k(it->key().data(), it->key().size());
    // 'b' sha256 size: a small blob; 'c' sha256 size index 0: a large blob's first chunk.
    bool small = k.size() == 41 && k[0] == 'b';
    bool chunk0 = k.size() == 45 && k[0] == 'c' && k.substr(41) == std::string_view("\0\0\0\0", 4);
    if ((!small && !chunk0) || it->value().size() == 0)
      continue;
    if (all || hex(k.substr(1, 32)) == want)
      victims.push_back({std::string(k), it->value().ToString()});
  }
  it.reset();
  for (auto &[k, v] : victims) {
    v[v.size() / 2] ^= 0x5a;
    if (!db->Put(rocksdb::WriteOptions(), k, v).ok())
      return 1;
    std::printf("corrupted blob %s (%zu bytes, byte %zu flipped)\n", hex(k.substr(1, 32)).c_str(),
                v.size(), v.size() / 2);
  }
  if (victims.empty()) {
    std::fprintf(stderr, "thinfarm-store-corrupt: no blob %s in %s\n", want.c_str(), argv[1]);
    return 1;
  }
  return 0;
}
