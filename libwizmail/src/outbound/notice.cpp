#include "outbound/notice.hpp"

#include <algorithm>
#include <ctime>
#include <optional>

#include "srs/secret.hpp"
#include "srs/srs.hpp"
#include "util/fs.hpp"
#include "util/idna.hpp"
#include "util/strings.hpp"
#include "util/utf8.hpp"
#include "wizmail/account_store.hpp"
#include "store/maildir_delivery.hpp"

namespace wizmail::outbound {

namespace fs = std::filesystem;

namespace {

// A notice about mail that left with an SRS sender (smtpenv srs=1) goes to
// the address that sender stands for, as a bounce from outside would; an
// SRS address that does not reverse (expired, another secret) is left as
// it is (postmaster gets the notice).
std::string srs_reversed(const Config& config, std::string_view to, const std::function<void(const std::string&)>& say) {
  const auto at = to.rfind('@');
  if (!config.smtp.srs || at == std::string_view::npos || !srs::is_srs_address(to)) return std::string(to);
  const std::string& d = config.smtp.srs_domain.empty() ? config.server.domain : config.smtp.srs_domain;
  const std::string srs_domain = util::domain_to_ascii(d).value_or(util::to_lower(d));
  if (util::domain_to_ascii(to.substr(at + 1)).value_or(std::string()) != srs_domain) return std::string(to);
  const fs::path file = srs::secret_file(config.home);
  auto fail_with = [&](const Error& e) {
    say("srs: cannot reverse <" + std::string(to) + ">: " + e.message);
    return std::string(to);
  };
  auto text = util::read_file(file);
  if (!text) return fail_with(text.error());
  auto secrets = srs::parse_secrets(*text, file);
  if (!secrets) return fail_with(secrets.error());
  srs::Options o;
  o.secrets = std::move(*secrets);
  o.max_age_days = config.smtp.srs_max_age;
  auto rewriter = srs::Rewriter::make(std::move(o));
  if (!rewriter) return fail_with(rewriter.error());
  auto back = rewriter->reverse(to, std::time(nullptr));
  if (!back) return fail_with(back.error());
  say("srs: <" + std::string(to) + "> is <" + *back + ">");
  return std::move(*back);
}

}  // namespace

bool deliver_notice(const Config& config, RelayQueue& queue, std::string_view to_in, std::string_view notice,
                    bool copy_to_postmaster, std::string_view label,
                    const std::function<void(const std::string&)>& log, const NoticeOptions& options) {
  const std::string lbl(label);
  auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  AccountStore store(config.mailbox_dir());
  struct Copy {
    std::string account, address;
    fs::path dir;
    std::string_view text;
  };
  std::vector<Copy> copies;
  auto add = [&](const std::string& account, const std::string& address, std::string_view text) {
    // An account the store cannot look up may exist: the delivery is tried
    // (and its failure logged).
    auto kind = store.lookup(account);
    if (!kind) say(lbl + ": account " + account + ": " + kind.error().message);
    else if (*kind == AccountKind::none) return false;
    auto d = store.account_dir(account);
    if (!d) return false;
    for (const auto& c : copies)
      if (c.dir == *d) return true;
    copies.push_back({account, address, *d, text});
    return true;
  };
  const std::string postmaster = "postmaster@" + config.server.domain;
  bool queued = false;
  const std::string reversed = srs_reversed(config, to_in, [&](const std::string& line) { say(lbl + ": " + line); });
  const std::string_view to = reversed;
  const auto at = to.rfind('@');
  // U-labels compare in their A-label form; a domain that is no IDN is not local.
  const std::string domain =
      at == std::string_view::npos ? std::string() : util::domain_to_ascii(to.substr(at + 1)).value_or(std::string());
  const auto locals = config.local_domains();
  const bool local = std::find(locals.begin(), locals.end(), domain) != locals.end();
  std::optional<std::string> name;
  if (local)
    if (auto n = AccountStore::normalize_name(to.substr(0, at))) name = std::move(*n);
  // The sender's own notice first: when `to` is postmaster, that is its copy.
  if (local && !(name && add(*name, std::string(to), notice))) {
    say(lbl + " to <" + std::string(to) + ">: no such local account (postmaster gets it)");
    add("postmaster", postmaster, notice);
  }
  if (copy_to_postmaster)
    add("postmaster", postmaster, options.postmaster_notice.empty() ? notice : options.postmaster_notice);
  if (!local) {
    QueueEnvelope env;
    env.recipients = {std::string(to)};
    env.smtputf8 = options.smtputf8 || !util::is_ascii(to);
    if (auto id = queue.enqueue(env, notice)) {
      say(lbl + " to <" + std::string(to) + "> queued as " + *id);
      queued = true;
    } else {
      say(lbl + ": cannot queue it: " + id.error().message);
    }
  }
  for (const auto& c : copies) {
    if (auto r = deliver_final(c.dir, "", c.address, c.text); r)
      say(lbl + " delivered to " + c.account);
    else
      say(lbl + " delivery to " + c.account + " failed: " + r.error().message);
  }
  return queued;
}

}  // namespace wizmail::outbound
