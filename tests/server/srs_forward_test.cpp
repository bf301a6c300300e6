#include "server/commit_pipeline.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "smtp/session.hpp"
#include "srs/srs.hpp"

using namespace wizmail;

namespace {

constexpr std::int64_t kWhen = 1577836860;  // PostSRSd's test time

srs::Rewriter rewriter() {
  srs::Options o;
  o.secrets = {"tops3cr3t"};
  return *srs::Rewriter::make(o);
}

smtp::Transaction txn(std::string sender, std::vector<smtp::Recipient> rcpts) {
  smtp::Transaction t;
  t.active = true;
  t.reverse_path = std::move(sender);
  t.recipients = std::move(rcpts);
  return t;
}

smtp::Recipient remote(std::string address, bool via_alias = false) {
  smtp::Recipient r;
  r.address = std::move(address);
  r.via_alias = via_alias;
  if (via_alias) r.original = "carol@example.com";
  return r;
}

smtp::Recipient local(std::string account) {
  smtp::Recipient r;
  r.address = account + "@example.com";
  r.account = std::move(account);
  return r;
}

std::optional<std::string> rewrite(const smtp::Transaction& t, bool local_submit) {
  const std::vector<std::string> locals{"example.com", "example.net"};
  auto r = server::srs_forward_sender(rewriter(), "example.com", locals, t, local_submit, kWhen);
  REQUIRE_MESSAGE(r, r.error().message);
  return *r;
}

}  // namespace

TEST_CASE("srs_forward_sender: forwarded mail of a foreign sender gets SRS0") {
  // An alias target (PostSRSd's vector: same secret, time and domain).
  CHECK(rewrite(txn("test@otherdomain.com", {remote("dave@remote.example", true)}), false) ==
        "SRS0=vmyz=2W=otherdomain.com=test@example.com");
  // The local submit socket (forward.def hooks run wizmail-sendmail).
  CHECK(rewrite(txn("test@otherdomain.com", {remote("bob@remote.example")}), true) ==
        "SRS0=vmyz=2W=otherdomain.com=test@example.com");
  // Another forwarder's SRS0: SRS1.
  CHECK(rewrite(txn("SRS0=opaque+string@otherdomain.com", {remote("bob@remote.example")}), true) ==
        "SRS1=chaI=otherdomain.com==opaque+string@example.com");
  // With local recipients beside it.
  CHECK(rewrite(txn("test@otherdomain.com", {local("alice"), remote("dave@remote.example", true)}), false));
}

TEST_CASE("srs_forward_sender: what keeps its sender") {
  // Not forwarded: a client relaying for itself (AUTH, permitted networks).
  CHECK_FALSE(rewrite(txn("test@otherdomain.com", {remote("bob@remote.example")}), false));
  // Only local recipients.
  CHECK_FALSE(rewrite(txn("test@otherdomain.com", {local("alice")}), true));
  // A local alias target is no forward.
  smtp::Recipient aliased_local = local("bob");
  aliased_local.via_alias = true;
  CHECK_FALSE(rewrite(txn("test@otherdomain.com", {aliased_local}), false));
  // The null sender stays <>.
  CHECK_FALSE(rewrite(txn("", {remote("dave@remote.example", true)}), true));
  // Senders at a local domain (any case) or at the SRS domain.
  CHECK_FALSE(rewrite(txn("alice@example.net", {remote("dave@remote.example", true)}), true));
  CHECK_FALSE(rewrite(txn("alice@EXAMPLE.com", {remote("dave@remote.example", true)}), true));
  const std::vector<std::string> locals{"example.net"};
  auto at_srs = server::srs_forward_sender(rewriter(), "example.com", locals,
                                           txn("SRS0=vmyz=2W=otherdomain.com=test@example.com",
                                               {remote("dave@remote.example", true)}),
                                           false, kWhen);
  REQUIRE(at_srs);
  CHECK_FALSE(*at_srs);
  // A sender without a domain cannot be rewritten: an error, the caller keeps it.
  auto bare = server::srs_forward_sender(rewriter(), "example.com", locals,
                                         txn("postmaster", {remote("dave@remote.example", true)}), false, kWhen);
  CHECK_FALSE(bare);
}
