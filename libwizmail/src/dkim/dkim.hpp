// DKIM (RFC 6376) signing and verifying over Debian's libopendkim: the
// canonicalisation, hashing and tag syntax are the library's, not ours.
// This area only feeds it a message (header fields one by one, the body in
// chunks, line ends made CRLF) and turns its handles and codes into RAII
// objects and wizmail Results. Algorithms: rsa-sha256 and ed25519-sha256
// (RFC 8463); canonicalisation relaxed/relaxed.
//
// Pure apart from reading a message file (Signer::sign_file): no sockets;
// the Verifier asks a KeySource for the key records, or DNS through
// libopendkim's own resolver when none is given.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::dkim {

enum class Algorithm { rsa_sha256, ed25519_sha256 };
std::string_view to_string(Algorithm a) noexcept;  // "rsa-sha256", "ed25519-sha256"

// The header fields signed when present (RFC 6376 §5.4.1's list, trimmed to
// what a receiver shows or threads by); "List-*" is every List- field.
const std::vector<std::string>& signed_headers();
// Over-signed: named once more in h= than they occur, so a receiver's check
// fails when one is added on the way (RFC 6376 §8.15).
const std::vector<std::string>& oversigned_headers();

// A private key (PEM, PKCS#8 or traditional RSA) checked with OpenSSL.
struct PrivateKey {
  Algorithm algorithm = Algorithm::rsa_sha256;
  int bits = 0;             // RSA modulus size; 256 for Ed25519
  std::string pem;          // as read
  std::string public_key;   // the p= value: base64 of SubjectPublicKeyInfo (RSA) or the raw 32 octets (Ed25519)
};
Result<PrivateKey> parse_private_key(std::string_view pem);
// A fresh key: RSA 2048 or Ed25519, PEM (PKCS#8).
Result<PrivateKey> generate_key(Algorithm algorithm);

// The TXT record to publish for a key: "v=DKIM1; k=rsa; p=…".
std::string key_record(const PrivateKey& key);
// The record as DNS character-strings of at most 255 octets each.
std::vector<std::string> split_txt(std::string_view record);

// domain and selector syntax (RFC 6376 §3.1, §3.5: dot-atoms of letters,
// digits and hyphens, each label 1–63 octets, no leading or trailing hyphen).
bool valid_domain(std::string_view domain);
bool valid_selector(std::string_view selector);

class Signer {
 public:
  // Errors: Errc::invalid_argument for a bad domain or selector.
  static Result<Signer> create(std::string domain, std::string selector, PrivateKey key);
  Signer(Signer&&) noexcept;
  Signer& operator=(Signer&&) noexcept;
  ~Signer();

  // The DKIM-Signature field for the message (header section, empty line,
  // body; LF or CRLF line ends), folded with CRLF and ending in CRLF, to be
  // put in front of the message as it is sent (t= is the clock). Safe to
  // call from several threads at once.
  Result<std::string> sign(std::string_view message) const;
  // The same over a message file, read in chunks.
  Result<std::string> sign_file(const std::filesystem::path& file) const;

  const std::string& domain() const noexcept;
  const std::string& selector() const noexcept;
  Algorithm algorithm() const noexcept;

  struct Impl;

 private:
  explicit Signer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// RFC 8601 result names for one signature.
enum class Outcome { pass, fail, neutral, temperror, permerror };
std::string_view to_string(Outcome o) noexcept;

struct SignatureResult {
  Outcome outcome = Outcome::neutral;
  std::string domain;    // d=
  std::string selector;  // s=
  std::string reason;    // libopendkim's words when not a pass
};

// What a key look-up found for "<selector>._domainkey.<domain>".
struct KeyAnswer {
  enum class Status { found, not_found, temporary } status = Status::not_found;
  std::string record;  // the TXT record, strings joined
};
using KeySource = std::function<KeyAnswer(std::string_view name)>;

// A KeySource over fixed records (name → record), for tests and tools.
KeySource fixed_keys(std::map<std::string, std::string> records);

class Verifier {
 public:
  // `keys` empty: DNS through libopendkim's resolver.
  static Result<Verifier> create(KeySource keys = {});
  Verifier(Verifier&&) noexcept;
  Verifier& operator=(Verifier&&) noexcept;
  ~Verifier();

  // One result per DKIM-Signature field of the message, in order; empty when
  // it has none. An Error only when the message could not be processed at
  // all (e.g. no header section).
  Result<std::vector<SignatureResult>> verify(std::string_view message) const;

  struct Impl;

 private:
  explicit Verifier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The keys of a home (docs/dkim.md): def/dkim/<domain>/<selector>.key, the
// selector in use named by def/dkim/<domain>/selector (or the only key).
std::filesystem::path key_dir(const std::filesystem::path& home);
std::filesystem::path key_path(const std::filesystem::path& home, std::string_view domain,
                               std::string_view selector);

// Every domain's signer, loaded once (at start and on each reload): the
// relay signs from memory. A domain whose key cannot be used is left out and
// said in `problems` (one line each, for the log).
class KeyRing {
 public:
  static KeyRing load(const std::filesystem::path& home);
  // The signer for `domain` (lower case, ASCII), or null.
  const Signer* find(std::string_view domain) const;
  const std::vector<std::string>& problems() const noexcept { return problems_; }
  std::size_t size() const noexcept { return signers_.size(); }

 private:
  std::map<std::string, Signer, std::less<>> signers_;
  std::vector<std::string> problems_;
};

// The selector of `domain` in the home: the `selector` file's word, else the
// only <selector>.key. Errc::not_found when the domain has no key.
Result<std::string> active_selector(const std::filesystem::path& home, std::string_view domain);

}  // namespace wizmail::dkim
