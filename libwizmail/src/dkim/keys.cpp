// Keys: generating and checking them with OpenSSL, the TXT record to
// publish, where a home keeps them and the KeyRing the relay signs from.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <system_error>

#include "dkim/dkim.hpp"
#include "util/base64.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace wizmail::dkim {

namespace fs = std::filesystem;

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct BioFree {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const noexcept { EVP_PKEY_CTX_free(c); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// Algorithm, size and p= of a loaded key.
Result<PrivateKey> describe(EVP_PKEY* key, std::string pem) {
  PrivateKey out;
  out.pem = std::move(pem);
  switch (EVP_PKEY_base_id(key)) {
    case EVP_PKEY_RSA: {
      out.algorithm = Algorithm::rsa_sha256;
      out.bits = EVP_PKEY_get_bits(key);
      if (out.bits < 1024)
        return fail(Errc::invalid_argument, "RSA key of " + std::to_string(out.bits) +
                                                " bits: DKIM verifiers refuse keys under 1024 bits");
      unsigned char* der = nullptr;
      int n = i2d_PUBKEY(key, &der);
      if (n <= 0) return fail(Errc::internal, "i2d_PUBKEY: " + ssl_error());
      out.public_key = util::base64_encode({reinterpret_cast<const char*>(der), static_cast<std::size_t>(n)});
      OPENSSL_free(der);
      break;
    }
    case EVP_PKEY_ED25519: {
      out.algorithm = Algorithm::ed25519_sha256;
      out.bits = 256;
      unsigned char raw[32];
      std::size_t len = sizeof raw;
      if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1 || len != sizeof raw)
        return fail(Errc::internal, "Ed25519 public key: " + ssl_error());
      out.public_key = util::base64_encode({reinterpret_cast<const char*>(raw), len});
      break;
    }
    default:
      return fail(Errc::invalid_argument, "not an RSA or Ed25519 key");
  }
  return out;
}

bool valid_label(std::string_view l) {
  if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') return false;
  return std::all_of(l.begin(), l.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

bool valid_dotted(std::string_view s, std::size_t max) {
  if (s.empty() || s.size() > max) return false;
  std::size_t start = 0;
  for (;;) {
    auto dot = s.find('.', start);
    if (!valid_label(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start)))
      return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

}  // namespace

std::string_view to_string(Algorithm a) noexcept {
  return a == Algorithm::ed25519_sha256 ? "ed25519-sha256" : "rsa-sha256";
}

const std::vector<std::string>& signed_headers() {
  static const std::vector<std::string> h = {
      "from", "to", "cc", "subject", "date", "message-id", "reply-to", "in-reply-to", "references",
      "mime-version", "content-type", "content-transfer-encoding", "list-*"};
  return h;
}

const std::vector<std::string>& oversigned_headers() {
  static const std::vector<std::string> h = {"from", "subject", "to"};
  return h;
}

Result<PrivateKey> parse_private_key(std::string_view pem) {
  if (pem.find("-----BEGIN") == std::string_view::npos)
    return fail(Errc::parse, "not a PEM private key");
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return fail(Errc::internal, "BIO_new_mem_buf failed");
  Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return fail(Errc::parse, "not a usable PEM private key: " + ssl_error());
  return describe(key.get(), std::string(pem));
}

Result<PrivateKey> generate_key(Algorithm algorithm) {
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(
      EVP_PKEY_CTX_new_id(algorithm == Algorithm::ed25519_sha256 ? EVP_PKEY_ED25519 : EVP_PKEY_RSA, nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1) return fail(Errc::internal, "keygen init: " + ssl_error());
  if (algorithm == Algorithm::rsa_sha256 && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), 2048) != 1)
    return fail(Errc::internal, "RSA key size: " + ssl_error());
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_keygen(ctx.get(), &raw) != 1) return fail(Errc::internal, "keygen: " + ssl_error());
  Pkey key(raw);
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return fail(Errc::internal, "PEM_write_bio_PrivateKey: " + ssl_error());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return describe(key.get(), std::string(data, static_cast<std::size_t>(n)));
}

std::string key_record(const PrivateKey& key) {
  return util::cat("v=DKIM1; k=", key.algorithm == Algorithm::ed25519_sha256 ? "ed25519" : "rsa",
                   "; p=", key.public_key);
}

std::vector<std::string> split_txt(std::string_view record) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < record.size(); i += 255) out.emplace_back(record.substr(i, 255));
  if (out.empty()) out.emplace_back();
  return out;
}

bool valid_domain(std::string_view domain) {
  return valid_dotted(domain, 253) && domain.find('_') == std::string_view::npos &&
         domain.find('.') != std::string_view::npos;
}

bool valid_selector(std::string_view selector) { return valid_dotted(selector, 63); }

fs::path key_dir(const fs::path& home) { return home / "def" / "dkim"; }

fs::path key_path(const fs::path& home, std::string_view domain, std::string_view selector) {
  return key_dir(home) / std::string(domain) / (std::string(selector) + ".key");
}

Result<std::string> active_selector(const fs::path& home, std::string_view domain) {
  const fs::path dir = key_dir(home) / std::string(domain);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return fail(Errc::not_found, "no DKIM key for " + std::string(domain));
  if (fs::exists(dir / "selector", ec)) {
    auto text = util::read_file(dir / "selector");
    if (!text) return unexpected(text.error());
    std::string s(util::trim(*text));
    if (!valid_selector(s))
      return fail(Errc::parse, (dir / "selector").string() + ": not a selector: '" + s + "'");
    return s;
  }
  std::vector<std::string> keys;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.size() > 4 && name.ends_with(".key")) keys.push_back(name.substr(0, name.size() - 4));
  }
  if (keys.empty()) return fail(Errc::not_found, "no DKIM key for " + std::string(domain));
  if (keys.size() > 1)
    return fail(Errc::invalid_argument, dir.string() + " holds " + std::to_string(keys.size()) +
                                            " keys and no `selector` file naming the one to sign with");
  return keys.front();
}

KeyRing KeyRing::load(const fs::path& home) {
  KeyRing ring;
  std::error_code ec;
  const fs::path top = key_dir(home);
  if (!fs::is_directory(top, ec)) return ring;
  for (const auto& e : fs::directory_iterator(top, ec)) {
    if (!e.is_directory(ec)) continue;
    const std::string domain = util::to_lower(e.path().filename().string());
    auto problem = [&](const std::string& why) { ring.problems_.push_back("dkim: " + domain + ": " + why); };
    if (!valid_domain(domain)) {
      problem("not a domain name; folder ignored");
      continue;
    }
    auto selector = active_selector(home, e.path().filename().string());
    if (!selector) {
      if (selector.error().code != Errc::not_found) problem(selector.error().message);
      continue;
    }
    const fs::path file = e.path() / (*selector + ".key");
    auto pem = util::read_file(file);
    if (!pem) {
      problem("cannot read " + file.string() + ": " + pem.error().message + "; mail from it goes unsigned");
      continue;
    }
    auto key = parse_private_key(*pem);
    if (!key) {
      problem(file.string() + ": " + key.error().message + "; mail from it goes unsigned");
      continue;
    }
    auto signer = Signer::create(domain, *selector, std::move(*key));
    if (!signer) {
      problem(signer.error().message);
      continue;
    }
    ring.signers_.emplace(domain, std::move(*signer));
  }
  return ring;
}

const Signer* KeyRing::find(std::string_view domain) const {
  auto it = signers_.find(util::to_lower(domain));
  return it == signers_.end() ? nullptr : &it->second;
}

}  // namespace wizmail::dkim
