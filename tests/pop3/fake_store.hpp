// Test doubles for pop3::Backend and pop3::Maildrop: messages in memory,
// scripted failures, and a record of what was committed.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mime/dot_stuffer.hpp"
#include "pop3/maildrop.hpp"

namespace fake {

using namespace wizmail;

class StringReader : public pop3::MessageReader {
 public:
  explicit StringReader(std::string s) : s_(std::move(s)) {}
  Result<std::size_t> read(char* buf, std::size_t len) override {
    std::size_t n = std::min(len, s_.size() - pos_);
    std::copy_n(s_.data() + pos_, n, buf);
    pos_ += n;
    return n;
  }

 private:
  std::string s_;
  std::size_t pos_ = 0;
};

struct Account {
  std::string password;
  bool hashed = false;
  std::vector<std::pair<std::string, std::string>> messages;  // uid, content
};

struct World {
  std::map<std::string, Account> accounts;
  std::set<std::string> locked;                 // held by "another session"
  std::vector<std::vector<std::size_t>> commits;  // every commit() call
  bool fail_commit = false;
  bool fail_open_message = false;
  bool fail_verify = false;
  int open_drops = 0;                            // live Maildrops
  int releases = 0;                              // Maildrop::release() calls (QUIT)
  std::vector<std::string> logins;               // "account ip"
  // The client network's failed logins, as a shared auth::AuthPenalty counts
  // them; penalty_calls: "failed IP" / "succeeded IP".
  int network_failures = 0;
  std::vector<std::string> penalty_calls;
  // login_begin(): blocked / busy answers; attempts begun and not ended;
  // password and APOP checks made.
  bool network_blocked = false, network_busy = false;
  bool penalty_unavailable = false;  // the cluster's shared state cannot be asked
  int in_progress = 0;
  int checks = 0;
};

class Drop : public pop3::Maildrop {
 public:
  Drop(World& w, std::string account) : w_(w), account_(std::move(account)) {
    ++w_.open_drops;
    w_.locked.insert(account_);
    for (auto& [uid, content] : w_.accounts[account_].messages)
      infos_.push_back({uid, mime::transmitted_size(content)});
  }
  ~Drop() override {
    --w_.open_drops;
    w_.locked.erase(account_);
  }
  const std::vector<pop3::MessageInfo>& messages() const noexcept override { return infos_; }
  Result<std::unique_ptr<pop3::MessageReader>> open(std::size_t i) override {
    if (w_.fail_open_message) return fail(Errc::io, "open: injected failure");
    return std::make_unique<StringReader>(w_.accounts[account_].messages.at(i).second);
  }
  void release() override { ++w_.releases; }
  Status commit(const std::vector<std::size_t>& idx) override {
    w_.commits.push_back(idx);
    if (w_.fail_commit) return fail(Errc::io, "unlink: injected failure");
    auto& msgs = w_.accounts[account_].messages;
    for (auto it = idx.rbegin(); it != idx.rend(); ++it) msgs.erase(msgs.begin() + *it);
    return {};
  }

 private:
  World& w_;
  std::string account_;
  std::vector<pop3::MessageInfo> infos_;
};

class Backend : public pop3::Backend {
 public:
  explicit Backend(World& w) : w_(w) {}
  Result<bool> verify_password(std::string_view a, std::string_view p) override {
    ++w_.checks;
    if (w_.fail_verify) return fail(Errc::io, "read password: injected failure");
    auto it = w_.accounts.find(std::string(a));
    return it != w_.accounts.end() && it->second.password == p;
  }
  Result<std::optional<std::string>> apop_secret(std::string_view a) override {
    ++w_.checks;
    auto it = w_.accounts.find(std::string(a));
    if (it == w_.accounts.end() || it->second.hashed) return std::optional<std::string>{};
    return std::optional<std::string>{it->second.password};
  }
  auth::AuthAdmission login_begin(std::string_view) override {
    using K = auth::AuthAdmission::Kind;
    if (w_.penalty_unavailable) return {K::unavailable, 0};
    if (w_.network_blocked) return {K::blocked, 0};
    if (w_.network_busy) return {K::busy, 0};
    ++w_.in_progress;
    return {K::check, w_.network_failures};
  }
  void login_end(std::string_view) override { --w_.in_progress; }
  bool login_blocked(std::string_view) override { return w_.network_blocked; }
  int login_failed(std::string_view ip) override {
    w_.penalty_calls.push_back("failed " + std::string(ip));
    return ++w_.network_failures;
  }
  void login_succeeded(std::string_view ip) override {
    w_.penalty_calls.push_back("succeeded " + std::string(ip));
    w_.network_failures = 0;
  }
  Result<std::unique_ptr<pop3::Maildrop>> open_maildrop(std::string_view a,
                                                        std::string_view ip) override {
    if (w_.locked.count(std::string(a))) return fail(Errc::busy, "locked");
    w_.logins.push_back(std::string(a) + " " + std::string(ip));
    return std::make_unique<Drop>(w_, std::string(a));
  }

 private:
  World& w_;
};

}  // namespace fake
