#include "outbound/notice.hpp"

#include <algorithm>

#include "util/strings.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/maildir_delivery.hpp"

namespace wizmail::outbound {

namespace fs = std::filesystem;

bool deliver_notice(const Config& config, RelayQueue& queue, std::string_view to, std::string_view notice,
                    bool copy_to_postmaster, std::string_view label,
                    const std::function<void(const std::string&)>& log) {
  const std::string lbl(label);
  auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  AccountStore store(config.mailbox_dir());
  struct Copy {
    std::string account, address;
    fs::path dir;
  };
  std::vector<Copy> copies;
  auto add = [&](const std::string& account, const std::string& address) {
    // An account the store cannot look up may exist: the delivery is tried
    // (and its failure logged).
    auto kind = store.lookup(account);
    if (!kind) say(lbl + ": account " + account + ": " + kind.error().message);
    else if (*kind == AccountKind::none) return false;
    auto d = store.account_dir(account);
    if (!d) return false;
    for (const auto& c : copies)
      if (c.dir == *d) return true;
    copies.push_back({account, address, *d});
    return true;
  };
  const std::string postmaster = "postmaster@" + config.server.domain;
  if (copy_to_postmaster) add("postmaster", postmaster);
  bool queued = false;
  const auto at = to.rfind('@');
  const std::string domain = at == std::string_view::npos ? std::string() : util::to_lower(to.substr(at + 1));
  const auto locals = config.local_domains();
  if (std::find(locals.begin(), locals.end(), domain) != locals.end()) {
    auto name = AccountStore::normalize_name(to.substr(0, at));
    if (!name || !add(*name, std::string(to))) {
      say(lbl + " to <" + std::string(to) + ">: no such local account (postmaster gets it)");
      add("postmaster", postmaster);
    }
  } else {
    QueueEnvelope env;
    env.recipients = {std::string(to)};
    if (auto id = queue.enqueue(env, notice)) {
      say(lbl + " to <" + std::string(to) + "> queued as " + *id);
      queued = true;
    } else {
      say(lbl + ": cannot queue it: " + id.error().message);
    }
  }
  for (const auto& c : copies) {
    if (auto r = deliver_final(c.dir, "", c.address, notice); r)
      say(lbl + " delivered to " + c.account);
    else
      say(lbl + " delivery to " + c.account + " failed: " + r.error().message);
  }
  return queued;
}

}  // namespace wizmail::outbound
