// Shims: how the reassembly link sees each bitcode module.
//
// lld numbers global symbols in the order it first meets them, and it meets a
// bitcode file's symbols when it reads that file: the defined ones first,
// then the undefined ones (BitcodeFile::parse). After LTO it turns every
// symbol a bitcode file defined into an undefined one and lets the native
// objects, which it adds after all inputs, define them. The reassembly link
// gets the same order by putting, at each bitcode input's position, an object
// that only references that module's symbols, and the native objects after
// all inputs in lld's task order. A name that LTO dropped or internalized
// never reaches lld's output (nothing regular defines or references it), so a
// shim lists only names that some native object, or native input lld loads,
// has as a global (a lazy member lld never loaded does not count). Binding and visibility follow
// lld's merging rules, so the output symbol keeps the attributes it has in a stock link. Types: lld
// gives bitcode symbols STT_NOTYPE, or STT_TLS for thread-locals.
//
// A shim holds no sections that reach the output, only a symbol table: an
// assembler would add empty .text/.data/.bss, and in a -r link those shift
// section indices and symbols of the output. Besides the symbol table it has
// the two sections lld reads from every ELF input and then drops, written so
// that the shim changes nothing lld derives from them (see shim.h).
#include "lto/shim.h"

#include <cstring>
#include <unordered_map>

namespace thinfarm {

namespace {

int visibilityRank(uint8_t stv) {
  switch (stv) {
  case 1:
    return 3; // STV_INTERNAL
  case 2:
    return 2; // STV_HIDDEN
  case 3:
    return 1; // STV_PROTECTED
  default:
    return 0;
  }
}

template <class T> void put(std::string &out, size_t off, T v) {
  std::memcpy(out.data() + off, &v, sizeof v);
}

void align(std::string &s, size_t a) {
  while (s.size() % a)
    s.push_back('\0');
}

} // namespace

std::vector<ShimSymbol> shimSymbols(const std::vector<IRSymbol> &irSymbols,
                                    const std::unordered_set<std::string> &live) {
  std::vector<ShimSymbol> out;
  std::unordered_map<std::string, size_t> seen;
  for (int pass = 0; pass < 2; ++pass) {
    bool wantUndefined = pass == 1;
    for (const IRSymbol &s : irSymbols) {
      if (s.undefined != wantUndefined || !live.count(s.name))
        continue;
      auto [it, inserted] = seen.emplace(s.name, out.size());
      if (inserted) {
        out.push_back({s.name, s.weak, s.tls, s.visibility});
        continue;
      }
      ShimSymbol &prev = out[it->second];
      if (visibilityRank(s.visibility) > visibilityRank(prev.visibility))
        prev.visibility = s.visibility;
    }
  }
  return out;
}

Result<std::string> writeShim(const std::vector<ShimSymbol> &symbols, const ShimFormat &format) {
  std::string_view like = format.like;
  // ELF64 little-endian only; anything else is not a link thinfarm splits.
  if (like.size() < 64 || like[4] != 2 /*ELFCLASS64*/ || like[5] != 1 /*ELFDATA2LSB*/)
    return unimplemented("native objects are not ELF64 little-endian");
  uint16_t machine;
  uint32_t flags;
  std::memcpy(&machine, like.data() + 18, 2);
  std::memcpy(&flags, like.data() + 48, 4);

  std::string strtab(1, '\0');
  std::string symtab(24, '\0'); // the null symbol
  for (const ShimSymbol &s : symbols) {
    size_t nameOff = strtab.size();
    strtab += s.name;
    strtab.push_back('\0');
    std::string sym(24, '\0');
    put<uint32_t>(sym, 0, static_cast<uint32_t>(nameOff));
    uint8_t bind = s.weak ? 2 /*STB_WEAK*/ : 1 /*STB_GLOBAL*/;
    uint8_t type = s.tls ? 6 /*STT_TLS*/ : 0 /*STT_NOTYPE*/;
    sym[4] = static_cast<char>((bind << 4) | type);
    sym[5] = static_cast<char>(s.visibility & 3);
    // st_shndx = SHN_UNDEF, st_value = st_size = 0
    symtab += sym;
  }

  // GNU_PROPERTY_{X86,AARCH64}_FEATURE_1_AND: lld ANDs it over every ELF
  // object, and a file without the note counts as 0.
  std::string note;
  const uint32_t featureAnd = machine == 62    ? 0xc0000002u /*EM_X86_64*/
                              : machine == 183 ? 0xc0000000u /*EM_AARCH64*/
                                               : 0;
  if (featureAnd) {
    note.assign(32, '\0');
    put<uint32_t>(note, 0, 4);  // n_namesz
    put<uint32_t>(note, 4, 16); // n_descsz
    put<uint32_t>(note, 8, 5);  // NT_GNU_PROPERTY_TYPE_0
    std::memcpy(note.data() + 12, "GNU", 4);
    put<uint32_t>(note, 16, featureAnd); // pr_type
    put<uint32_t>(note, 20, 4);          // pr_datasz
    put<uint32_t>(note, 24, 0xffffffffu);
  }
  const bool addrsig = !format.relocatable;

  std::string shstrtab("\0.symtab\0.strtab\0.shstrtab\0", 27);
  const uint32_t noteName = static_cast<uint32_t>(shstrtab.size());
  shstrtab.append(".note.gnu.property\0", 20);
  const uint32_t addrsigName = static_cast<uint32_t>(shstrtab.size());
  shstrtab.append(".llvm_addrsig\0", 14);

  std::string out(64, '\0');
  size_t symtabOff = (align(out, 8), out.size());
  out += symtab;
  size_t noteOff = (align(out, 8), out.size());
  out += note;
  size_t strtabOff = out.size();
  out += strtab;
  size_t shstrtabOff = out.size();
  out += shstrtab;
  align(out, 8);
  size_t shoff = out.size();
  const uint16_t shnum = 4 + (featureAnd ? 1 : 0) + (addrsig ? 1 : 0);

  // ELF header.
  std::memcpy(out.data(),
              "\x7F"
              "ELF",
              4);
  out[4] = 2; // ELFCLASS64
  out[5] = 1; // ELFDATA2LSB
  out[6] = 1; // EV_CURRENT
  // EI_OSABI: lld takes the output's from its first input, which may be this
  // shim standing for a bitcode file, whose OS ABI lld derives from the
  // triple: none for every OS but AMD's GPU runtimes (getOsAbi), whatever a
  // native says (MC marks objects with IFUNCs GNU).
  out[7] = 0;                // ELFOSABI_NONE
  put<uint16_t>(out, 16, 1); // ET_REL
  put<uint16_t>(out, 18, machine);
  put<uint32_t>(out, 20, 1);
  put<uint64_t>(out, 40, shoff);
  put<uint32_t>(out, 48, flags);
  put<uint16_t>(out, 52, 64); // e_ehsize
  put<uint16_t>(out, 58, 64); // e_shentsize
  put<uint16_t>(out, 60, shnum);
  put<uint16_t>(out, 62, 3); // e_shstrndx

  auto section = [&](uint32_t name, uint32_t type, uint64_t flags, uint64_t off, uint64_t size,
                     uint32_t link, uint32_t info, uint64_t align, uint64_t entsize) {
    std::string sh(64, '\0');
    put<uint32_t>(sh, 0, name);
    put<uint32_t>(sh, 4, type);
    put<uint64_t>(sh, 8, flags);
    put<uint64_t>(sh, 24, off);
    put<uint64_t>(sh, 32, size);
    put<uint32_t>(sh, 40, link);
    put<uint32_t>(sh, 44, info);
    put<uint64_t>(sh, 48, align);
    put<uint64_t>(sh, 56, entsize);
    out += sh;
  };
  section(0, 0, 0, 0, 0, 0, 0, 0, 0);
  section(1, 2 /*SHT_SYMTAB*/, 0, symtabOff, symtab.size(), 2, 1, 8, 24);
  section(9, 3 /*SHT_STRTAB*/, 0, strtabOff, strtab.size(), 0, 0, 1, 0);
  section(17, 3 /*SHT_STRTAB*/, 0, shstrtabOff, shstrtab.size(), 0, 0, 1, 0);
  if (featureAnd)
    section(noteName, 7 /*SHT_NOTE*/, 2 /*SHF_ALLOC*/, noteOff, note.size(), 0, 0, 8, 0);
  if (addrsig) // sh_link: the symbol table, else lld takes it for an ld -r leftover
    section(addrsigName, 0x6fff4c03 /*SHT_LLVM_ADDRSIG*/, 0x80000000 /*SHF_EXCLUDE*/, out.size(), 0,
            1, 0, 1, 0);
  return out;
}

} // namespace thinfarm
