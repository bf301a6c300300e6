// Fuzz target: DKIM over any message (dkim/dkim.hpp): what our feeder hands
// libopendkim (header fields split and unfolded by us, line ends made CRLF)
// when signing and when verifying.
//
// Input: the message (any octets).
// Properties: verifying never fails as a whole except for a header section
// over its limit, and without any key record nothing passes; whenever the
// Signer signs the message, the signature it gave verifies (pass) over the
// message prefixed with it — signing and verifying see the same fields and
// body, whatever the line ends, folds and junk.
#include <string>

#include "dkim/dkim.hpp"
#include "fuzz.hpp"

using namespace wizmail;
using wizmail::fuzz::show;

namespace {

// A fixed Ed25519 key (fast, and every run the same).
constexpr const char* kPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEINfhMtxFNLTZVSbbNrhMOrdxiE+ivKsRcWLA4oFFizNg\n"
    "-----END PRIVATE KEY-----\n";

struct Fixture {
  dkim::Signer signer;
  dkim::Verifier with_key;
  dkim::Verifier without_keys;
};

Fixture& fixture() {
  static Fixture f = [] {
    auto key = dkim::parse_private_key(kPem);
    FUZZ_CHECK(key.has_value());
    auto record = dkim::key_record(*key);
    auto signer = dkim::Signer::create("fuzz.example", "f", *key);
    auto with_key = dkim::Verifier::create(dkim::fixed_keys({{"f._domainkey.fuzz.example", record}}));
    auto without = dkim::Verifier::create(dkim::fixed_keys({}));
    FUZZ_CHECK(signer.has_value() && with_key.has_value() && without.has_value());
    return Fixture{std::move(*signer), std::move(*with_key), std::move(*without)};
  }();
  return f;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view message(reinterpret_cast<const char*>(data), size);
  auto& f = fixture();

  auto plain = f.without_keys.verify(message);
  if (!plain) FUZZ_CHECK_MSG(plain.error().code == Errc::limit || plain.error().code == Errc::parse,
                             plain.error().message);
  else
    for (const auto& r : *plain) FUZZ_CHECK_MSG(r.outcome != dkim::Outcome::pass, show(std::string(message)));

  auto sig = f.signer.sign(message);
  if (!sig) return 0;
  FUZZ_CHECK(sig->starts_with("DKIM-Signature: ") && sig->ends_with("\r\n"));
  std::string signed_message = *sig + std::string(message);
  auto results = f.with_key.verify(signed_message);
  FUZZ_CHECK_MSG(results.has_value(), results.error().message);
  bool passed = false;
  for (const auto& r : *results)
    if (r.domain == "fuzz.example" && r.selector == "f" && r.outcome == dkim::Outcome::pass) passed = true;
  FUZZ_CHECK_MSG(passed, show(signed_message));
  return 0;
}
