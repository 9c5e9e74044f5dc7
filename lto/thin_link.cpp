// Stage 4: the thin link.
//
// lld itself does symbol resolution and the whole-program analysis, exactly
// as it would in the stock link, because it is the stock linker on the
// original arguments. Three options make it stop after the analysis:
//   --thinlto-index-only=LIST        one line per module put into LTO, in task
//                                    order (lld's ModuleMap order)
//   --thinlto-emit-imports-files     <module>.imports: one imported module per line
//   --thinlto-prefix-replace=;DIR/   write both under DIR/<module identifier>
// The combined index is split by lld into one shard per module that holds
// the module's summaries and those of the values it imports: everything its
// backend needs, and a self-contained piece of a job.
#include "lto/thin_link.h"

#include "lto/bitcode.h"

namespace thinfarm {

namespace {
std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos)
      nl = text.size();
    if (nl > start)
      out.emplace_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}
} // namespace

Result<PendingThinLink> PendingThinLink::start(const Toolchain &tc, const LinkCommand &cmd,
                                               const std::string &scratch) {
  std::vector<std::string> argv{tc.lld};
  argv.insert(argv.end(), cmd.original.begin(), cmd.original.end());
  argv.push_back("--thinlto-index-only=" + scratch + "/thinlto.index-list");
  argv.push_back("--thinlto-emit-imports-files");
  argv.push_back("--thinlto-prefix-replace=;" + scratch + "/");
  argv.push_back("--why-extract=" + scratch + "/thinlink.why");
  TF_TRY(Subprocess child, spawnLld(argv, scratch + "/thinlink.stderr"));
  return PendingThinLink(std::move(child), scratch, tc.lld);
}

Result<std::optional<ThinLinkResult>> PendingThinLink::finish() {
  const std::string prefix = scratch_ + "/";
  const std::string list = scratch_ + "/thinlto.index-list";
  TF_TRY(int exitCode, child_.wait());
  if (exitCode != 0)
    return std::optional<ThinLinkResult>();
  TF_TRY(std::string stderrText, readFile(scratch_ + "/thinlink.stderr"));

  ThinLinkResult r;
  r.diagnostics = std::move(stderrText);
  TF_TRY(r.extractions, readWhyExtract(scratch_ + "/thinlink.why"));
  TF_TRY(std::string listText, readFile(list));
  for (const std::string &line : lines(listText)) {
    if (!line.starts_with(prefix))
      return failed("thin link index list: unexpected entry " + line);
    ThinModule m;
    m.identifier = line.substr(prefix.size());
    auto shard = Blob::mapFile(line + ".thinlto.bc");
    if (!shard)
      return std::move(shard).error().context("thin link index shard of " + m.identifier);
    m.indexShard = std::move(*shard);
    TF_TRY(std::string imports, readFile(line + ".imports"));
    m.imports = lines(imports);
    r.modules.push_back(std::move(m));
  }
  return std::optional<ThinLinkResult>(std::move(r));
}

} // namespace thinfarm
