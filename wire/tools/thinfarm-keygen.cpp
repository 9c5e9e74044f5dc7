// thinfarm-keygen --out FILE [--name NAME]: a CURVE keypair for one member of
// a farm (wire/keys.h): FILE, the secret key (mode 0600, never overwritten),
// and FILE with .pub, the public key; prints the allow-list line to add.
#include "base/flags.h"
#include "wire/keys.h"

#include <cstdio>

#include <unistd.h>

using namespace thinfarm;

int main(int argc, char **argv) {
  Flags flags("thinfarm-keygen");
  flags.required("out", "the key file to write (its public half goes to the same name with .pub)");
  flags.value("name", "", "what logs and statistics call this member (default: the host name)");
  flags.value("role", "client", "the role for the allow-list line printed: client, worker, admin");
  if (Status st = flags.parse(argc, argv); !st.ok())
    return flags.usageError(st.error());
  std::string name = flags.get("name");
  if (name.empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    name = host;
  }
  if (name.find_first_of(" \t\n#") != std::string::npos)
    return flags.usageError(failed("--name may not contain spaces or '#'"));
  const std::string role = flags.get("role");
  if (!wire::parseRole(role))
    return flags.usageError(failed("--role wants client, worker or admin, not '" + role + "'"));
  auto keys = wire::generateKeyPair();
  Status st = keys.ok() ? wire::writeKeyFiles(flags.get("out"), *keys, name) : keys.error();
  if (!st.ok()) {
    std::fprintf(stderr, "thinfarm-keygen: error: %s\n", st.error().message.c_str());
    return 1;
  }
  // The line for the coordinator's allow-list.
  std::printf("%s %s %s\n", role.c_str(), keys->publicKey.c_str(), name.c_str());
  return 0;
}
