#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "dkim/dkim.hpp"
#include "dkim/opendkim.hpp"

namespace wizmail::dkim {

using detail::dkim_error;

struct Signer::Impl {
  std::string domain, selector;
  PrivateKey key;
  detail::Lib lib;

  Result<detail::Handle> start() const {
    DKIM_STAT st = DKIM_STAT_OK;
    detail::Handle h(dkim_sign(lib.get(), reinterpret_cast<const u_char*>("wizmail"), nullptr,
                               reinterpret_cast<dkim_sigkey_t>(const_cast<char*>(key.pem.c_str())),
                               reinterpret_cast<const u_char*>(selector.c_str()),
                               reinterpret_cast<const u_char*>(domain.c_str()), DKIM_CANON_RELAXED,
                               DKIM_CANON_RELAXED,
                               key.algorithm == Algorithm::ed25519_sha256 ? DKIM_SIGN_ED25519SHA256
                                                                          : DKIM_SIGN_RSASHA256,
                               -1, &st));
    if (!h || st != DKIM_STAT_OK) return unexpected(dkim_error("dkim_sign", st, h.get()));
    return h;
  }

  Result<std::string> header(DKIM* d) const {
    static constexpr std::string_view name = "DKIM-Signature";
    u_char* value = nullptr;
    std::size_t len = 0;
    DKIM_STAT st = dkim_getsighdr_d(d, name.size() + 2, &value, &len);
    if (st != DKIM_STAT_OK || !value) return unexpected(dkim_error("signature", st, d));
    std::string out(name);
    out += ": ";
    bool cr = false;
    // The library folds with bare LF; on the wire every line ends in CRLF.
    for (std::size_t i = 0; i < len; ++i) {
      char c = static_cast<char>(value[i]);
      if (c == '\n' && !cr) out += '\r';
      out += c;
      cr = c == '\r';
    }
    out += "\r\n";
    return out;
  }
};

Result<Signer> Signer::create(std::string domain, std::string selector, PrivateKey key) {
  if (!valid_domain(domain)) return fail(Errc::invalid_argument, "not a domain name: '" + domain + "'");
  if (!valid_selector(selector)) return fail(Errc::invalid_argument, "not a selector: '" + selector + "'");
  auto impl = std::make_unique<Impl>();
  impl->domain = std::move(domain);
  impl->selector = std::move(selector);
  impl->key = std::move(key);
  impl->lib.reset(dkim_init(nullptr, nullptr));
  if (!impl->lib) return fail(Errc::internal, "dkim_init failed");
  if (impl->key.algorithm == Algorithm::ed25519_sha256 && !dkim_libfeature(impl->lib.get(), DKIM_FEATURE_ED25519))
    return fail(Errc::invalid_argument, "this libopendkim was built without ed25519-sha256");
  // NULL-terminated lists of header names; the library copies them into
  // its regular expressions.
  auto set_list = [&](int opt, const std::vector<std::string>& names) -> Status {
    std::vector<const char*> ptrs;
    for (const auto& n : names) ptrs.push_back(n.c_str());
    ptrs.push_back(nullptr);
    // The option's value is the list itself; its "length" is a pointer's.
    DKIM_STAT st = dkim_options(impl->lib.get(), DKIM_OP_SETOPT, opt, ptrs.data(), sizeof(char**));
    if (st != DKIM_STAT_OK) return unexpected(dkim_error("dkim_options", st, nullptr));
    return {};
  };
  if (auto st = set_list(DKIM_OPTS_SIGNHDRS, signed_headers()); !st) return unexpected(st.error());
  if (auto st = set_list(DKIM_OPTS_OVERSIGNHDRS, oversigned_headers()); !st) return unexpected(st.error());
  return Signer(std::move(impl));
}

Signer::Signer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Signer::Signer(Signer&&) noexcept = default;
Signer& Signer::operator=(Signer&&) noexcept = default;
Signer::~Signer() = default;

const std::string& Signer::domain() const noexcept { return impl_->domain; }
const std::string& Signer::selector() const noexcept { return impl_->selector; }
Algorithm Signer::algorithm() const noexcept { return impl_->key.algorithm; }

Result<std::string> Signer::sign(std::string_view message) const {
  auto h = impl_->start();
  if (!h) return unexpected(h.error());
  detail::MessageFeeder feeder(h->get(), false);
  if (auto s = feeder.feed(message); !s) return unexpected(s.error());
  auto eom = feeder.finish();
  if (!eom) return unexpected(eom.error());
  if (*eom != DKIM_STAT_OK) return unexpected(dkim_error("end of message", *eom, h->get()));
  return impl_->header(h->get());
}

Result<std::string> Signer::sign_file(const std::filesystem::path& file) const {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_errno("open " + file.string(), errno);
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } closer{fd};
  auto h = impl_->start();
  if (!h) return unexpected(h.error());
  detail::MessageFeeder feeder(h->get(), false);
  std::vector<char> buf(64 * 1024);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read " + file.string(), errno);
    if (n == 0) break;
    if (auto s = feeder.feed({buf.data(), static_cast<std::size_t>(n)}); !s) return unexpected(s.error());
  }
  auto eom = feeder.finish();
  if (!eom) return unexpected(eom.error());
  if (*eom != DKIM_STAT_OK) return unexpected(dkim_error("end of message", *eom, h->get()));
  return impl_->header(h->get());
}

}  // namespace wizmail::dkim
