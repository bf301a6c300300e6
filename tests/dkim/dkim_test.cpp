// dkim::Signer and dkim::Verifier (src/dkim/dkim.hpp): a signature made here
// verifies here with the key record supplied by a KeySource, and any change
// the signature covers makes it fail. Pure: keys are generated in memory,
// no DNS, no disk.
#include "dkim/dkim.hpp"

#include <doctest/doctest.h>

#include <cctype>
#include <map>
#include <string>

using namespace wizmail;
using namespace wizmail::dkim;

namespace {

const std::string kMessage =
    "From: Alice <alice@example.com>\r\n"
    "To: Bob <bob@example.net>\r\n"
    "Subject: DKIM round trip\r\n"
    "Date: Sun, 06 Dec 2026 06:00:00 +0000\r\n"
    "Message-ID: <1@example.com>\r\n"
    "X-Unsigned: anything\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    "\r\n"
    ".a line with a dot\r\n";

struct Keys {
  PrivateKey key;
  Signer signer;
  Verifier verifier;
};

// One key per algorithm for the whole run: RSA key generation is the slow
// part of these tests, and what they check does not depend on the key.
const PrivateKey& shared_key(Algorithm alg) {
  static std::map<Algorithm, PrivateKey> keys;
  auto it = keys.find(alg);
  if (it == keys.end()) {
    auto key = generate_key(alg);
    REQUIRE(key);
    it = keys.emplace(alg, std::move(*key)).first;
  }
  return it->second;
}

Keys make(Algorithm alg, const std::string& selector = "s1") {
  const PrivateKey* key = &shared_key(alg);
  auto record = key_record(*key);
  auto signer = Signer::create("example.com", selector, *key);
  REQUIRE(signer);
  auto verifier = Verifier::create(fixed_keys({{selector + "._domainkey.example.com", record}}));
  REQUIRE(verifier);
  return {*key, std::move(*signer), std::move(*verifier)};
}

std::vector<SignatureResult> verify(const Verifier& v, const std::string& msg) {
  auto r = v.verify(msg);
  if (!r) FAIL_CHECK(r.error().message);
  REQUIRE(r);
  return *r;
}

std::string tag(const std::string& header, const std::string& name) {
  // The value of tag `name` in a DKIM-Signature field (folds removed).
  std::string flat;
  for (char c : header)
    if (c != '\r' && c != '\n' && c != '\t' && c != ' ') flat += c;
  auto at = flat.find(";" + name + "=");
  if (at == std::string::npos) at = flat.find(":" + name + "=");
  if (at == std::string::npos) return {};
  at += name.size() + 2;
  return flat.substr(at, flat.find(';', at) - at);
}

}  // namespace

TEST_CASE("rsa-sha256 and ed25519-sha256: sign, then verify with the published record") {
  for (auto alg : {Algorithm::rsa_sha256, Algorithm::ed25519_sha256}) {
    CAPTURE(to_string(alg));
    auto k = make(alg);
    auto sig = k.signer.sign(kMessage);
    REQUIRE(sig);
    CHECK(sig->starts_with("DKIM-Signature: "));
    CHECK(sig->ends_with("\r\n"));
    // Every line ends in CRLF, folded lines start with white space.
    for (std::size_t i = 0; (i = sig->find('\n', i)) != std::string::npos; ++i) CHECK((*sig)[i - 1] == '\r');
    CHECK(tag(*sig, "a") == std::string(to_string(alg)));
    CHECK(tag(*sig, "c") == "relaxed/relaxed");
    CHECK(tag(*sig, "d") == "example.com");
    CHECK(tag(*sig, "s") == "s1");
    // Over-signing: From, Subject and To named once more than they occur.
    std::string h;
    for (char c : tag(*sig, "h")) h += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    CAPTURE(h);
    auto count = [&](const std::string& name) {
      int n = 0;
      std::string list = ":" + h + ":";
      for (std::size_t i = 0; (i = list.find(":" + name + ":", i)) != std::string::npos; ++i) ++n;
      return n;
    };
    CHECK(count("from") == 2);
    CHECK(count("subject") == 2);
    CHECK(count("to") == 2);
    CHECK(count("date") == 1);
    CHECK(count("message-id") == 1);
    CHECK(count("x-unsigned") == 0);

    auto results = verify(k.verifier, *sig + kMessage);
    REQUIRE(results.size() == 1);
    CHECK(results[0].outcome == Outcome::pass);
    CHECK(results[0].domain == "example.com");
    CHECK(results[0].selector == "s1");
  }
}

TEST_CASE("LF line ends are signed as the CRLF message they stand for") {
  auto k = make(Algorithm::ed25519_sha256);
  std::string lf;
  for (char c : kMessage)
    if (c != '\r') lf += c;
  auto sig = k.signer.sign(lf);
  REQUIRE(sig);
  auto results = verify(k.verifier, *sig + kMessage);
  REQUIRE(results.size() == 1);
  CHECK(results[0].outcome == Outcome::pass);
}

TEST_CASE("changes the signature covers make it fail; others do not") {
  for (auto alg : {Algorithm::rsa_sha256, Algorithm::ed25519_sha256}) {
    CAPTURE(to_string(alg));
    auto k = make(alg);
    auto sig = k.signer.sign(kMessage);
    REQUIRE(sig);
    auto outcome = [&](std::string msg) {
      auto r = verify(k.verifier, *sig + msg);
      REQUIRE(r.size() == 1);
      return r[0].outcome;
    };
    auto replaced = [&](const std::string& from, const std::string& to) {
      std::string m = kMessage;
      auto at = m.find(from);
      REQUIRE(at != std::string::npos);
      return m.replace(at, from.size(), to);
    };
    SUBCASE("the body") { CHECK(outcome(replaced("Hello Bob", "Hello Eve")) == Outcome::fail); }
    SUBCASE("a signed header") { CHECK(outcome(replaced("DKIM round trip", "DKIM round trap")) == Outcome::fail); }
    SUBCASE("a second From: added later (over-signed)") {
      CHECK(outcome("From: Mallory <m@example.org>\r\n" + kMessage) == Outcome::fail);
      CHECK(outcome(replaced("X-Unsigned: anything\r\n", "X-Unsigned: anything\r\nFrom: m@example.org\r\n")) ==
            Outcome::fail);
    }
    SUBCASE("a Subject: added later (over-signed)") {
      CHECK(outcome(replaced("X-Unsigned", "Subject: urgent\r\nX-Unsigned")) == Outcome::fail);
    }
    SUBCASE("an unsigned header changed, and relaxed white space") {
      CHECK(outcome(replaced("X-Unsigned: anything", "X-Unsigned: something else")) == Outcome::pass);
      CHECK(outcome(replaced("Subject: DKIM round trip", "subject:   DKIM  round trip ")) == Outcome::pass);
      CHECK(outcome(kMessage + "\r\n\r\n") == Outcome::pass);  // trailing empty lines
    }
  }
}

TEST_CASE("key look-up results: wrong key, none, temporary failure, bad record") {
  auto k = make(Algorithm::rsa_sha256);
  auto other = generate_key(Algorithm::rsa_sha256);
  REQUIRE(other);
  auto sig = k.signer.sign(kMessage);
  REQUIRE(sig);
  const std::string msg = *sig + kMessage;
  auto with = [&](KeySource src) {
    auto v = Verifier::create(std::move(src));
    REQUIRE(v);
    auto r = verify(*v, msg);
    REQUIRE(r.size() == 1);
    CHECK(r[0].domain == "example.com");
    CHECK(r[0].selector == "s1");
    return r[0];
  };
  CHECK(with(fixed_keys({{"s1._domainkey.example.com", key_record(*other)}})).outcome == Outcome::fail);
  CHECK(with(fixed_keys({})).outcome == Outcome::permerror);
  CHECK(with([](std::string_view) { return KeyAnswer{KeyAnswer::Status::temporary, {}}; }).outcome ==
        Outcome::temperror);
  CHECK(with(fixed_keys({{"s1._domainkey.example.com", "v=DKIM1; k=rsa; p=!!!"}})).outcome == Outcome::permerror);
  // A revoked key (empty p=).
  CHECK(with(fixed_keys({{"s1._domainkey.example.com", "v=DKIM1; k=rsa; p="}})).outcome == Outcome::permerror);
  // The KeySource is asked for the name the signature gives, in any case.
  std::string asked;
  with([&](std::string_view name) {
    asked = name;
    return KeyAnswer{KeyAnswer::Status::not_found, {}};
  });
  CHECK(asked == "s1._domainkey.example.com");
}

TEST_CASE("no signature, two signatures, a garbled one") {
  auto a = make(Algorithm::rsa_sha256, "a");
  auto b_key = generate_key(Algorithm::ed25519_sha256);
  REQUIRE(b_key);
  auto b = Signer::create("example.com", "b", *b_key);
  REQUIRE(b);
  auto v = Verifier::create(fixed_keys({{"a._domainkey.example.com", key_record(a.key)},
                                        {"b._domainkey.example.com", key_record(*b_key)}}));
  REQUIRE(v);
  CHECK(verify(*v, kMessage).empty());
  auto sa = a.signer.sign(kMessage);
  auto sb = b->sign(kMessage);
  REQUIRE(sa);
  REQUIRE(sb);
  auto two = verify(*v, *sb + *sa + kMessage);
  REQUIRE(two.size() == 2);
  CHECK(two[0].outcome == Outcome::pass);
  CHECK(two[1].outcome == Outcome::pass);
  CHECK(((two[0].selector == "b" && two[1].selector == "a") || (two[0].selector == "a" && two[1].selector == "b")));
  auto garbled = verify(*v, "DKIM-Signature: v=1; a=rsa-sha256; d=example.com\r\n" + kMessage);
  REQUIRE(garbled.size() == 1);
  CHECK(garbled[0].outcome == Outcome::permerror);
}

TEST_CASE("keys: parse what was generated, refuse what is not a key") {
  for (auto alg : {Algorithm::rsa_sha256, Algorithm::ed25519_sha256}) {
    auto k = generate_key(alg);
    REQUIRE(k);
    auto again = parse_private_key(k->pem);
    REQUIRE(again);
    CHECK(again->algorithm == alg);
    CHECK(again->public_key == k->public_key);
    CHECK(again->bits == (alg == Algorithm::rsa_sha256 ? 2048 : 256));
  }
  CHECK(!parse_private_key(""));
  CHECK(!parse_private_key("not a key"));
  CHECK(!parse_private_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
  const auto* k = &shared_key(Algorithm::rsa_sha256);
  std::string truncated = k->pem.substr(0, k->pem.size() / 2);
  CHECK(!parse_private_key(truncated));
}

TEST_CASE("the TXT record and its 255-octet strings") {
  const auto* rsa = &shared_key(Algorithm::rsa_sha256);
  const auto* ed = &shared_key(Algorithm::ed25519_sha256);
  CHECK(key_record(*rsa).starts_with("v=DKIM1; k=rsa; p=MIIB"));
  CHECK(key_record(*ed).starts_with("v=DKIM1; k=ed25519; p="));
  CHECK(key_record(*ed).size() == std::string("v=DKIM1; k=ed25519; p=").size() + 44);  // 32 octets, base64
  auto parts = split_txt(key_record(*rsa));
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].size() == 255);
  CHECK(parts[0] + parts[1] == key_record(*rsa));
  CHECK(split_txt(std::string(510, 'x')).size() == 2);
  CHECK(split_txt(std::string(511, 'x')).size() == 3);
}

TEST_CASE("domain and selector syntax") {
  CHECK(valid_domain("example.com"));
  CHECK(valid_domain("mail-1.example.co.uk"));
  CHECK(valid_domain("xn--bcher-kva.example"));
  CHECK_FALSE(valid_domain("localhost"));  // a signing domain is a registered name
  CHECK_FALSE(valid_domain(""));
  CHECK_FALSE(valid_domain("-a.example"));
  CHECK_FALSE(valid_domain("a..example"));
  CHECK_FALSE(valid_domain("a_b.example"));
  CHECK_FALSE(valid_domain("bücher.example"));
  CHECK_FALSE(valid_domain("a b.example"));
  CHECK_FALSE(valid_domain("../etc"));
  CHECK_FALSE(valid_domain(std::string(64, 'a') + ".example"));
  CHECK(valid_selector("s1"));
  CHECK(valid_selector("2026.jan"));
  CHECK_FALSE(valid_selector(""));
  CHECK_FALSE(valid_selector("a/b"));
  CHECK_FALSE(valid_selector(".."));
  CHECK_FALSE(valid_selector("a;b"));
  auto key = generate_key(Algorithm::ed25519_sha256);
  REQUIRE(key);
  CHECK(Signer::create("bad domain", "s", *key).error().code == Errc::invalid_argument);
  CHECK(Signer::create("example.com", "bad selector", *key).error().code == Errc::invalid_argument);
}

TEST_CASE("a message without a body, or without an empty line, is still signed") {
  auto k = make(Algorithm::ed25519_sha256);
  const std::string head = "From: a@example.com\r\nSubject: x\r\n";
  auto sig = k.signer.sign(head);
  REQUIRE(sig);
  auto r = verify(k.verifier, *sig + head + "\r\n");
  REQUIRE(r.size() == 1);
  CHECK(r[0].outcome == Outcome::pass);
  CHECK(!k.signer.sign(" continuation first\r\nFrom: a@example.com\r\n\r\nx\r\n"));
}

TEST_CASE("what cannot be signed is an error, not a wrong signature") {
  auto k = make(Algorithm::ed25519_sha256);
  auto no_field = k.signer.sign("From: a@example.com\r\nnot a field\r\n\r\nx\r\n");
  REQUIRE(!no_field);
  CHECK(no_field.error().message.find("header field") != std::string::npos);
  auto huge = k.signer.sign("From: a@example.com\r\nX: " + std::string(1 << 20, 'a') + "\r\n\r\nx\r\n");
  REQUIRE(!huge);
  CHECK(huge.error().code == Errc::limit);
  CHECK(!k.signer.sign("Subject: no From\r\n\r\nx\r\n"));  // RFC 6376 §5.4: From is required
  CHECK(!k.signer.sign_file("/nonexistent/message"));
}
