#include "util/idna.hpp"

#include <doctest/doctest.h>

using namespace wizmail;

namespace {
// The value, or "!error" (Result<> has no operator== with an Error).
std::string v(const Result<std::string>& r) { return r ? *r : "!" + r.error().message; }
}  // namespace

TEST_CASE("domain_to_ascii: one comparable A-label form however a domain is written") {
  CHECK(v(util::domain_to_ascii("Example.ORG")) == std::string("example.org"));
  CHECK(v(util::domain_to_ascii("m\xc3\xbcnchen.example")) == std::string("xn--mnchen-3ya.example"));
  // UTS #46 mapping folds the case of U-labels too; an A-label stays as given (lower-cased).
  CHECK(v(util::domain_to_ascii("M\xc3\x9cNCHEN.Example")) == std::string("xn--mnchen-3ya.example"));
  CHECK(v(util::domain_to_ascii("XN--MNCHEN-3YA.example")) == std::string("xn--mnchen-3ya.example"));
  // NFC: u + combining diaeresis is the same domain as the precomposed form.
  CHECK(v(util::domain_to_ascii("mu\xcc\x88nchen.example")) == std::string("xn--mnchen-3ya.example"));
  CHECK(v(util::domain_to_ascii("\xe4\xbe\x8b\xe3\x81\x88.jp")) == std::string("xn--r8jz45g.jp"));
  // Not an IDN: invalid UTF-8, a joiner where IDNA2008 forbids it, a NUL, absurd length.
  for (std::string_view bad : {std::string_view("b\xc3.example"), std::string_view("a\xe2\x80\x8d.example"),
                               std::string_view("\xc3\xbc\0x.example", 11)}) {
    CAPTURE(bad);
    auto r = util::domain_to_ascii(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::invalid_argument);
  }
  CHECK_FALSE(util::domain_to_ascii(std::string(1100, '\xc3')));
}

TEST_CASE("address_domain_to_ascii: only the domain changes") {
  CHECK(v(util::address_domain_to_ascii("J\xc3\xb6rg@B\xc3\xbcro.example")) ==
        std::string("J\xc3\xb6rg@xn--bro-hoa.example"));
  CHECK(v(util::address_domain_to_ascii("postmaster")) == std::string("postmaster"));
  CHECK_FALSE(util::address_domain_to_ascii("a@b\xc3.example"));
}
