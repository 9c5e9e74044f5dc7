#include "wire/keys.h"

#include "base/file.h"

#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace thinfarm::wire {

namespace {

constexpr size_t kKeyChars = 40; // Z85 of 32 bytes

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos)
    return {};
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

// The value of the first "FIELD value" line of a key file, or "".
std::string field(const std::string &text, std::string_view name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::string t = trim(line);
    if (t.size() > name.size() && t.compare(0, name.size(), name) == 0 &&
        (t[name.size()] == ' ' || t[name.size()] == '\t'))
      return trim(std::string_view(t).substr(name.size()));
  }
  return {};
}

std::string publicFileOf(const std::string &keyFile) {
  size_t slash = keyFile.rfind('/');
  size_t dot = keyFile.rfind('.');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash))
    return keyFile.substr(0, dot) + ".pub";
  return keyFile + ".pub";
}

} // namespace

Status checkKey(std::string_view text, const std::string &what) {
  if (text.size() != kKeyChars)
    return failed(what + " is not a CURVE key (40 characters of Z85, as thinfarm-keygen writes): " +
                  std::to_string(text.size()) + " characters");
  uint8_t raw[32];
  std::string copy(text);
  if (!zmq_z85_decode(raw, copy.c_str()))
    return failed(what + " is not a CURVE key: not Z85 text");
  return ok();
}

Result<KeyPair> generateKeyPair() {
  char pub[kKeyChars + 1], sec[kKeyChars + 1];
  if (zmq_curve_keypair(pub, sec) != 0)
    return failed(std::string("cannot make a CURVE keypair: ") + zmq_strerror(zmq_errno()));
  return KeyPair{pub, sec};
}

Status writeKeyFiles(const std::string &keyFile, const KeyPair &keys, const std::string &name) {
  std::string pubFile = publicFileOf(keyFile);
  int fd = ::open(keyFile.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return failed("cannot create " + keyFile + ": " + std::strerror(errno) +
                  (errno == EEXIST ? " (a key is never overwritten; remove it first)" : ""));
  Status st = writeAll(fd, "# thinfarm key: " + name + "\npublic " + keys.publicKey + "\nsecret " +
                               keys.secretKey + "\n",
                       keyFile);
  if (::close(fd) != 0 && st.ok())
    st = failed("cannot write " + keyFile + ": " + std::strerror(errno));
  if (!st.ok())
    return st;
  return writeFile(pubFile, "public " + keys.publicKey + "\n", 0644);
}

Result<KeyPair> readKeyFile(const std::string &path) {
  struct stat sb {};
  if (::stat(path.c_str(), &sb) != 0)
    return failed("cannot read the key file " + path + ": " + std::strerror(errno));
  if ((sb.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(sb.st_mode & 07777));
    return failed("the key file " + path + " can be read by others (mode " + mode +
                  "): chmod 600 " + path);
  }
  TF_TRY(std::string text, readFile(path));
  KeyPair k{field(text, "public"), field(text, "secret")};
  TF_CHECK(checkKey(k.publicKey, "the public key in " + path));
  TF_CHECK(checkKey(k.secretKey, "the secret key in " + path));
  return k;
}

Result<std::string> readPublicKey(const std::string &keyOrPath) {
  if (keyOrPath.size() == kKeyChars && checkKey(keyOrPath, "").ok() &&
      ::access(keyOrPath.c_str(), F_OK) != 0)
    return keyOrPath;
  auto text = readFile(keyOrPath);
  if (!text.ok())
    return failed("'" + keyOrPath + "' is neither a CURVE public key nor a readable key file (" +
                  text.error().message + ")");
  std::string key = field(*text, "public");
  TF_CHECK(checkKey(key, "the public key in " + keyOrPath));
  return key;
}

bool reachableFromOtherMachines(const std::string &e) {
  if (e.rfind("tcp://", 0) != 0)
    return false;
  std::string host = e.substr(6, e.rfind(':') - 6);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return !(host.rfind("127.", 0) == 0 || host == "::1" || host == "localhost");
}

Result<std::optional<ClientCurve>> clientCurve(const std::string &endpoint,
                                               const std::string &keyFile,
                                               const std::string &serverKey) {
  if (keyFile.empty() != serverKey.empty())
    return failed(keyFile.empty() ? "the coordinator's key is given but not this side's key file"
                                  : "a key file is given but not the coordinator's public key");
  if (keyFile.empty()) {
    if (reachableFromOtherMachines(endpoint))
      return failed(endpoint + " is on another machine, and a farm there admits only known keys: "
                               "give this side's key file and the coordinator's public key");
    return std::optional<ClientCurve>();
  }
  ClientCurve c;
  TF_TRY(c.own, readKeyFile(keyFile));
  TF_TRY(c.serverKey, readPublicKey(serverKey));
  return std::optional<ClientCurve>(std::move(c));
}

const char *roleName(Role r) {
  switch (r) {
  case Role::Client: return "client";
  case Role::Worker: return "worker";
  case Role::Admin: return "admin";
  }
  return "?";
}

std::optional<Role> parseRole(std::string_view name) {
  for (Role r : {Role::Client, Role::Worker, Role::Admin})
    if (name == roleName(r))
      return r;
  return std::nullopt;
}

Result<AllowList> AllowList::parse(std::string_view text, const std::string &source) {
  AllowList list;
  std::istringstream in{std::string(text)};
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::string t = trim(line);
    if (t.empty() || t[0] == '#')
      continue;
    std::istringstream words(t);
    std::string role, key, name, extra;
    words >> role >> key >> name >> extra;
    std::string where = source + " line " + std::to_string(n);
    if (name.empty() || !extra.empty())
      return failed(where + ": expected ROLE PUBLIC-KEY NAME");
    std::optional<Role> r = parseRole(role);
    if (!r)
      return failed(where + ": the role '" + role + "' is not client, worker or admin");
    Member m{*r, name};
    TF_CHECK(checkKey(key, where + ": '" + key + "'"));
    if (!list.members_.emplace(key, m).second)
      return failed(where + ": the key of " + name + " is listed twice");
  }
  return list;
}

Result<AllowList> AllowList::read(const std::string &path) {
  TF_TRY(std::string text, readFile(path));
  return parse(text, path);
}

const Member *AllowList::find(const std::string &publicKey) const {
  auto it = members_.find(publicKey);
  return it == members_.end() ? nullptr : &it->second;
}

} // namespace thinfarm::wire
