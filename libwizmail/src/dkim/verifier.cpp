#include <cstring>
#include <set>

#include "dkim/dkim.hpp"
#include "dkim/opendkim.hpp"
#include "util/strings.hpp"

namespace wizmail::dkim {

using detail::dkim_error;

namespace {

// What one verification asked the KeySource: the names answered
// "temporary" make their signatures temperror, whatever code the library
// turns that into.
struct LookupContext {
  const KeySource* keys = nullptr;
  std::set<std::string> temporary;
};

std::string sig_name(DKIM_SIGINFO* sig) {
  const u_char* s = dkim_sig_getselector(sig);
  const u_char* d = dkim_sig_getdomain(sig);
  return util::cat(s ? reinterpret_cast<const char*>(s) : "", "._domainkey.",
                   d ? reinterpret_cast<const char*>(d) : "");
}

DKIM_CBSTAT key_lookup(DKIM* d, DKIM_SIGINFO* sig, u_char* buf, std::size_t buflen) {
  auto* ctx = static_cast<LookupContext*>(dkim_get_user_context(d));
  if (!ctx || !ctx->keys || !*ctx->keys) return DKIM_CBSTAT_DEFAULT;
  const std::string name = sig_name(sig);
  KeyAnswer a = (*ctx->keys)(name);
  switch (a.status) {
    case KeyAnswer::Status::found:
      if (a.record.size() + 1 > buflen) return DKIM_CBSTAT_ERROR;
      std::memcpy(buf, a.record.data(), a.record.size());
      buf[a.record.size()] = '\0';
      return DKIM_CBSTAT_CONTINUE;
    case KeyAnswer::Status::not_found:
      return DKIM_CBSTAT_NOTFOUND;
    case KeyAnswer::Status::temporary:
      break;
  }
  ctx->temporary.insert(util::to_lower(name));
  return DKIM_CBSTAT_TRYAGAIN;
}

Outcome classify(DKIM_SIGINFO* sig, const LookupContext& ctx, std::string& reason) {
  const unsigned flags = dkim_sig_getflags(sig);
  const int err = dkim_sig_geterror(sig);
  if (ctx.temporary.count(util::to_lower(sig_name(sig)))) {
    reason = "key look-up failed temporarily";
    return Outcome::temperror;
  }
  if (flags & DKIM_SIGFLAG_IGNORE) {
    reason = "ignored";
    return Outcome::neutral;
  }
  if ((flags & DKIM_SIGFLAG_PASSED) && dkim_sig_getbh(sig) == DKIM_SIGBH_MATCH) return Outcome::pass;
  if (err != DKIM_SIGERROR_OK && err != DKIM_SIGERROR_UNKNOWN) {
    if (const char* s = dkim_sig_geterrorstr(err)) reason = s;
  }
  switch (err) {
    case DKIM_SIGERROR_KEYFAIL:
      return Outcome::temperror;
    case DKIM_SIGERROR_BADSIG:
      return Outcome::fail;
    case DKIM_SIGERROR_OK:
    case DKIM_SIGERROR_UNKNOWN:
      if (flags & DKIM_SIGFLAG_PROCESSED) {
        if (dkim_sig_getbh(sig) == DKIM_SIGBH_MISMATCH) {
          reason = "body hash mismatch";
          return Outcome::fail;
        }
        reason = "signature did not verify";
        return Outcome::fail;
      }
      reason = "not processed";
      return Outcome::neutral;
    default:
      // Syntax of the signature or the key, no key, revoked, expired:
      // RFC 6376 §6.1 PERMFAIL.
      return Outcome::permerror;
  }
}

}  // namespace

std::string_view to_string(Outcome o) noexcept {
  switch (o) {
    case Outcome::pass: return "pass";
    case Outcome::fail: return "fail";
    case Outcome::neutral: return "neutral";
    case Outcome::temperror: return "temperror";
    case Outcome::permerror: return "permerror";
  }
  return "neutral";
}

KeySource fixed_keys(std::map<std::string, std::string> records) {
  std::map<std::string, std::string> lower;
  for (auto& [k, v] : records) lower[util::to_lower(k)] = std::move(v);
  return [recs = std::move(lower)](std::string_view name) {
    auto it = recs.find(util::to_lower(name));
    if (it == recs.end()) return KeyAnswer{KeyAnswer::Status::not_found, {}};
    return KeyAnswer{KeyAnswer::Status::found, it->second};
  };
}

struct Verifier::Impl {
  KeySource keys;
  detail::Lib lib;
};

Result<Verifier> Verifier::create(KeySource keys) {
  auto impl = std::make_unique<Impl>();
  impl->keys = std::move(keys);
  impl->lib.reset(dkim_init(nullptr, nullptr));
  if (!impl->lib) return fail(Errc::internal, "dkim_init failed");
  // A signature the library cannot parse still gets a handle (and so a
  // permerror result) instead of vanishing.
  unsigned flags = 0;
  (void)dkim_options(impl->lib.get(), DKIM_OP_GETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
  flags |= DKIM_LIBFLAGS_BADSIGHANDLES;
  if (DKIM_STAT st = dkim_options(impl->lib.get(), DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
      st != DKIM_STAT_OK)
    return unexpected(dkim_error("dkim_options", st, nullptr));
  if (impl->keys) {
    DKIM_STAT st = dkim_set_key_lookup(impl->lib.get(), key_lookup);
    if (st != DKIM_STAT_OK) return unexpected(dkim_error("dkim_set_key_lookup", st, nullptr));
  }
  return Verifier(std::move(impl));
}

Verifier::Verifier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Verifier::Verifier(Verifier&&) noexcept = default;
Verifier& Verifier::operator=(Verifier&&) noexcept = default;
Verifier::~Verifier() = default;

Result<std::vector<SignatureResult>> Verifier::verify(std::string_view message) const {
  DKIM_STAT st = DKIM_STAT_OK;
  detail::Handle h(dkim_verify(impl_->lib.get(), reinterpret_cast<const u_char*>("wizmail"), nullptr, &st));
  if (!h || st != DKIM_STAT_OK) return unexpected(dkim_error("dkim_verify", st, h.get()));
  LookupContext ctx;
  ctx.keys = &impl_->keys;
  dkim_set_user_context(h.get(), &ctx);
  detail::MessageFeeder feeder(h.get(), true);
  if (auto s = feeder.feed(message); !s) return unexpected(s.error());
  auto eom = feeder.finish();
  if (!eom) return unexpected(eom.error());
  std::vector<SignatureResult> out;
  if (*eom == DKIM_STAT_NOSIG) return out;
  DKIM_SIGINFO** sigs = nullptr;
  int n = 0;
  if (dkim_getsiglist(h.get(), &sigs, &n) != DKIM_STAT_OK || !sigs) return out;
  for (int i = 0; i < n; ++i) {
    SignatureResult r;
    const u_char* d = dkim_sig_getdomain(sigs[i]);
    const u_char* s = dkim_sig_getselector(sigs[i]);
    r.domain = d ? reinterpret_cast<const char*>(d) : "";
    r.selector = s ? reinterpret_cast<const char*>(s) : "";
    r.outcome = classify(sigs[i], ctx, r.reason);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace wizmail::dkim
