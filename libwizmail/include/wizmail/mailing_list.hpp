// Mailing lists (SPEC §7, manual メーリングリスト機能): who may post, and the
// copy each member gets. Pure: MailingList holds its settings and members
// and transforms message text; the delivery agent (server) does the I/O —
// it runs the list's hooks first, increments ml.def's count, then delivers
// one copy per local member and queues the remote ones.
//
// A distributed copy:
//   Subject  "[<name or account><NNNN>]" + subject (mailing_list_subject_header
//            1; 2 also removes this list's older prefixes anywhere in it;
//            0 none). RFC 2047 subjects are decoded, changed and re-encoded in
//            their own charset (ISO-2022-JP stays ISO-2022-JP) when possible.
//   From / Reply-To  mailing_list_from_kind 0: From = poster, Reply-To = list;
//            1: From = list (the poster's Reply-To kept); 2: From = poster,
//            Reply-To = poster.
//   To       mailing_list_to_kind 0: the member; 1: the list.
//   X-*      removed unless mailing_list_mail_header_x_element = 1.
//   List-Id: <account.domain>, List-Post: <mailto:list>, Precedence: list,
//   and the envelope sender = ml.def return_path, else admin_mail_address,
//   else postmaster@<domain> (Return-Path in local copies).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/config.hpp"
#include "wizmail/error.hpp"

namespace wizmail {

struct MailingListPolicy {
  int from_kind = 0;
  int to_kind = 0;
  int x_element = 0;
  int public_level = 1;
  int subject_header = 1;
  std::vector<std::string> filter_strings;

  static MailingListPolicy from(const AccountSettings& s);
};

class MailingList {
 public:
  // `account` is the list's account name, `domain` the primary mail domain;
  // `local_domains` are every local domain (for public level -1).
  MailingList(std::string account, std::string domain, MailingListSettings ml,
              MailingListPolicy policy, std::vector<std::string> members,
              std::vector<std::string> local_domains = {});

  // Read ml.def, ml_member.csv and the account's config.def overrides.
  static Result<MailingList> load(const Config& config, std::string_view account);

  const std::string& account() const noexcept { return account_; }
  std::string address() const;          // account@domain
  std::string list_id() const;          // "<account.domain>"
  std::string envelope_sender() const;  // return_path | admin | postmaster@domain
  const std::vector<std::string>& members() const noexcept { return members_; }
  const MailingListPolicy& policy() const noexcept { return policy_; }
  const MailingListSettings& settings() const noexcept { return ml_; }

  enum class Verdict { distribute, not_permitted, filtered, loop };
  struct Check {
    Verdict verdict = Verdict::distribute;
    std::string reason;
  };
  // May this post be distributed? `sender` is the envelope sender.
  Check check(std::string_view sender, std::string_view message) const;

  // The subject for post number `count` (pure; `raw` is the unfolded
  // Subject value as received, possibly RFC 2047 encoded).
  std::string subject(std::string_view raw, std::int64_t count) const;
  // "[<name or account><NNNN>]" (UTF-8).
  std::string prefix(std::int64_t count) const;

  // The copy for every member (To still the original when to_kind = 0):
  // apply copy_for() to it for each member.
  std::string rewrite(std::string_view message, std::int64_t count) const;
  // Set To for one member when to_kind = 0 (else the text unchanged).
  std::string copy_for(std::string_view rewritten, std::string_view member) const;

 private:
  bool is_member(std::string_view address) const;
  std::string account_, domain_;
  MailingListSettings ml_;
  MailingListPolicy policy_;
  std::vector<std::string> members_;
  std::vector<std::string> local_domains_;
};

std::string_view to_string(MailingList::Verdict v) noexcept;

}  // namespace wizmail
