// Fuzzes the allow-list parser (wire/keys.cpp AllowList::parse): the file the
// coordinator reads at start and on every SIGHUP; a bad edit must be an
// error naming its line, never a crash or a list that admits a key nobody
// wrote. The input is the file's text. A list parsed has at most one member
// per line, and every member's key is 40 characters of Z85 that occur in
// the text, under a role that is one of the three.
#include "tests/fuzz/fuzz.h"
#include "wire/keys.h"

#include <algorithm>

using namespace thinfarm;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text = fuzz::asText(data, size);
  auto list = wire::AllowList::parse(text, "allowed_keys");
  if (!list.ok()) {
    if (list.error().message.rfind("allowed_keys line ", 0) != 0)
      fuzz::fail("an error that does not name its line: " + list.error().message);
    return 0;
  }
  size_t lines = static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
  if (list->size() > lines)
    fuzz::fail("more members than lines");
  // Every 40-character word of the text: listed only if it is a key.
  size_t found = 0;
  for (size_t i = 0; i + 40 <= text.size(); ++i) {
    std::string word(text.substr(i, 40));
    if (const wire::Member *m = list->find(word)) {
      ++found;
      if (!wire::checkKey(word, "").ok())
        fuzz::fail("a member whose key is not a CURVE key: " + word);
      if (!wire::parseRole(wire::roleName(m->role)))
        fuzz::fail("a member with no role");
      if (m->name.empty())
        fuzz::fail("a member without a name");
    }
  }
  if (found < list->size())
    fuzz::fail("members whose keys are not in the text");
  return 0;
}
