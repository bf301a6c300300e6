#include "wizmail/mailing_list.hpp"

#include <cstdio>

#include "mime/message_head.hpp"
#include "util/strings.hpp"
#include "util/utf8.hpp"
#include "wizmail/account_store.hpp"
#include "mime/header_codec.hpp"

namespace wizmail {

namespace {

bool contains_ci_ascii(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return false;
  return util::to_lower(hay).find(util::to_lower(needle)) != std::string::npos;
}

}  // namespace

MailingListPolicy MailingListPolicy::from(const AccountSettings& s) {
  MailingListPolicy p;
  p.from_kind = s.mailing_list_from_kind;
  p.to_kind = s.mailing_list_to_kind;
  p.x_element = s.mailing_list_mail_header_x_element;
  p.public_level = s.mailing_list_public_level;
  p.subject_header = s.mailing_list_subject_header;
  p.filter_strings = s.mailing_list_filter_string;
  return p;
}

MailingList::MailingList(std::string account, std::string domain, MailingListSettings ml,
                         MailingListPolicy policy, std::vector<std::string> members,
                         std::vector<std::string> local_domains)
    : account_(std::move(account)), domain_(util::to_lower(domain)), ml_(std::move(ml)),
      policy_(std::move(policy)), members_(std::move(members)), local_domains_(std::move(local_domains)) {
  if (local_domains_.empty()) local_domains_.push_back(domain_);
}

Result<MailingList> MailingList::load(const Config& config, std::string_view account) {
  AccountStore store(config.mailbox_dir());
  auto dir = store.account_dir(account);
  if (!dir) return unexpected(dir.error());
  auto ml = load_ml_def(*dir / "ml.def");
  if (!ml) return unexpected(ml.error());
  auto members = store.members(account);
  if (!members) return unexpected(members.error());
  auto settings = config.account_settings(account);
  if (!settings) return unexpected(settings.error());
  return MailingList(std::string(account), config.server.domain, std::move(*ml),
                     MailingListPolicy::from(*settings), std::move(*members), config.local_domains());
}

std::string MailingList::address() const { return account_ + "@" + domain_; }

std::string MailingList::list_id() const { return "<" + account_ + "." + domain_ + ">"; }

std::string MailingList::envelope_sender() const {
  if (!ml_.return_path.empty()) return ml_.return_path;
  if (!ml_.admin_mail_address.empty()) return ml_.admin_mail_address;
  return "postmaster@" + domain_;
}

bool MailingList::is_member(std::string_view address) const {
  for (const auto& m : members_)
    if (util::iequals(m, address)) return true;
  return false;
}

MailingList::Check MailingList::check(std::string_view sender, std::string_view message) const {
  mime::MessageHead head(message);
  std::string own = list_id();
  for (const auto& id : head.get_all("List-Id")) {
    auto lt = id.rfind('<');
    std::string_view v = lt == std::string::npos ? std::string_view(id) : std::string_view(id).substr(lt);
    if (auto gt = v.find('>'); gt != std::string_view::npos) v = v.substr(0, gt + 1);
    if (util::iequals(util::trim(v), own)) return {Verdict::loop, "own List-Id " + own + " present"};
  }
  std::string from = mime::extract_address(head.get("From"));
  if (policy_.public_level == 0) {
    if (!is_member(sender) && !is_member(from))
      return {Verdict::not_permitted, "sender <" + std::string(sender) + "> is not a member"};
  } else if (policy_.public_level < 0) {
    auto is_list = [&](std::string_view a) {
      auto at = a.rfind('@');
      if (at == std::string_view::npos) return false;
      if (!util::iequals(a.substr(0, at), account_)) return false;
      for (const auto& d : local_domains_)
        if (util::iequals(a.substr(at + 1), d)) return true;
      return false;
    };
    if (!is_list(sender) && !is_list(from))
      return {Verdict::not_permitted, "sender <" + std::string(sender) + "> is not the list's own address"};
  }
  if (!policy_.filter_strings.empty()) {
    std::string subject = mime::decode_header(head.get("Subject")).utf8;
    for (const auto& f : policy_.filter_strings)
      if (contains_ci_ascii(subject, f)) return {Verdict::filtered, "subject holds \"" + f + "\""};
  }
  return {};
}

std::string MailingList::prefix(std::int64_t count) const {
  char num[32];
  std::snprintf(num, sizeof num, "%04lld", static_cast<long long>(count));
  return "[" + (ml_.name.empty() ? account_ : ml_.name) + num + "]";
}

std::string MailingList::subject(std::string_view raw, std::int64_t count) const {
  if (policy_.subject_header == 0) return std::string(raw);
  auto decoded = mime::decode_header(raw);
  std::string text = decoded.utf8;
  if (policy_.subject_header == 2) {
    // Remove "[<label><digits>]" (and the spaces after it) wherever it is.
    const std::string label = "[" + (ml_.name.empty() ? account_ : ml_.name);
    std::string out;
    std::size_t pos = 0;
    while (pos < text.size()) {
      if (text.compare(pos, label.size(), label) == 0) {
        std::size_t p = pos + label.size(), digits = 0;
        while (p < text.size() && text[p] >= '0' && text[p] <= '9') ++p, ++digits;
        if (digits > 0 && p < text.size() && text[p] == ']') {
          ++p;
          while (p < text.size() && (text[p] == ' ' || text[p] == '\t')) ++p;
          pos = p;
          continue;
        }
      }
      out += text[pos++];
    }
    text = std::string(util::trim(out));
  }
  std::string fresh = prefix(count) + text;
  if (decoded.had_encoded_words) return mime::encode_header(fresh, decoded.charset);
  if (decoded.had_raw_8bit && mime::is_utf8(raw) && raw.find('\x1b') == std::string_view::npos)
    return fresh;  // raw UTF-8 came in, raw UTF-8 goes out
  if (util::is_ascii(fresh)) return fresh;
  return mime::encode_header(fresh, raw.find('\x1b') != std::string_view::npos ? "ISO-2022-JP" : "UTF-8");
}

std::string MailingList::rewrite(std::string_view message, std::int64_t count) const {
  mime::MessageHead head(message);
  if (policy_.x_element == 0) head.remove_prefix("X-");
  if (policy_.subject_header != 0) head.set("Subject", subject(head.get("Subject"), count));
  const std::string list = address();
  switch (policy_.from_kind) {
    case 1: head.set("From", list); break;
    case 2: {
      std::string from = head.get("From");
      if (!from.empty()) head.set("Reply-To", from);
      else head.remove("Reply-To");
      break;
    }
    default: head.set("Reply-To", list); break;
  }
  if (policy_.to_kind == 1) head.set("To", list);
  head.remove("Return-Path");
  head.remove("Delivered-To");
  head.set("List-Id", list_id());
  head.set("List-Post", "<mailto:" + list + ">");
  head.set("Precedence", "list");
  return head.str();
}

std::string MailingList::copy_for(std::string_view rewritten, std::string_view member) const {
  if (policy_.to_kind == 1) return std::string(rewritten);
  mime::MessageHead head(rewritten);
  head.set("To", member);
  return head.str();
}

std::string_view to_string(MailingList::Verdict v) noexcept {
  switch (v) {
    case MailingList::Verdict::distribute: return "distribute";
    case MailingList::Verdict::not_permitted: return "not permitted";
    case MailingList::Verdict::filtered: return "filtered";
    case MailingList::Verdict::loop: return "loop";
  }
  return "distribute";
}

}  // namespace wizmail
