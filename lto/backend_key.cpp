// The backend key: everything that can change a backend's native object, and
// nothing else.
//
//   key = SHA-256 over, in this order (each string length-prefixed):
//     "thinfarm backend key v1"
//     toolchain        backendIdentity(): LLVM's version and target, the GNU
//                      build-id of the LLVM library the backend runs, and the
//                      digest of thinfarm's backend sources (this file among
//                      them, so changing the recipe changes every key)
//     config           opt and codegen levels, relocatable, PIC, and the LLVM
//                      options in lld's order (-plugin-opt=mcpu=, target
//                      features, -mllvm ...)
//     module           the digest of the module's bitcode
//     shard            the digest of the index shard's *canonical form* (below)
//     imports          the digests of the modules it imports from, sorted
//     incbins          (path, digest) of every file its module asm pulls in
//                      with .incbin, sorted by path; the path is relative to
//                      the build directory, exactly as the asm spells it
//
// Not in the key: module identifiers, file names, the build directory, the
// task number. The same tree built in another directory or on another machine
// gets the same keys.
//
// The shard's canonical form. An index shard names modules by path (its
// module string table), so hashing its bytes would put paths in the key.
// Instead the bitstream is walked record by record and hashed as decoded
// values (block ids, record codes, operands, blobs), with each module path
// replaced by the content digest of that module ("self" marks the module being
// compiled). Abbreviations are left out: the writer picks them by the
// characters of a path, so they vary with the directory. The module numbering
// follows the paths' sort order, which a tree moved as a whole keeps. A path
// the job does not name (it should not happen) stays in as text: a miss, never
// a wrong hit.
//
// Why .incbin files: module asm may pull files in (kernel/configs.c includes
// kernel/config_data.gz), and the bitcode only names them. lld's own
// --thinlto-cache-dir key leaves them out, which links a stale /proc/config.gz
// after a config edit.
#include "lto/backend_key.h"

#include <llvm/Bitcode/LLVMBitCodes.h>
#include <llvm/Bitstream/BitstreamReader.h>

#include <algorithm>
#include <map>
#include <optional>

namespace thinfarm {

namespace {

std::string errorText(llvm::Error e) {
  return llvm::toString(std::move(e));
}

// Walks one block (or the top level) of a bitstream, hashing its content.
class ShardCanonicalizer {
public:
  ShardCanonicalizer(DigestBuilder &h, const std::map<std::string, std::string, std::less<>> &names)
      : h_(h), names_(names) {}

  Status walk(llvm::BitstreamCursor &c, std::optional<unsigned> block) {
    for (;;) {
      if (!block && c.AtEndOfStream())
        return ok();
      llvm::Expected<llvm::BitstreamEntry> e = c.advance();
      if (!e)
        return failed(errorText(e.takeError()));
      switch (e->Kind) {
      case llvm::BitstreamEntry::Error:
        return failed("malformed bitstream");
      case llvm::BitstreamEntry::EndBlock:
        if (!block)
          return failed("a block ends at the top level");
        h_.updateU64('E');
        return ok();
      case llvm::BitstreamEntry::SubBlock: {
        if (e->ID == llvm::bitc::BLOCKINFO_BLOCK_ID) {
          auto info = c.ReadBlockInfoBlock();
          if (!info)
            return failed(errorText(info.takeError()));
          std::optional<llvm::BitstreamBlockInfo> &read = *info;
          if (!read)
            return failed("a truncated block-info block");
          info_ = std::move(*read);
          c.setBlockInfo(&info_);
          continue;
        }
        if (llvm::Error err = c.EnterSubBlock(e->ID))
          return failed(errorText(std::move(err)));
        h_.updateU64('B');
        h_.updateU64(e->ID);
        TF_CHECK(walk(c, e->ID));
        continue;
      }
      case llvm::BitstreamEntry::Record:
        TF_CHECK(record(c, e->ID, block.value_or(~0u)));
        continue;
      }
    }
  }

private:
  Status record(llvm::BitstreamCursor &c, unsigned abbrev, unsigned block) {
    vals_.clear();
    llvm::StringRef blob;
    llvm::Expected<unsigned> code = c.readRecord(abbrev, vals_, &blob);
    if (!code)
      return failed(errorText(code.takeError()));
    h_.updateU64('R');
    h_.updateU64(*code);
    if (block == llvm::bitc::MODULE_STRTAB_BLOCK_ID && *code == llvm::bitc::MST_CODE_ENTRY &&
        !vals_.empty()) {
      std::string path;
      for (size_t i = 1; i < vals_.size(); ++i)
        path.push_back(static_cast<char>(vals_[i]));
      auto it = names_.find(path);
      h_.updateU64(vals_[0]);
      h_.updateText(it != names_.end() ? it->second : "path:" + path);
      return ok();
    }
    h_.updateU64(vals_.size());
    for (uint64_t v : vals_)
      h_.updateU64(v);
    h_.updateText(std::string_view(blob.data(), blob.size()));
    return ok();
  }

  DigestBuilder &h_;
  const std::map<std::string, std::string, std::less<>> &names_;
  llvm::BitstreamBlockInfo info_;
  llvm::SmallVector<uint64_t, 64> vals_;
};

std::string contentName(const Digest &d, bool self) {
  return (self ? "self:" : "module:") + d.text();
}

Result<Digest> canonicalShard(const BackendKeyInputs &in) {
  std::map<std::string, std::string, std::less<>> names;
  for (const NamedDigest &m : in.imports)
    names[m.name] = contentName(m.digest, false);
  names[std::string(in.moduleId)] = contentName(in.module, true);

  DigestBuilder h;
  // The magic: 'B', 'C', then 0x0 0xC 0xE 0xD in four bits each, which are
  // the bytes C0 DE (compared as bytes, as llvm::isRawBitcode does).
  if (!in.shard.starts_with(std::string_view("BC\xC0\xDE", 4)))
    return failed("not a bitcode file");
  llvm::BitstreamCursor c(
      llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(in.shard.data()), in.shard.size()));
  if (llvm::Error err = c.JumpToBit(32)) { // past the magic
    llvm::consumeError(std::move(err));
    return failed("not a bitcode file");
  }
  ShardCanonicalizer walker(h, names);
  TF_CHECK(walker.walk(c, std::nullopt));
  return h.finish();
}

} // namespace

Result<Digest> backendKey(const BackendKeyInputs &in) {
  auto shard = canonicalShard(in);
  if (!shard.ok())
    return failed("index shard of " + std::string(in.moduleId) + ": " + shard.error().message);
  DigestBuilder h;
  h.updateText("thinfarm backend key v1");
  h.updateText(in.toolchain);
  const BackendConfig &cfg = *in.config;
  h.updateU64(static_cast<uint64_t>(cfg.optLevel));
  h.updateU64(static_cast<uint64_t>(cfg.cgOptLevel));
  h.updateU64(cfg.relocatable);
  h.updateU64(cfg.pic);
  h.updateU64(cfg.llvmOptions.size());
  for (const std::string &o : cfg.llvmOptions)
    h.updateText(o);
  h.updateU64(cfg.mllvm.size());
  for (const std::string &o : cfg.mllvm)
    h.updateText(o);
  h.updateDigest(in.module);
  h.updateDigest(*shard);
  std::vector<Digest> imports;
  imports.reserve(in.imports.size());
  for (const NamedDigest &m : in.imports)
    imports.push_back(m.digest);
  std::sort(imports.begin(), imports.end());
  h.updateU64(imports.size());
  for (const Digest &d : imports)
    h.updateDigest(d);
  std::vector<const NamedDigest *> incbins;
  incbins.reserve(in.incbins.size());
  for (const NamedDigest &f : in.incbins)
    incbins.push_back(&f);
  std::sort(incbins.begin(), incbins.end(),
            [](const NamedDigest *a, const NamedDigest *b) { return a->name < b->name; });
  h.updateU64(incbins.size());
  for (const NamedDigest *f : incbins) {
    h.updateText(f->name);
    h.updateDigest(f->digest);
  }
  return h.finish();
}

} // namespace thinfarm
