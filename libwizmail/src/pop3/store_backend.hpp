// pop3::Backend over the real store: AccountStore for credentials and the
// ip file, Mailbox (Maildir) for the messages, MailboxLock for exclusivity.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pop3/mailbox_lock.hpp"
#include "auth/penalty.hpp"
#include "pop3/maildrop.hpp"
#include "state/lease_keeper.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/config.hpp"
#include "wizmail/pop_before_smtp.hpp"
#include "store/delivery_journal.hpp"

namespace wizmail::pop3 {

struct StoreBackendOptions {
  std::filesystem::path mailbox_dir;
  std::filesystem::path dustbox_dir;  // deleted mail goes to <dustbox_dir>/<account>/
  // Whether DELE'd mail of this account goes to the dustbox; null = never.
  std::function<bool(std::string_view account)> use_dustbox;
  MailboxLock::Options lock;
  // Failed logins per client network, shared with the server's other
  // sessions; null = only the session's own count.
  auth::AuthPenalty* penalty = nullptr;
  auth::AuthPolicy penalty_policy;  // concurrency cap and block (0 = none)
  // POP-before-SMTP: each login is recorded here (besides the `ip` file)
  // before it is answered, kept for `pop_login_ttl`; null = the file only.
  std::shared_ptr<PopLoginTable> pop_logins;
  std::chrono::seconds pop_login_ttl{0};
  // The server's delivery journal, if any: before messages are removed,
  // the records that could bring them back after a crash are checkpointed
  // (DeliveryJournal::settle). Must outlive the backend's maildrops.
  DeliveryJournal* journal = nullptr;
  // Across nodes (redis_url, docs/cluster.md): besides the mailbox lock, a
  // login takes the lease `wizmail:pop3lock:<account>` as `lease_owner`
  // (node and session), held until the maildrop goes; another owner's
  // lease is Errc::busy ([IN-USE]), a store that cannot be asked is its
  // error ([SYS/TEMP]). null: the mailbox lock alone.
  state::LeaseKeeper* leases = nullptr;
  std::string lease_owner;
};

// The lease name of an account's POP3 lock in the shared state.
std::string pop3_lease_name(std::string_view account);

// From a Config: popenv `dustbox`=TRUE, or the account's `use_dustbox`
// (smtpenv, overridable in its config.def), sends deleted mail to the dustbox.
// The Config must outlive the backend.
StoreBackendOptions store_backend_options(std::shared_ptr<const Config> config);

// The size a POP3 client is told (RFC 1939 §11: octets with CRLF line ends,
// before dot-stuffing — exactly what RETR sends minus the stuffing): the
// Dovecot-style ",W=" when the name has it, else ",S=" (wizmail stores CRLF,
// so the same), else `fallback`.
std::uint64_t pop3_size_from_name(std::string_view base, std::uint64_t fallback) noexcept;

// A message without a size in its name (delivered by a foreign MDA, maybe
// with bare LF line ends): read it once and count CRLF octets.
Result<std::uint64_t> transmitted_file_size(const std::filesystem::path& file);

class StoreBackend : public Backend {
 public:
  explicit StoreBackend(StoreBackendOptions options);

  Result<bool> verify_password(std::string_view account, std::string_view password) override;
  Result<std::optional<std::string>> apop_secret(std::string_view account) override;
  auth::AuthAdmission login_begin(std::string_view peer_ip) override {
    return opt_.penalty ? opt_.penalty->begin(peer_ip, opt_.penalty_policy) : auth::AuthAdmission{};
  }
  void login_end(std::string_view peer_ip) override {
    if (opt_.penalty) opt_.penalty->end(peer_ip);
  }
  bool login_blocked(std::string_view peer_ip) override {
    return opt_.penalty && opt_.penalty->blocked(peer_ip);
  }
  int login_failed(std::string_view peer_ip) override {
    return opt_.penalty ? opt_.penalty->failed(peer_ip, auth::AuthPenalty::Clock::now(),
                                               opt_.penalty_policy)
                        : 0;
  }
  void login_succeeded(std::string_view peer_ip) override {
    if (opt_.penalty) opt_.penalty->succeeded(peer_ip);
  }
  // Takes the lock, writes the ip file and records the login in the
  // POP-before-SMTP table, moves new/ to cur/, lists cur/.
  Result<std::unique_ptr<Maildrop>> open_maildrop(std::string_view account,
                                                  std::string_view peer_ip) override;

 private:
  StoreBackendOptions opt_;
  AccountStore store_;
};

}  // namespace wizmail::pop3
