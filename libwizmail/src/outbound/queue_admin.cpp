// Admin operations on resendmail/ for `wizmail queue delete|flush`.
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs.hpp"
#include "wizmail/relay.hpp"

namespace wizmail {

Status delete_queue_entry(const RelayQueue& queue, std::string_view id_view, bool include_active) {
  if (auto st = RelayQueue::validate_id(id_view); !st) return st;
  std::string id(id_view);
  const auto& dir = queue.dir();
  if (auto st = util::make_dirs(queue.tmp_dir(), 0700); !st) return st;
  auto doomed = queue.tmp_dir() / (id + ".deleted");
  std::vector<std::filesystem::path> states = {dir / "incoming", dir / "deferred"};
  const auto claimed = queue.claim_dirs();  // active/ and every node's claims/
  // Claims are taken only from a runner known to be stopped: a single
  // server's, or this node's (another node's runner may be live).
  if (include_active) {
    states.push_back(dir / "active");
    if (!queue.node().empty()) states.push_back(queue.state_dir(QueueState::active));
  }
  for (const auto& s : states) {
    auto from = s / id;
    // One rename takes the envelope away from the runner: if it claimed
    // the entry first this fails with ENOENT and we look further.
    if (::rename(from.c_str(), doomed.c_str()) == 0) {
      (void)util::fsync_dir(s);
      ::unlink(doomed.c_str());
      if (::unlink(queue.message_path(id).c_str()) != 0 && errno != ENOENT)
        return fail_errno("queue: remove data " + id, errno);
      (void)util::fsync_dir(dir / "data");
      return {};
    }
    if (errno != ENOENT) return fail_errno("queue: delete " + id, errno);
  }
  struct stat sb{};
  for (const auto& s : claimed)
    if (::stat((s / id).c_str(), &sb) == 0)
      return fail(Errc::busy, "queue entry " + id + " is being delivered right now; try again in a moment");
  return fail(Errc::not_found, "no queue entry " + id);
}

Result<std::size_t> make_queue_due(const RelayQueue& queue) {
  auto ids = queue.list();
  if (!ids) return unexpected(ids.error());
  std::size_t n = 0;
  for (const auto& id : *ids) {
    auto e = queue.load(id);
    if (!e || e->state != QueueState::deferred) continue;
    e->next_attempt = 0;
    if (auto st = queue.save(*e); !st) return unexpected(st.error());
    ++n;
  }
  return n;
}

}  // namespace wizmail
