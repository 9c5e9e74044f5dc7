// Command-line flags of the daemons: "--name VALUE" or "--name=VALUE", each
// declared with its help text; anything else is a one-line error, and so is
// a required flag left out.
#pragma once

#include "base/result.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace thinfarm {

class Flags {
public:
  explicit Flags(std::string program) : program_(std::move(program)) {}

  // Declares a flag taking a value; `def` is used when it is absent.
  void value(const std::string &name, std::string def, std::string help) {
    specs_[name] = {std::move(help), false};
    values_[name] = std::move(def);
  }
  // Declares a flag that must be given.
  void required(const std::string &name, const std::string &help) {
    value(name, "", help + " (required)");
    required_.push_back(name);
  }
  // Declares a flag without a value.
  void toggle(const std::string &name, std::string help) { specs_[name] = {std::move(help), true}; }

  Status parse(int argc, char **argv) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h")
        return Error{ErrorKind::Unimplemented, usage()};
      if (a.rfind("--", 0) != 0)
        return failed("unexpected argument " + a + " (see --help)");
      std::string name = a.substr(2), val;
      bool inline_ = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        val = name.substr(eq + 1);
        name = name.substr(0, eq);
        inline_ = true;
      }
      auto it = specs_.find(name);
      if (it == specs_.end())
        return failed("unknown flag --" + name + " (see --help)");
      if (it->second.toggle) {
        if (inline_)
          return failed("--" + name + " takes no value");
        set_.insert(name);
        continue;
      }
      if (!inline_) {
        if (i + 1 >= argc)
          return failed("--" + name + " needs a value");
        val = argv[++i];
      }
      values_[name] = val;
      set_.insert(name);
    }
    for (const std::string &name : required_)
      if (values_[name].empty())
        return failed("--" + name + " is required (see --help)");
    return ok();
  }

  // For main(): prints a parse error as one line (or the help text asked
  // for) and returns the exit status, 2 (0 for help).
  int usageError(const Error &e) const {
    if (e.kind == ErrorKind::Unimplemented) {
      std::fputs(e.message.c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "%s: error: %s\n", program_.c_str(), e.message.c_str());
    return 2;
  }

  const std::string &get(const std::string &name) const { return values_.at(name); }
  bool has(const std::string &name) const { return set_.count(name) != 0; }

  // A non-negative integer flag, with a one-line error naming it.
  Result<uint64_t> number(const std::string &name) const {
    const std::string &v = get(name);
    char *end = nullptr;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || v[0] == '-')
      return failed("--" + name + " wants a number, not '" + v + "'");
    return static_cast<uint64_t>(n);
  }

  // A size in bytes: a number with an optional K, M, G or T suffix (powers of 1024).
  Result<uint64_t> bytes(const std::string &name) const {
    auto n = parseBytes(get(name));
    if (!n)
      return failed("--" + name + " wants a size such as 512M or 20G, not '" + get(name) + "'");
    return *n;
  }

  static std::optional<uint64_t> parseBytes(const std::string &v) {
    char *end = nullptr;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || v[0] == '-' || end == v.c_str())
      return std::nullopt;
    std::string unit(end);
    int shift = unit.empty() ? 0 : unit == "K" || unit == "k" ? 10 : unit == "M" ? 20 : unit == "G" ? 30 : unit == "T" ? 40 : -1;
    if (shift < 0)
      return std::nullopt;
    return static_cast<uint64_t>(n) << shift;
  }

  std::string usage() const {
    std::string u = "usage: " + program_ + " [flags]\n";
    for (const auto &[name, spec] : specs_)
      u += "  --" + name + (spec.toggle ? "" : " VALUE") + "\n      " + spec.help + "\n";
    return u;
  }

private:
  struct Spec {
    std::string help;
    bool toggle;
  };
  std::string program_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::string> values_;
  std::set<std::string> set_;
  std::vector<std::string> required_;
};

} // namespace thinfarm
