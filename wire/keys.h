// CURVE keys and the allow-list: who may talk to a coordinator, as what.
//
// Every TCP connection of a farm is encrypted and authenticated with
// ZeroMQ's CURVE (CurveZMQ: Curve25519 keys, written as 40 characters of Z85).
// Each coordinator, worker and user or CI runner has one keypair, made by
// thinfarm-keygen. Its files:
//
//   NAME.key   mode 0600 (refused when group or others can read it)
//              # thinfarm key: NAME
//              public <Z85>
//              secret <Z85>
//   NAME.pub   public <Z85>      (what the other side is given)
//
// A coordinator admits the keys of its allow-list, in the style of SSH's
// authorized_keys: one member per line, '#' starts a comment line,
//
//   ROLE PUBLIC-KEY NAME          e.g.  worker rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 build-3
//
// ROLE is client (uploads, sessions, the link memo), worker (registers, runs
// jobs, returns results) or admin (statistics, draining a worker); NAME is
// what logs and statistics call the member. A key listed twice is an error.
#pragma once

#include "base/result.h"

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace thinfarm::wire {

struct KeyPair {
  std::string publicKey; // Z85, 40 characters
  std::string secretKey;
};

Result<KeyPair> generateKeyPair();

// Whether text is a CURVE public key: 40 characters of Z85.
Status checkKey(std::string_view text, const std::string &what);

// Writes PATH (the secret key file, created with mode 0600, never over an
// existing file) and PATH with its extension replaced by .pub.
Status writeKeyFiles(const std::string &keyFile, const KeyPair &keys, const std::string &name);
Result<KeyPair> readKeyFile(const std::string &path);
// A public key: the key itself, or the path of a .pub or .key file holding it.
Result<std::string> readPublicKey(const std::string &keyOrPath);

// CURVE on a connecting socket: its own keypair and the public key of the
// coordinator it expects (pinned: a different server fails the handshake).
struct ClientCurve {
  KeyPair own;
  std::string serverKey;
};

// What a connecting program (client, worker, thinfarm-cache) uses to reach
// endpoint: its key file and the coordinator's public key (key or file),
// both or neither. Neither is refused for a tcp:// endpoint on another
// machine: such a coordinator runs with keys, and a connection without them
// would only hang.
Result<std::optional<ClientCurve>> clientCurve(const std::string &endpoint,
                                               const std::string &keyFile,
                                               const std::string &serverKey);

// tcp:// on an address other than loopback (127.0.0.0/8, ::1, localhost):
// reachable from other machines, so a daemon there needs keys.
bool reachableFromOtherMachines(const std::string &endpoint);

enum class Role { Client, Worker, Admin };
const char *roleName(Role r);
// "client", "worker" or "admin"; nullopt for anything else.
std::optional<Role> parseRole(std::string_view name);

struct Member {
  Role role = Role::Client;
  std::string name;
};

class AllowList {
public:
  // source names the text in errors ("/etc/thinfarm/allowed_keys line 3: ...").
  static Result<AllowList> parse(std::string_view text, const std::string &source);
  static Result<AllowList> read(const std::string &path);

  const Member *find(const std::string &publicKey) const;
  size_t size() const { return members_.size(); }

private:
  std::unordered_map<std::string, Member> members_; // by Z85 public key
};

} // namespace thinfarm::wire
