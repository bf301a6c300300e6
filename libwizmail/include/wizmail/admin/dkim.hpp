// DKIM keys of a home, for `wizmail dkim keygen|show` (docs/dkim.md).
// A domain's keys live in HOME/def/dkim/<domain>/<selector>.key (PEM,
// mode 0600, folders 0700); HOME/def/dkim/<domain>/selector names the one the
// relay signs with (without it, the folder's only key). The relay loads them
// at start and on `wizmail reload`.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

struct DkimKeyInfo {
  std::string domain;
  std::string selector;
  std::string algorithm;            // "rsa-sha256" or "ed25519-sha256"
  int bits = 0;                     // RSA modulus size; 256 for Ed25519
  std::filesystem::path file;       // the private key
  bool active = false;              // the selector the relay signs with
  std::string record_name;          // "<selector>._domainkey.<domain>"
  std::string record;               // "v=DKIM1; k=rsa; p=…"
  std::vector<std::string> strings; // the record in character-strings of at most 255 octets
  // The zone-file line to publish:
  // <selector>._domainkey.<domain>. IN TXT "…" "…"
  std::string zone_line() const;
};

struct DkimKeygenOptions {
  std::string selector;   // empty = "wizmail" (RSA) or "wizmail-ed25519"
  bool ed25519 = false;   // Ed25519 (RFC 8463) instead of RSA 2048
  bool force = false;     // replace an existing key file of that selector
  bool activate = false;  // sign with it from now on even if another selector is in use
};

// Generate a key and write it (mode 0600). The first key of a domain is made
// the one in use; a later one only with `activate` (publish its record first).
// Errors: Errc::invalid_argument (domain or selector not valid),
// Errc::already_exists (the key file exists and `force` is not set).
Result<DkimKeyInfo> dkim_keygen(const std::filesystem::path& home, std::string_view domain,
                                const DkimKeygenOptions& options);

// An existing key: `selector` empty = the one in use.
Result<DkimKeyInfo> dkim_show(const std::filesystem::path& home, std::string_view domain,
                              std::string_view selector = {});

}  // namespace wizmail
