#include "outbound/notice.hpp"

#include <algorithm>
#include <optional>

#include "util/idna.hpp"
#include "util/strings.hpp"
#include "util/utf8.hpp"
#include "wizmail/account_store.hpp"
#include "store/maildir_delivery.hpp"

namespace wizmail::outbound {

namespace fs = std::filesystem;

bool deliver_notice(const Config& config, RelayQueue& queue, std::string_view to, std::string_view notice,
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
