#include "srs/srs.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>

using namespace wizmail;
using namespace wizmail::srs;

namespace {

// PostSRSd's test set-up (tests/unit/test_srs2.c, tests/blackbox/socketmap.py):
// secret "tops3cr3t", domain example.com, 2020-01-01 00:01:00 UTC.
constexpr std::int64_t kWhen = 1577836860;
constexpr std::int64_t kDay = 86400;

Rewriter postsrsd(int max_age = 21) {
  Options o;
  o.secrets = {"tops3cr3t"};
  o.max_age_days = max_age;
  auto r = Rewriter::make(o);
  REQUIRE(r);
  return *r;
}

std::string fwd(const Rewriter& r, std::string_view sender, std::string_view domain = "example.com",
                std::int64_t now = kWhen) {
  auto out = r.forward(sender, domain, now);
  REQUIRE_MESSAGE(out, out.error().message);
  return *out;
}

std::string rev(const Rewriter& r, std::string_view address, std::int64_t now = kWhen) {
  auto out = r.reverse(address, now);
  REQUIRE_MESSAGE(out, out.error().message);
  return *out;
}

Refusal refusal(const Rewriter& r, std::string_view address, std::int64_t now = kWhen) {
  auto out = r.reverse(address, now);
  REQUIRE_FALSE(out);
  return refusal_of(out.error());
}

}  // namespace

TEST_CASE("PostSRSd's vectors: forward") {
  const auto r = postsrsd();
  CHECK(fwd(r, "test@example.com") == "test@example.com");  // our own domain: unchanged
  CHECK(fwd(r, "test@otherdomain.com") == "SRS0=vmyz=2W=otherdomain.com=test@example.com");
  CHECK(fwd(r, "SRS0=XjO9=2V=otherdomain.com=test@example.com") ==
        "SRS0=XjO9=2V=otherdomain.com=test@example.com");  // already ours
  CHECK(fwd(r, "SRS0=opaque+string@otherdomain.com") == "SRS1=chaI=otherdomain.com==opaque+string@example.com");
  CHECK(fwd(r, "SRS1=X=thirddomain.com==opaque+string@otherdomain.com") ==
        "SRS1=JIBX=thirddomain.com==opaque+string@example.com");
  CHECK(fwd(r, "hash234@somedomain.com") == "SRS0=-3_5=2W=somedomain.com=hash234@example.com");
  const std::string host(512 - 9, 'a');
  CHECK(fwd(r, "test@" + host + ".net") == "SRS0=G7tR=2W=" + host + ".net=test@example.com");
  auto bad = r.forward("foo", "example.com", kWhen);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == Errc::invalid_argument);
  CHECK_FALSE(r.forward("", "example.com", kWhen));
  CHECK_FALSE(r.forward("@x.example", "example.com", kWhen));
  CHECK_FALSE(r.forward("user@", "example.com", kWhen));
}

TEST_CASE("PostSRSd's vectors: reverse") {
  const auto r = postsrsd();
  CHECK(rev(r, "SRS0=vmyz=2W=otherdomain.com=test@example.com") == "test@otherdomain.com");
  CHECK(rev(r, "SRS0=XjO9=2V=otherdomain.com=test@example.com") == "test@otherdomain.com");
  CHECK(rev(r, "SRS1=JIBX=thirddomain.com==opaque+string@example.com") == "SRS0=opaque+string@thirddomain.com");
  CHECK(refusal(r, "test@example.com") == Refusal::not_srs);
  CHECK(refusal(r, "SRS0=te87=T7=otherdomain.com=test@example.com") == Refusal::expired);  // 6 months old
  CHECK(refusal(r, "SRS0=VcIb=7N=otherdomain.com=test@example.com") == Refusal::expired);  // 6 months ahead
  CHECK(refusal(r, "SRS0=FAKE=2V=otherdomain.com=test@example.com") == Refusal::forged);
  CHECK(refusal(r, "SRS0=FAKE=2V=otherdomain.com=test@foreign.example") == Refusal::forged);
  // Case: the hash compares without case, the fields are hashed lower-cased.
  CHECK(rev(r, "srs0=xjo9=2v=otherdomain.com=test@example.com") == "test@otherdomain.com");
  CHECK(rev(r, "SRS0=XJO9=2V=OTHERDOMAIN.COM=TEST@EXAMPLE.COM") == "TEST@OTHERDOMAIN.COM");
  // base64url as made, standard base64 as libsrs2 made it.
  CHECK(rev(r, "SRS0=-3_5=2W=somedomain.com=hash234@example.com") == "hash234@somedomain.com");
  CHECK(rev(r, "SRS0=+3/5=2W=somedomain.com=hash234@example.com") == "hash234@somedomain.com");
  CHECK(refusal(r, "SRS0=@example.com") == Refusal::malformed);
  CHECK(refusal(r, "SRS0=XjO9@example.com") == Refusal::malformed);
  CHECK(refusal(r, "SRS0=XjO9=2V@example.com") == Refusal::malformed);
  CHECK(refusal(r, "SRS0=XjO9=2V=otherdomain.com@example.com") == Refusal::malformed);
  const std::string host(512 - 34, 'a');
  CHECK(rev(r, "SRS0=iCvJ=2W=" + host + ".net=test@example.com") == "test@" + host + ".net");
}

TEST_CASE("the refusals carry their SMTP replies") {
  const auto r = postsrsd();
  auto forged = r.reverse("SRS0=FAKE=2V=otherdomain.com=test@example.com", kWhen);
  REQUIRE_FALSE(forged);
  CHECK(forged.error().smtp_code == 550);
  CHECK(forged.error().enhanced == "5.7.1");
  CHECK(forged.error().permanent());
  CHECK(forged.error().message.find("hash invalid") != std::string::npos);
  auto old = r.reverse("SRS0=te87=T7=otherdomain.com=test@example.com", kWhen);
  REQUIRE_FALSE(old);
  CHECK(old.error().smtp_code == 550);
  CHECK(old.error().enhanced == "5.1.1");
  CHECK(old.error().client_text.find("expired") != std::string::npos);
  auto bad = r.reverse("SRS0=XjO9=2V@example.com", kWhen);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().smtp_code == 550);
  CHECK(bad.error().enhanced == "5.1.1");
  auto plain = r.reverse("alice@example.com", kWhen);
  REQUIRE_FALSE(plain);
  CHECK(plain.error().code == Errc::not_found);
  CHECK(plain.error().smtp_code == 0);
}

TEST_CASE("tags: SRS0/SRS1 with a separator, any case") {
  CHECK(is_srs_address("SRS0=a=b=c=d@x"));
  CHECK(is_srs_address("srs1+a"));
  CHECK(is_srs_address("Srs0-x"));
  CHECK_FALSE(is_srs_address("SRS2=a"));
  CHECK_FALSE(is_srs_address("SRS0"));
  CHECK_FALSE(is_srs_address("SRS0x=a"));
  CHECK_FALSE(is_srs_address("srsuser@x"));
  const auto r = postsrsd();
  CHECK(refusal(r, "SRS0@example.com") == Refusal::not_srs);
  CHECK(refusal(r, "SRS1=@example.com") == Refusal::malformed);
  CHECK(refusal(r, "SRS1=h@example.com") == Refusal::malformed);
  CHECK(refusal(r, "SRS1=h=first.example@example.com") == Refusal::malformed);
  CHECK(refusal(r, "SRS1=FAKE=first.example==x@example.com") == Refusal::forged);
  CHECK(refusal(r, "SRS0=XjO9=2!=otherdomain.com=test@example.com") == Refusal::malformed);  // bad stamp
  CHECK(refusal(r, "SRS0=XjO9=2VV=otherdomain.com=test@example.com") == Refusal::malformed);
}

TEST_CASE("time stamps: day modulo 1024 in base32") {
  CHECK(timestamp(kWhen) == "2W");
  CHECK(timestamp(kWhen - kDay) == "2V");
  CHECK(timestamp(0) == "AA");
  CHECK(timestamp(1023 * kDay) == "77");
  CHECK(timestamp(1024 * kDay) == "AA");  // wraps
  CHECK(timestamp_day("2W") == (kWhen / kDay) % 1024);
  CHECK(timestamp_day("2w") == timestamp_day("2W"));
  CHECK(timestamp_day("77") == 1023);
  CHECK(timestamp_day("A1") == -1);
  CHECK(timestamp_day("A") == -1);
}

TEST_CASE("maximum age: 21 days by default, configurable, across the wrap") {
  const auto r = postsrsd();
  const std::string made = fwd(r, "alice@elsewhere.example");
  CHECK(rev(r, made, kWhen + 21 * kDay) == "alice@elsewhere.example");
  CHECK(refusal(r, made, kWhen + 22 * kDay) == Refusal::expired);
  CHECK(refusal(r, made, kWhen - kDay) == Refusal::expired);  // from tomorrow
  const auto week = postsrsd(7);
  CHECK(rev(week, made, kWhen + 7 * kDay) == "alice@elsewhere.example");
  CHECK(refusal(week, made, kWhen + 8 * kDay) == Refusal::expired);
  // Made on day 1023 of the cycle, checked on day 2 of the next.
  const std::int64_t late = (kWhen / kDay / 1024 * 1024 + 1023) * kDay + 3600;
  const std::string wrapped = fwd(r, "bob@elsewhere.example", "example.com", late);
  CHECK(wrapped.substr(10, 2) == "77");
  CHECK(rev(r, wrapped, late + 3 * kDay) == "bob@elsewhere.example");
  CHECK(refusal(r, wrapped, late + 22 * kDay) == Refusal::expired);
}

TEST_CASE("forged: another secret, a changed field, a truncated hash") {
  const auto r = postsrsd();
  Options o;
  o.secrets = {"another secret"};
  const auto other = *Rewriter::make(o);
  const std::string made = fwd(other, "alice@elsewhere.example");
  CHECK(refusal(r, made) == Refusal::forged);
  std::string ours = fwd(r, "alice@elsewhere.example");
  CHECK(rev(r, ours) == "alice@elsewhere.example");
  std::string changed = ours;
  changed.replace(changed.find("alice"), 5, "mallo");
  CHECK(refusal(r, changed) == Refusal::forged);
  std::string changed_host = ours;
  changed_host.replace(changed_host.find("elsewhere"), 9, "evilwhere");
  CHECK(refusal(r, changed_host) == Refusal::forged);
  std::string short_hash = ours;
  short_hash.erase(8, 1);  // SRS0=HHH: 3 of 4 characters
  CHECK(refusal(r, short_hash) == Refusal::forged);
  // A longer hash than ours: its first hash_length characters count (libsrs2).
  std::string long_hash = ours;
  long_hash.insert(9, "Zz");
  CHECK(rev(r, long_hash) == "alice@elsewhere.example");
}

TEST_CASE("secrets: the first signs, every one reverses (rotation)") {
  const auto old_only = postsrsd();
  const std::string made_old = fwd(old_only, "alice@elsewhere.example");
  Options o;
  o.secrets = {"new secret", "tops3cr3t"};
  const auto rotated = *Rewriter::make(o);
  CHECK(rev(rotated, made_old) == "alice@elsewhere.example");
  const std::string made_new = fwd(rotated, "alice@elsewhere.example");
  CHECK(made_new != made_old);
  CHECK(rev(rotated, made_new) == "alice@elsewhere.example");
  CHECK(refusal(old_only, made_new) == Refusal::forged);
}

TEST_CASE("SRS1 chains: three forwarders, back the same way") {
  const auto a = postsrsd();
  Options ob;
  ob.secrets = {"secret of b"};
  const auto b = *Rewriter::make(ob);
  Options oc;
  oc.secrets = {"secret of c"};
  const auto c = *Rewriter::make(oc);
  // alice@origin.example → a.example (SRS0) → b.example (SRS1) → c.example (SRS1, first = a.example)
  const std::string at_a = fwd(a, "alice@origin.example", "a.example");
  REQUIRE(at_a.starts_with("SRS0="));
  const std::string at_b = fwd(b, at_a, "b.example");
  REQUIRE(at_b.starts_with("SRS1="));
  CHECK(at_b.ends_with("=a.example==" + at_a.substr(5, at_a.find('@') - 5) + "@b.example"));
  const std::string at_c = fwd(c, at_b, "c.example");
  REQUIRE(at_c.starts_with("SRS1="));
  CHECK(at_c.find("=a.example==") != std::string::npos);
  CHECK(at_c.ends_with("@c.example"));
  // A bounce goes to c, which sends it straight to a (skipping b), which
  // gives the original sender back.
  const std::string from_c = rev(c, at_c);
  CHECK(from_c == at_a);
  CHECK(rev(a, from_c) == "alice@origin.example");
  const std::string from_b = rev(b, at_b);
  CHECK(from_b == at_a);
  // c's SRS1 is not b's.
  CHECK(refusal(b, at_c) == Refusal::forged);
}

TEST_CASE("options: separator, hash length, limits") {
  Options o;
  o.secrets = {"tops3cr3t"};
  o.separator = '+';
  const auto plus = *Rewriter::make(o);
  const std::string made = fwd(plus, "test@otherdomain.com");
  CHECK(made == "SRS0+vmyz=2W=otherdomain.com=test@example.com");  // only the tag's separator changes
  CHECK(rev(plus, made) == "test@otherdomain.com");
  CHECK(rev(postsrsd(), made) == "test@otherdomain.com");
  o.separator = '=';
  o.hash_length = 8;
  const auto eight = *Rewriter::make(o);
  const std::string longer = fwd(eight, "test@otherdomain.com");
  CHECK(longer.starts_with("SRS0=vmyz"));  // the same digest, more of it
  CHECK(longer.find("=2W=") == 13);
  CHECK(rev(eight, longer) == "test@otherdomain.com");
  CHECK(refusal(eight, "SRS0=vmyz=2W=otherdomain.com=test@example.com") == Refusal::forged);  // too short
  Options bad;
  CHECK_FALSE(Rewriter::make(bad));  // no secret
  bad.secrets = {""};
  CHECK_FALSE(Rewriter::make(bad));
  bad.secrets = {"s"};
  bad.hash_length = 0;
  CHECK_FALSE(Rewriter::make(bad));
  bad.hash_length = 4;
  bad.max_age_days = 1024;
  CHECK_FALSE(Rewriter::make(bad));
  bad.max_age_days = 21;
  bad.separator = '/';
  CHECK_FALSE(Rewriter::make(bad));
}

TEST_CASE("reverse_recipient: only SRS addresses at the SRS domain") {
  const auto r = postsrsd();
  CHECK_FALSE(reverse_recipient(r, "example.com", "alice@example.com", kWhen));
  CHECK_FALSE(reverse_recipient(r, "example.com", "SRS0=vmyz=2W=otherdomain.com=test@other.example", kWhen));
  CHECK_FALSE(reverse_recipient(r, "example.com", "no-at-sign", kWhen));
  auto ok = reverse_recipient(r, "example.com", "SRS0=vmyz=2W=otherdomain.com=test@EXAMPLE.com", kWhen);
  REQUIRE(ok);
  REQUIRE(*ok);
  CHECK(**ok == "test@otherdomain.com");
  auto forged = reverse_recipient(r, "example.com", "SRS0=FAKE=2W=otherdomain.com=test@example.com", kWhen);
  REQUIRE(forged);
  REQUIRE_FALSE(*forged);
  CHECK(forged->error().smtp_code == 550);
  CHECK(refusal_of(forged->error()) == Refusal::forged);
}
