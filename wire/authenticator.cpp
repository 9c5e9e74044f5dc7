#include "wire/authenticator.h"

#include <zmq.h>

#include <cstdio>
#include <vector>

namespace thinfarm::wire {

namespace {

constexpr const char *kZapEndpoint = "inproc://zeromq.zap.01";

std::vector<std::string> receiveAll(void *s) {
  std::vector<std::string> parts;
  for (;;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s, 0) < 0) {
      zmq_msg_close(&m);
      return {};
    }
    parts.emplace_back(static_cast<const char *>(zmq_msg_data(&m)), zmq_msg_size(&m));
    bool more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    if (!more)
      return parts;
  }
}

void sendAll(void *s, const std::vector<std::string> &parts) {
  for (size_t i = 0; i < parts.size(); ++i)
    zmq_send(s, parts[i].data(), parts[i].size(), i + 1 < parts.size() ? ZMQ_SNDMORE : 0);
}

} // namespace

Result<std::unique_ptr<Authenticator>> Authenticator::start(Context &ctx, std::string path) {
  TF_TRY(AllowList list, AllowList::read(path));
  void *rep = zmq_socket(ctx.raw(), ZMQ_REP);
  if (!rep)
    return failed(std::string("cannot create the authentication socket: ") +
                  zmq_strerror(zmq_errno()));
  int linger = 0;
  zmq_setsockopt(rep, ZMQ_LINGER, &linger, sizeof linger);
  if (zmq_bind(rep, kZapEndpoint) != 0) {
    Error e = failed(std::string("cannot start authentication: ") + zmq_strerror(zmq_errno()));
    zmq_close(rep);
    return e;
  }
  return std::unique_ptr<Authenticator>(new Authenticator(rep, std::move(path), std::move(list)));
}

Authenticator::Authenticator(void *rep, std::string path, AllowList list)
    : rep_(rep), path_(std::move(path)),
      list_(std::make_shared<const AllowList>(std::move(list))) {
  thread_ = std::thread([this] {
    // Nothing escapes the thread: a handler that stops answers no more
    // handshakes, so every new connection times out refused (fail closed).
    try {
      serve();
    } catch (const std::exception &e) {
      std::fprintf(stderr,
                   "thinfarm-coordinator: error: the authenticator stopped (%s); new "
                   "connections are refused\n",
                   e.what());
    }
  });
}

Authenticator::~Authenticator() {
  stop_ = true;
  if (thread_.joinable())
    thread_.join();
  zmq_close(rep_);
}

Result<size_t> Authenticator::reload() {
  TF_TRY(AllowList list, AllowList::read(path_));
  size_t n = list.size();
  std::lock_guard lock(mutex_);
  list_ = std::make_shared<const AllowList>(std::move(list));
  return n;
}

void Authenticator::setLimiter(std::shared_ptr<ConnectionLimiter> limiter) {
  std::lock_guard lock(mutex_);
  limiter_ = std::move(limiter);
}

std::optional<Member> Authenticator::member(const std::string &publicKey) const {
  std::shared_ptr<const AllowList> list;
  {
    std::lock_guard lock(mutex_);
    list = list_;
  }
  if (const Member *m = list->find(publicKey))
    return *m;
  return std::nullopt;
}

// One request: version, request id, domain, address, routing id, mechanism,
// credentials (for CURVE: the client's 32-byte public key). The answer:
// version, request id, status code, status text, user id, metadata.
void Authenticator::serve() {
  while (!stop_.load()) {
    zmq_pollitem_t item{rep_, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, 100) <= 0)
      continue;
    std::vector<std::string> req = receiveAll(rep_);
    if (req.size() < 2)
      continue; // nothing to answer to
    std::string key;
    if (req.size() >= 7 && req[5] == "CURVE" && req[6].size() == 32) {
      char z85[41];
      if (zmq_z85_encode(z85, reinterpret_cast<const uint8_t *>(req[6].data()), 32))
        key = z85;
    }
    std::optional<Member> m = key.empty() ? std::nullopt : member(key);
    std::shared_ptr<ConnectionLimiter> limiter;
    {
      std::lock_guard lock(mutex_);
      limiter = limiter_;
    }
    std::string over = m && limiter ? limiter->admit(key) : std::string();
    if (m && over.empty()) {
      sendAll(rep_, {"1.0", req[1], "200", "OK", key, ""});
    } else if (m) {
      // A member over a cap, logged once per 1000. Status 500: libzmq sends
      // it to the client as an ERROR (a 300 would close the connection
      // without a word), whose monitor tells it from 400, not listed.
      if (refused_++ % 1000 == 0)
        std::fprintf(stderr, "thinfarm-coordinator: refused a connection from %s (%s): %s\n",
                     m->name.c_str(), req.size() > 3 ? req[3].c_str() : "?", over.c_str());
      sendAll(rep_, {"1.0", req[1], "500", over, "", ""});
    } else {
      ++refused_;
      std::fprintf(stderr, "thinfarm-coordinator: refused a connection from %s: %s\n",
                   req.size() > 3 ? req[3].c_str() : "?",
                   key.empty() ? "not a CURVE handshake"
                               : ("the key " + key + " is not on the allow-list").c_str());
      sendAll(rep_, {"1.0", req[1], "400", "not on the allow-list", "", ""});
    }
  }
}

} // namespace thinfarm::wire
