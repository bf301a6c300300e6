#include "pop3/store_backend.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <ctime>

#include "mime/dot_stuffer.hpp"
#include "store/maildir_name.hpp"
#include "util/strings.hpp"
#include "wizmail/mailbox.hpp"

namespace wizmail::pop3 {

namespace fs = std::filesystem;

namespace {

class FileReader : public MessageReader {
 public:
  explicit FileReader(int fd) : fd_(fd) {}
  ~FileReader() override { ::close(fd_); }
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;
  Result<std::size_t> read(char* buf, std::size_t len) override {
    for (;;) {
      ssize_t n = ::read(fd_, buf, len);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return fail_errno("read message", errno);
    }
  }
  int fd() const noexcept override { return fd_; }

 private:
  int fd_;
};

class MaildirDrop : public Maildrop {
 public:
  MaildirDrop(MailboxLock lock, state::LeaseKeeper::Lease lease, Mailbox box, std::vector<Mailbox::Entry> list,
              fs::path dustbox, DeliveryJournal* journal, std::vector<std::string> notes)
      : lock_(std::move(lock)), lease_(std::move(lease)), box_(std::move(box)), dustbox_(std::move(dustbox)),
        journal_(journal), notes_(std::move(notes)) {
    infos_.reserve(list.size());
    for (auto& m : list) {
      std::uint64_t size = m.size;
      if (!store::maildir_size_field(m.uid())) {
        // No ",S=": a foreign delivery; count what RETR will really send.
        if (auto n = transmitted_file_size(box_.path_of(m))) size = *n;
      }
      infos_.push_back({std::string(m.uid()), pop3_size_from_name(m.uid(), size)});
    }
    // Only the file names are kept (each path is made when it is opened).
    entries_ = std::move(list);
  }

  // A session over a huge mailbox frees a lot at once: give it back to the
  // system, rather than keep it in this thread's malloc arena until a later
  // session there happens to reuse it (memory bounded by the sessions open
  // now, not by every session thread's largest mailbox ever).
  ~MaildirDrop() override {
    const bool huge = infos_.size() >= 10000;
    infos_ = {};
    entries_ = {};
    if (huge) ::malloc_trim(0);
  }

  const std::vector<MessageInfo>& messages() const noexcept override { return infos_; }

  Result<std::unique_ptr<MessageReader>> open(std::size_t i) override {
    const fs::path path = box_.path_of(entries_.at(i));
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
      // Renamed meanwhile (an IMAP server changed its flags): look it up.
      auto f = box_.open(infos_[i].uid);
      if (!f) return unexpected(f.error());
      fd = ::dup(f->fd());
    }
    if (fd < 0) return fail_errno("open " + path.string(), errno);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::unique_ptr<MessageReader>(std::make_unique<FileReader>(fd));
  }

  Status commit(const std::vector<std::size_t>& indexes) override {
    std::vector<std::string> uids;
    uids.reserve(indexes.size());
    for (auto i : indexes) uids.push_back(infos_.at(i).uid);
    // A fresh message's journal record would bring it back after a crash:
    // checkpoint it first (nothing to do for the others).
    if (journal_) {
      if (auto st = journal_->settle(std::span<const std::string>(uids)); !st) return st;
    }
    return box_.remove(std::span<const std::string>(uids), dustbox_);
  }

  void keep_alive() override { (void)lock_.refresh(); }
  void release() override { lease_.release_now(); }
  std::vector<std::string> login_notes() const override { return notes_; }

 private:
  MailboxLock lock_;
  state::LeaseKeeper::Lease lease_;  // released (by the keeper's thread) with the drop
  Mailbox box_;
  fs::path dustbox_;
  DeliveryJournal* journal_;
  std::vector<std::string> notes_;
  std::vector<MessageInfo> infos_;
  std::vector<Mailbox::Entry> entries_;  // where each message is
};

}  // namespace

std::uint64_t pop3_size_from_name(std::string_view base, std::uint64_t fallback) noexcept {
  // Fields after the first ',' of the base name: ",S=123,W=130".
  std::size_t pos = base.find(',');
  while (pos != std::string_view::npos) {
    std::string_view rest = base.substr(pos + 1);
    std::size_t next = rest.find(',');
    std::string_view field = rest.substr(0, next);
    if (field.size() > 2 && field[0] == 'W' && field[1] == '=') {
      std::uint64_t v = 0;
      auto [p, ec] = std::from_chars(field.data() + 2, field.data() + field.size(), v);
      if (ec == std::errc{} && p == field.data() + field.size()) return v;
    }
    pos = next == std::string_view::npos ? next : pos + 1 + next;
  }
  return fallback;
}

Result<std::uint64_t> transmitted_file_size(const fs::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return fail_errno("open " + file.string(), errno);
  FileReader r(fd);
  std::unique_ptr<char[]> buf(new char[65536]);
  std::uint64_t n = 0;
  char prev = '\0';
  for (;;) {
    auto got = r.read(buf.get(), 65536);
    if (!got) return unexpected(got.error());
    if (*got == 0) return n;
    std::string_view chunk(buf.get(), *got);
    n += chunk.size();
    for (std::size_t i = 0; i < chunk.size(); ++i)
      if (chunk[i] == '\n' && (i ? chunk[i - 1] : prev) != '\r') ++n;
    prev = chunk.back();
  }
}

std::string pop3_lease_name(std::string_view account) {
  return util::cat("wizmail:pop3lock:", account);
}

StoreBackendOptions store_backend_options(std::shared_ptr<const Config> config) {
  StoreBackendOptions o;
  o.mailbox_dir = config->mailbox_dir();
  o.dustbox_dir = config->dustbox_dir();
  // A holder refreshes its lock on activity (at most once a minute) and an
  // idle session ends at the autologout timeout (connection.cpp: at least
  // 600 s), so a lock older than that plus a margin has no live holder.
  o.lock.foreign_stale_age = std::chrono::seconds(std::max(config->smtp.session_timeout, 600) + 300);
  o.use_dustbox = [config](std::string_view account) {
    if (config->pop.dustbox) return true;
    auto s = config->account_settings(account);
    return s ? s->use_dustbox : config->smtp.use_dustbox;
  };
  return o;
}

StoreBackend::StoreBackend(StoreBackendOptions options)
    : opt_(std::move(options)), store_(opt_.mailbox_dir) {}

Result<bool> StoreBackend::verify_password(std::string_view account,
                                           std::string_view password) {
  auto ok = store_.authenticate(account, password);
  if (!ok && (ok.error().code == Errc::not_found || ok.error().code == Errc::invalid_argument))
    return false;
  return ok;
}

Result<std::optional<std::string>> StoreBackend::apop_secret(std::string_view account) {
  auto pw = store_.plain_password(account);
  if (pw) return std::optional<std::string>(std::move(*pw));
  switch (pw.error().code) {
    case Errc::not_found:
    case Errc::invalid_argument:
    case Errc::permission_denied:  // hashed or empty password
      return std::optional<std::string>{};
    default:
      return unexpected(pw.error());
  }
}

Result<std::unique_ptr<Maildrop>> StoreBackend::open_maildrop(std::string_view account,
                                                              std::string_view peer_ip) {
  auto dir = store_.account_dir(account);
  if (!dir) return unexpected(dir.error());
  auto lock = MailboxLock::acquire(*dir, opt_.lock);
  if (!lock) return unexpected(lock.error());
  // This host's lock first (no network); then the other nodes'.
  state::LeaseKeeper::Lease lease;
  if (opt_.leases) {
    auto l = opt_.leases->acquire(pop3_lease_name(dir->filename().string()), opt_.lease_owner);
    if (!l) return unexpected(l.error());
    lease = std::move(*l);
  }
  // Nothing below may fail the login for want of disk space: on a full
  // disk the owner must still be able to download and delete (Dovecot
  // likewise logs a failed last-login update and goes on).
  std::vector<std::string> notes;
  if (!lock->note().empty()) notes.push_back(lock->note());
  if (!peer_ip.empty()) {
    // The table makes the login visible to SMTP before the client sees +OK
    // (POP-before-SMTP relies on it: a login it cannot record fails, the
    // session says [SYS/TEMP]); the file keeps it across restarts, and one
    // that cannot be written (a full disk) is logged, not fatal.
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    if (auto st = store_.write_pop_login(account, peer_ip, now); !st)
      notes.push_back("POP login not recorded in the ip file: " + st.error().message);
    if (opt_.pop_logins)
      if (auto st = opt_.pop_logins->record(peer_ip, dir->filename().string(), now, opt_.pop_login_ttl); !st)
        return unexpected(st.error());
  }
  Mailbox box(*dir);
  // A message left in new/ is listed and served from there all the same.
  if (auto moved = box.move_all_to_cur(); !moved)
    notes.push_back("new/ not moved to cur/: " + moved.error().message);
  auto list = box.list_entries();
  if (!list) return unexpected(list.error());
  fs::path dust;
  if (opt_.use_dustbox && opt_.use_dustbox(account)) dust = opt_.dustbox_dir;
  return std::unique_ptr<Maildrop>(
      std::make_unique<MaildirDrop>(std::move(*lock), std::move(lease), std::move(box), std::move(*list),
                                    std::move(dust), opt_.journal, std::move(notes)));
}

}  // namespace wizmail::pop3
