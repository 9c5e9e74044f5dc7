// Who may use a farm (wire/keys.h, wire/authenticator.h): key files, the
// allow-list, and a real coordinator with CURVE on its socket. A listed key
// gets in and may send what its role allows, and is told when it may not; an
// unlisted key, a client without keys, or a client that pins another
// coordinator's key gets no answer at all; a reload that drops a key refuses
// that peer's next message; the names in results are the allow-list's.
#include "base/subprocess.h"
#include "farm_fixture.h"
#include "wire/keys.h"

#include <gtest/gtest.h>

#include <csignal>
#include <thread>

#include <sys/stat.h>
#include <sys/wait.h>

namespace thinfarm {
namespace {

using namespace std::chrono_literals;

bool contains(const std::string &s, const std::string &part) {
  return s.find(part) != std::string::npos;
}

TEST(KeyFiles, WrittenPrivateReadBackNeverOverwritten) {
  test::ScratchDir dir;
  auto keys = wire::generateKeyPair();
  ASSERT_TRUE(keys.ok());
  std::string file = dir.file("w1.key");
  ASSERT_TRUE(wire::writeKeyFiles(file, *keys, "w1").ok());
  struct stat sb {};
  ASSERT_EQ(::stat(file.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  auto back = wire::readKeyFile(file);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->publicKey, keys->publicKey);
  EXPECT_EQ(back->secretKey, keys->secretKey);
  // The public half, from the .pub file, from the key file, or as text.
  for (const std::string &from : {dir.file("w1.pub"), file, keys->publicKey}) {
    auto pub = wire::readPublicKey(from);
    ASSERT_TRUE(pub.ok()) << from << ": " << pub.error().message;
    EXPECT_EQ(*pub, keys->publicKey);
  }
  EXPECT_EQ(test::readAll(dir.file("w1.pub")).find(keys->secretKey), std::string::npos);

  Status again = wire::writeKeyFiles(file, *wire::generateKeyPair(), "w1");
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(contains(again.error().message, "never overwritten")) << again.error().message;
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  auto open = wire::readKeyFile(file);
  ASSERT_FALSE(open.ok());
  EXPECT_TRUE(contains(open.error().message, "can be read by others (mode 0644)"))
      << open.error().message;
  auto notKey = wire::readPublicKey("not a key");
  ASSERT_FALSE(notKey.ok());
  EXPECT_TRUE(contains(notKey.error().message, "neither a CURVE public key nor"));
}

TEST(AllowList, ParsesMembersAndNamesEachMistake) {
  auto a = *wire::generateKeyPair(), b = *wire::generateKeyPair();
  auto list = wire::AllowList::parse("# the farm\n\nworker " + a.publicKey + " w1\n  admin " +
                                         b.publicKey + " ops  \n",
                                     "allowed");
  ASSERT_TRUE(list.ok()) << list.error().message;
  EXPECT_EQ(list->size(), 2u);
  ASSERT_TRUE(list->find(a.publicKey));
  EXPECT_EQ(list->find(a.publicKey)->role, wire::Role::Worker);
  EXPECT_EQ(list->find(a.publicKey)->name, "w1");
  EXPECT_EQ(list->find(b.publicKey)->role, wire::Role::Admin);
  EXPECT_FALSE(list->find(a.secretKey));

  const std::pair<std::string, std::string> bad[] = {
      {"root " + a.publicKey + " x", "line 1: the role 'root' is not client, worker or admin"},
      {"client " + a.publicKey, "line 1: expected ROLE PUBLIC-KEY NAME"},
      {"client " + a.publicKey + " x y", "line 1: expected ROLE PUBLIC-KEY NAME"},
      {"\nclient abc x", "line 2: 'abc' is not a CURVE key"},
      {"client " + a.publicKey + " x\nworker " + a.publicKey + " y", "line 2: the key of y is listed twice"},
  };
  for (const auto &[text, error] : bad) {
    auto r = wire::AllowList::parse(text, "allowed");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_TRUE(contains(r.error().message, "allowed " + error)) << r.error().message;
  }
}

// Keypairs by name, and an allow-list file of some of them (ROLE = the name,
// NAME = the name + "-name").
struct Members {
  explicit Members(const test::ScratchDir &dir) : dir(dir) {
    for (const char *who : {"server", "client", "worker", "admin", "stranger"})
      keys[who] = *wire::generateKeyPair();
    allow({"client", "worker", "admin"});
  }
  void allow(const std::vector<std::string> &who) {
    std::string text;
    for (const std::string &w : who)
      text += w + " " + keys[w].publicKey + " " + w + "-name\n";
    dir.write("allowed", text);
  }
  const test::ScratchDir &dir;
  std::map<std::string, wire::KeyPair> keys;
};

// A coordinator with keys; members: a client, a worker and an admin.
class AccessTest : public ::testing::Test {
protected:
  void writeAllowList(const std::vector<std::string> &who) { members_.allow(who); }
  // A socket with who's keys, pinning the server's key (or another).
  wire::Socket as(const std::string &who, const std::string &server = "server") {
    wire::ClientCurve c{keys_[who], keys_[server].publicKey};
    auto s = wire::Socket::connect(ctx_, coordinator_.endpoint(), c);
    EXPECT_TRUE(s.ok());
    return std::move(*s);
  }
  // The answer to m, or nullopt when none comes within the time.
  static std::optional<wire::Message> ask(wire::Socket &s, wire::Message m,
                                          std::chrono::milliseconds within = 5000ms) {
    EXPECT_TRUE(s.send(m).ok());
    auto until = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < until) {
      auto r = s.receive(100ms);
      if (r && r->message.ok() && !r->message->get<wire::Progress>())
        return std::move(*r->message);
    }
    return std::nullopt;
  }
  static std::string deniedText(const std::optional<wire::Message> &m) {
    if (!m)
      return "<no answer>";
    const auto *e = m->get<wire::ErrorMsg>();
    if (!e)
      return std::string("<") + wire::kindName(m->body) + ">";
    return e->kind == ErrorKind::Denied ? e->message : "<not denied: " + e->message + ">";
  }

  test::ScratchDir dir_;
  Members members_{dir_}; // before the coordinator, which reads the allow-list
  std::map<std::string, wire::KeyPair> &keys_ = members_.keys;
  wire::Context ctx_;
  test::InProcessCoordinator coordinator_{ctx_, dir_, "c", [this](CoordinatorOptions &o) {
                                            o.keys = keys_["server"];
                                            o.allowList = dir_.file("allowed");
                                          }};
};

TEST_F(AccessTest, EachRoleSendsWhatItMayAndIsToldWhatItMayNot) {
  ASSERT_TRUE(coordinator_.running());
  wire::Socket admin = as("admin");
  auto stats = ask(admin, wire::Message{1, wire::GetStats{}});
  ASSERT_TRUE(stats && stats->get<wire::StoreStats>()) << deniedText(stats);

  wire::Socket client = as("client");
  EXPECT_EQ(deniedText(ask(client, wire::Message{2, wire::GetStats{}})),
            "the coordinator refused this: client client-name may not send getStats messages");
  EXPECT_EQ(deniedText(ask(client, wire::Message{3, wire::RegisterWorker{"w", "T", 1}})),
            "the coordinator refused this: client client-name may not send registerWorker messages");
  // What a client may send goes through (no worker serves toolchain T yet).
  auto missing = ask(client, wire::Message{4, wire::FindMissing{{Digest::of("x")}}});
  ASSERT_TRUE(missing && missing->get<wire::Missing>()) << deniedText(missing);

  wire::Socket worker = as("worker");
  auto registered = ask(worker, wire::Message{5, wire::RegisterWorker{"liar", "T", 1}});
  ASSERT_TRUE(registered && registered->get<wire::Registered>()) << deniedText(registered);
  wire::Session session{9, "T", "out", BackendConfig{}, {}};
  EXPECT_EQ(deniedText(ask(worker, wire::Message{6, session})),
            "the coordinator refused this: worker worker-name may not send submit messages");
  // Only an admin drains a worker.
  EXPECT_EQ(deniedText(ask(client, wire::Message{10, wire::DrainWorker{"worker-name", true}})),
            "the coordinator refused this: client client-name may not send drainWorker messages");
  auto drained = ask(admin, wire::Message{11, wire::DrainWorker{"worker-name", true}});
  ASSERT_TRUE(drained && drained->get<wire::StoreStats>()) << deniedText(drained);
  ASSERT_EQ(drained->get<wire::StoreStats>()->workers.size(), 1u);
  EXPECT_TRUE(drained->get<wire::StoreStats>()->workers[0].draining);
  auto resumed = ask(admin, wire::Message{12, wire::DrainWorker{"worker-name", false}});
  ASSERT_TRUE(resumed && resumed->get<wire::StoreStats>()) << deniedText(resumed);
  EXPECT_FALSE(resumed->get<wire::StoreStats>()->workers[0].draining);

  // A job runs: the result carries the allow-list's name, not the one the
  // worker gave itself.
  wire::JobSpec spec;
  spec.task = 0;
  spec.module = {"m.o", Digest::of("m")};
  spec.shard = Digest::of("s");
  spec.cost = 1;
  session.jobs = {spec};
  ASSERT_TRUE(client.send(wire::Message{7, session}).ok());
  std::optional<wire::RunJob> job;
  for (int i = 0; i < 50 && !job; ++i)
    if (auto r = worker.receive(100ms); r && r->message.ok())
      if (auto *j = r->message->get<wire::RunJob>())
        job = *j;
  ASSERT_TRUE(job) << "the session never reached the worker";
  wire::JobResult done;
  done.jobId = job->jobId;
  done.native = Digest::of("native");
  done.nativeBytes = "native";
  done.worker = "liar";
  auto result = ask(worker, wire::Message{0, done}, 0ms); // sent; the answer goes to the client
  (void)result;
  std::optional<wire::Message> answer;
  for (int i = 0; i < 50 && !answer; ++i)
    if (auto r = client.receive(100ms); r && r->message.ok() && r->message->get<wire::JobResult>())
      answer = std::move(*r->message);
  ASSERT_TRUE(answer) << "no result reached the client";
  EXPECT_EQ(answer->get<wire::JobResult>()->worker, "worker-name");
  // The statistics list it the same way.
  stats = ask(admin, wire::Message{8, wire::GetStats{}});
  ASSERT_TRUE(stats && stats->get<wire::StoreStats>()) << deniedText(stats);
  // Alone, it was not checked: still on probation (verification.h).
  EXPECT_EQ(stats->get<wire::StoreStats>()->workers,
            (std::vector<wire::WorkerStats>{{"worker-name", 1, 0, 1, 50, false}}));
}

// What a connecting socket gets for a request: "<answered>", the refused
// handshake's Denied error, or "<no answer>" within 2 s.
std::string refusal(wire::Socket &s) {
  EXPECT_TRUE(s.send(wire::Message{1, wire::FindMissing{}}).ok());
  for (int i = 0; i < 20; ++i)
    if (auto r = s.receive(100ms)) {
      if (r->message.ok())
        return "<answered>";
      const Error &e = r->message.error();
      return e.kind == ErrorKind::Denied ? e.message : "<error: " + e.message + ">";
    }
  return "<no answer>";
}

TEST_F(AccessTest, StrangersAreRefusedAtTheHandshake) {
  ASSERT_TRUE(coordinator_.running());
  const std::string at = "the coordinator at " + coordinator_.endpoint();
  wire::Socket stranger = as("stranger");
  EXPECT_EQ(refusal(stranger), at + " refused this key (not on its allow-list)");
  // A listed key that pins another coordinator's key.
  wire::Socket misled = as("client", "stranger");
  EXPECT_TRUE(contains(refusal(misled), "the CURVE handshake with " + coordinator_.endpoint() +
                                            " failed (it is not the coordinator whose key is pinned"))
      << refusal(misled);
  // No CURVE at all: the server drops it at the handshake, and the client
  // says what it lacks instead of waiting for an answer.
  auto plain = wire::Socket::connect(ctx_, coordinator_.endpoint());
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(contains(refusal(*plain), "the handshake with " + coordinator_.endpoint() +
                                            " failed (it runs with keys"))
      << refusal(*plain);
  // And the coordinator still serves its members.
  wire::Socket client = as("client");
  auto missing = ask(client, wire::Message{2, wire::FindMissing{}});
  EXPECT_TRUE(missing && missing->get<wire::Missing>()) << deniedText(missing);
}

TEST_F(AccessTest, AReloadThatDropsAKeyRefusesItsNextMessage) {
  ASSERT_TRUE(coordinator_.running());
  wire::Socket client = as("client");
  auto before = ask(client, wire::Message{1, wire::FindMissing{}});
  ASSERT_TRUE(before && before->get<wire::Missing>()) << deniedText(before);
  writeAllowList({"worker", "admin"});
  coordinator_.get().reloadAccess();
  std::this_thread::sleep_for(300ms); // the loop reloads within 100 ms
  EXPECT_EQ(deniedText(ask(client, wire::Message{2, wire::FindMissing{}})),
            "the coordinator refused this: the key " + keys_["client"].publicKey +
                " is no longer on the allow-list");
  // A list that does not parse is reported; the one before stays.
  dir_.write("allowed", "client nonsense\n");
  coordinator_.get().reloadAccess();
  std::this_thread::sleep_for(300ms);
  wire::Socket admin = as("admin");
  auto stats = ask(admin, wire::Message{3, wire::GetStats{}});
  EXPECT_TRUE(stats && stats->get<wire::StoreStats>()) << deniedText(stats);
}

// The program: no keys on tcp:// only with --insecure, and only on loopback;
// SIGHUP reloads the allow-list.
std::string coordinatorRefuses(const std::vector<std::string> &args) {
  test::ScratchDir dir;
  std::vector<std::string> argv = {THINFARM_COORDINATOR_PROGRAM, "--store", dir.file("s")};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions o;
  o.stderrFile = dir.file("err");
  auto p = Subprocess::spawn(argv, o);
  if (!p.ok())
    return "<spawn failed>";
  for (int i = 0; i < 60; ++i) {
    siginfo_t info{};
    if (::waitid(P_PID, p->pid(), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0) {
      auto rc = p->wait();
      return "exit " + std::to_string(rc.ok() ? *rc : -1) + ": " + test::readAll(dir.file("err"));
    }
    std::this_thread::sleep_for(50ms);
  }
  p->kill();
  return "<still running>";
}

TEST(CoordinatorProgram, NoKeysOnlyOnLoopbackAndOnlyWhenAsked) {
  EXPECT_TRUE(contains(coordinatorRefuses({"--listen", "tcp://0.0.0.0:17701", "--insecure"}),
                       "exit 2: thinfarm-coordinator: error: listening on tcp://0.0.0.0:17701 needs "
                       "--key and --allow (--insecure is for loopback only)"));
  EXPECT_TRUE(contains(coordinatorRefuses({"--listen", "tcp://127.0.0.1:17701"}),
                       "without keys: give --key and --allow, or --insecure"));
  EXPECT_EQ(coordinatorRefuses({"--listen", "tcp://127.0.0.1:17701", "--insecure"}),
            "<still running>");
}

} // namespace
} // namespace thinfarm
