#include "dnsbl/dnsbl.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

using namespace wizmail;
using namespace wizmail::dnsbl;
using namespace std::chrono_literals;

namespace {

Site site(std::string_view text) {
  auto s = parse_site(text);
  REQUIRE_MESSAGE(s, s.error().message);
  return *s;
}

std::string error_of(std::string_view text) {
  auto s = parse_site(text);
  REQUIRE_MESSAGE(!s, "accepted: ", std::string(text));
  CHECK(s.error().code == Errc::parse);
  return s.error().message;
}

Answer listed(std::vector<std::string> records, int ttl = 300) {
  return {Answer::Status::listed, std::move(records), std::chrono::seconds(ttl), {}};
}
Answer not_listed(int ttl = 0) { return {Answer::Status::not_listed, {}, std::chrono::seconds(ttl), {}}; }
Answer failed(std::string why = "DNS x: Timeout while contacting DNS servers") {
  return {Answer::Status::error, {}, {}, std::move(why)};
}

// A fake DNS: answers by name, counts the questions and the calls.
struct FakeDns {
  std::vector<std::pair<std::string, Answer>> table;
  std::vector<std::string> asked;
  int calls = 0;
  Lookup lookup() {
    return [this](const std::vector<std::string>& names) {
      ++calls;
      std::vector<Answer> out;
      for (const auto& n : names) {
        asked.push_back(n);
        Answer a = not_listed();
        for (const auto& [name, ans] : table)
          if (name == n) a = ans;
        out.push_back(a);
      }
      return out;
    };
  }
};

}  // namespace

TEST_CASE("parse_site: zone, weight, filter") {
  auto s = site("zen.spamhaus.org");
  CHECK(s.zone == "zen.spamhaus.org");
  CHECK(s.weight == 1);
  CHECK(!s.filter);
  CHECK(s.text == "zen.spamhaus.org");

  s = site("Zen.Spamhaus.ORG*2");
  CHECK(s.zone == "zen.spamhaus.org");
  CHECK(s.weight == 2);

  s = site("list.dnswl.org=127.0.[0..255].[1..3]*-2");
  CHECK(s.zone == "list.dnswl.org");
  CHECK(s.weight == -2);
  REQUIRE(s.filter);
  CHECK((*s.filter)[0][127]);
  CHECK(!(*s.filter)[0][126]);
  CHECK((*s.filter)[1][0]);
  CHECK(!(*s.filter)[1][1]);
  for (int i = 0; i < 256; ++i) CHECK((*s.filter)[2][static_cast<std::size_t>(i)]);
  CHECK(!(*s.filter)[3][0]);
  CHECK((*s.filter)[3][1]);
  CHECK((*s.filter)[3][3]);
  CHECK(!(*s.filter)[3][4]);

  s = site("bl.example=127.0.0.[2;4;10..11]");
  CHECK(s.weight == 1);
  REQUIRE(s.filter);
  CHECK((*s.filter)[3][2]);
  CHECK(!(*s.filter)[3][3]);
  CHECK((*s.filter)[3][4]);
  CHECK((*s.filter)[3][10]);
  CHECK((*s.filter)[3][11]);
  CHECK(!(*s.filter)[3][12]);

  s = site("bl.example=127.0.0.2*10000");
  CHECK(s.weight == 10000);
  s = site("bl.example*-10000");
  CHECK(s.weight == -10000);
  CHECK(site("a_b-c.example").zone == "a_b-c.example");
}

TEST_CASE("parse_site: bad weights") {
  CHECK(error_of("zen.spamhaus.org*").find("weight") != std::string::npos);
  CHECK(error_of("zen.spamhaus.org*abc").find("weight") != std::string::npos);
  CHECK(error_of("zen.spamhaus.org*1.5").find("weight") != std::string::npos);
  CHECK(error_of("zen.spamhaus.org*+3").find("weight") != std::string::npos);
  CHECK(error_of("zen.spamhaus.org*--2").find("weight") != std::string::npos);
  CHECK(error_of("zen.spamhaus.org*0").find("0 does nothing") != std::string::npos);
  CHECK(error_of("zen.spamhaus.org*10001").find("within") != std::string::npos);
  CHECK(error_of("zen.spamhaus.org*-10001").find("within") != std::string::npos);
  CHECK(error_of("zen.spamhaus.org*99999999999999999999").find("weight") != std::string::npos);
  CHECK(error_of("zen.spamhaus.org*2*3").find("zone") != std::string::npos);
}

TEST_CASE("parse_site: bad filters") {
  for (const char* f : {"bl.example=", "bl.example=127.0.0", "bl.example=127.0.0.2.1", "bl.example=127.0.0.256",
                        "bl.example=127.0.0.[2..]", "bl.example=127.0.0.[..2]", "bl.example=127.0.0.[11..2]",
                        "bl.example=127.0.0.[2..11", "bl.example=127.0.0.2..11]", "bl.example=127.0.0.[]",
                        "bl.example=127.0.0.[2;]", "bl.example=127.0.0.[;2]", "bl.example=127.0.0.[2,3]",
                        "bl.example=127.0.0.x", "bl.example=127.0.0.-1", "bl.example=127..0.2",
                        "bl.example=127.0.0.[1..300]", "bl.example=::1", "bl.example=127.0.0.2=3",
                        "bl.example=1270.0.0.2", "bl.example=127.0.0.[[2]]"}) {
    CAPTURE(f);
    CHECK(error_of(f).find("filter") != std::string::npos);
  }
}

TEST_CASE("parse_site: bad or empty zones") {
  for (const char* z : {"", "*2", "=127.0.0.2", "=127.0.0.2*2", ".zen.example", "zen.example.", "zen..example",
                        "zen example", "zen/example", "zen@example", "ze\xc3\xa9n.example"}) {
    CAPTURE(z);
    CHECK(error_of(z).find("zone") != std::string::npos);
  }
}

TEST_CASE("parse_sites and split_sites: commas and blanks") {
  CHECK(split_sites("  a*2, b=127.0.0.2*3\tc ,, d  ") == std::vector<std::string>{"a*2", "b=127.0.0.2*3", "c", "d"});
  CHECK(split_sites(" , ").empty());
  auto all = parse_sites({"zen.spamhaus.org*2, bl.example=127.0.0.[2..11]*3", "list.dnswl.org=127.0.[0..255].[1..3]*-2"});
  REQUIRE(all);
  REQUIRE(all->size() == 3);
  CHECK((*all)[0].zone == "zen.spamhaus.org");
  CHECK((*all)[1].weight == 3);
  CHECK((*all)[2].weight == -2);
  auto none = parse_sites({});
  REQUIRE(none);
  CHECK(none->empty());
  auto bad = parse_sites({"zen.spamhaus.org", "bl.example*x"});
  REQUIRE(!bad);
  CHECK(bad.error().message.find("bl.example*x") != std::string::npos);
}

TEST_CASE("query_name: IPv4 reversed, IPv6 nibbles, mapped IPv4") {
  CHECK(query_name("192.0.2.7", "zen.example") == "7.2.0.192.zen.example");
  CHECK(query_name("127.0.0.2", "bl.test") == "2.0.0.127.bl.test");
  CHECK(query_name("::ffff:192.0.2.7", "zen.example") == "7.2.0.192.zen.example");
  CHECK(query_name("2001:db8::567:89ab", "zen.example") ==
        "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example");
  CHECK(!query_name("mail.example", "zen.example"));
  CHECK(!query_name("", "zen.example"));
  CHECK(!query_name("192.0.2.300", "zen.example"));
}

TEST_CASE("Site::matches: with and without a filter") {
  CHECK(site("a.example").matches({"127.0.0.2"}));
  CHECK(site("a.example").matches({"10.1.2.3"}));
  CHECK(!site("a.example").matches({}));
  auto f = site("a.example=127.0.0.[2..11]");
  CHECK(f.matches({"127.0.0.2"}));
  CHECK(f.matches({"127.0.0.11"}));
  CHECK(!f.matches({"127.0.0.12"}));
  CHECK(!f.matches({"127.0.1.2"}));
  CHECK(f.matches({"127.0.0.255", "127.0.0.4"}));  // any record
  CHECK(!f.matches({"not an address", "::1"}));
}

TEST_CASE("score: weights add up, the highest-weight listing zone is named") {
  std::vector<Site> sites{site("zen.example*2"), site("bl.example=127.0.0.[2..11]*3"), site("wl.example*-2")};
  // Nobody lists.
  auto v = score(sites, {not_listed(), not_listed(), not_listed()}, 1);
  CHECK(v.score == 0);
  CHECK(!v.blocked);
  CHECK(v.listed.empty());
  // One listing, under the threshold.
  v = score(sites, {listed({"127.0.0.2"}), not_listed(), not_listed()}, 3);
  CHECK(v.score == 2);
  CHECK(!v.blocked);
  CHECK(v.listed == std::vector<std::string>{"zen.example*2"});
  // Two listings: 5 >= 3; the zone of weight 3 is named.
  v = score(sites, {listed({"127.0.0.2"}), listed({"127.0.0.4"}), not_listed()}, 3);
  CHECK(v.score == 5);
  CHECK(v.blocked);
  CHECK(v.zone == "bl.example");
  // The allow list takes 2 off: 3 < 4.
  v = score(sites, {listed({"127.0.0.2"}), listed({"127.0.0.4"}), listed({"127.0.9.2"})}, 4);
  CHECK(v.score == 3);
  CHECK(!v.blocked);
  // A filter that does not match counts nothing.
  v = score(sites, {not_listed(), listed({"127.0.0.12"}), not_listed()}, 1);
  CHECK(v.score == 0);
  CHECK(!v.blocked);
  // Exactly the threshold blocks.
  v = score(sites, {listed({"127.0.0.2"}), not_listed(), not_listed()}, 2);
  CHECK(v.blocked);
  CHECK(v.zone == "zen.example");
  // A failed question counts as not listed and is reported.
  v = score(sites, {failed(), listed({"127.0.0.4"}), not_listed()}, 3);
  CHECK(v.score == 3);
  CHECK(v.blocked);
  CHECK(v.zone == "bl.example");
  REQUIRE(v.errors.size() == 1);
  CHECK(v.errors[0].starts_with("zen.example: "));
  v = score(sites, {failed(), failed(), failed()}, 1);
  CHECK(!v.blocked);
  CHECK(v.errors.size() == 3);
  // Only an allow list: negative, never blocked.
  v = score(sites, {not_listed(), not_listed(), listed({"127.0.0.1"})}, 1);
  CHECK(v.score == -2);
  CHECK(!v.blocked);
}

TEST_CASE("reject_reply: the exact text") {
  CHECK(reject_reply("192.0.2.7", "zen.example") == "554 5.7.1 Service unavailable; client [192.0.2.7] blocked using zen.example");
}

TEST_CASE("check: all zones asked at once, one question per zone, answers cached") {
  std::vector<Site> sites{site("zen.example=127.0.0.[2..3]*2"), site("zen.example=127.0.0.4*1"),
                          site("bl.example"), site("wl.example*-5")};
  FakeDns dns;
  dns.table = {{"7.2.0.192.zen.example", listed({"127.0.0.2", "127.0.0.4"}, 600)},
               {"7.2.0.192.bl.example", not_listed(120)}};
  Cache cache;
  auto t0 = Cache::Clock::time_point{} + 1000h;
  auto v = check("192.0.2.7", sites, 3, cache, dns.lookup(), t0);
  CHECK(dns.calls == 1);
  CHECK(dns.asked == std::vector<std::string>{"7.2.0.192.zen.example", "7.2.0.192.bl.example", "7.2.0.192.wl.example"});
  CHECK(v.queries == 3);
  CHECK(v.score == 3);
  CHECK(v.blocked);
  CHECK(v.zone == "zen.example");
  CHECK(cache.size() == 3);
  // Again within every TTL: no DNS at all, the same verdict.
  v = check("192.0.2.7", sites, 3, cache, dns.lookup(), t0 + 59s);
  CHECK(dns.calls == 1);
  CHECK(v.queries == 0);
  CHECK(v.blocked);
  // After 60 s (the minimum TTL, also for wl.example's unknown one) and
  // before 120 s: wl.example only.
  dns.asked.clear();
  v = check("192.0.2.7", sites, 3, cache, dns.lookup(), t0 + 61s);
  CHECK(dns.calls == 2);
  CHECK(dns.asked == std::vector<std::string>{"7.2.0.192.wl.example"});
  // After 600 s everything is asked again; now the allow list lists.
  dns.asked.clear();
  dns.table.push_back({"7.2.0.192.wl.example", listed({"127.0.10.2"}, 60)});
  v = check("192.0.2.7", sites, 3, cache, dns.lookup(), t0 + 601s);
  CHECK(dns.asked.size() == 3);
  CHECK(v.score == -2);
  CHECK(!v.blocked);
  // Another client: its own questions.
  dns.asked.clear();
  v = check("192.0.2.8", sites, 3, cache, dns.lookup(), t0 + 601s);
  CHECK(dns.asked.size() == 3);
  CHECK(!v.blocked);
  // The mapped form of a cached client is the same client.
  dns.asked.clear();
  v = check("::ffff:192.0.2.8", sites, 3, cache, dns.lookup(), t0 + 602s);
  CHECK(dns.asked.empty());
}

TEST_CASE("check: failed questions are not cached per client; the failed zone backs off") {
  std::vector<Site> sites{site("zen.example"), site("bl.example")};
  int calls = 0;
  std::vector<std::string> asked;
  bool zen_dead = true;
  Lookup dns = [&](const std::vector<std::string>& names) {
    ++calls;
    asked.insert(asked.end(), names.begin(), names.end());
    std::vector<Answer> out;
    for (const auto& n : names) out.push_back(zen_dead && n.ends_with("zen.example") ? failed() : not_listed(300));
    return out;
  };
  Cache cache;  // failure_backoff 10 s
  auto t0 = Cache::Clock::time_point{} + 1000h;
  auto v = check("192.0.2.7", sites, 1, cache, dns, t0);
  CHECK(!v.blocked);
  REQUIRE(v.errors.size() == 1);
  CHECK(v.errors[0].starts_with("zen.example: "));
  CHECK(cache.size() == 1);  // bl.example's answer only
  // Another client within 10 s: zen.example is not asked (counted as not
  // listing, and said so); bl.example is.
  asked.clear();
  v = check("192.0.2.8", sites, 1, cache, dns, t0 + 3s);
  CHECK(asked == std::vector<std::string>{"8.2.0.192.bl.example"});
  REQUIRE(v.errors.size() == 1);
  CHECK(v.errors[0] == "zen.example: not asked: it failed 3 s ago (DNS x: Timeout while contacting DNS servers)");
  CHECK(!v.blocked);
  // The first client again: its failure was not kept, the back-off holds.
  asked.clear();
  v = check("192.0.2.7", sites, 1, cache, dns, t0 + 9s);
  CHECK(asked.empty());
  // After the back-off: asked again; it still fails, so a new back-off.
  asked.clear();
  v = check("192.0.2.9", sites, 1, cache, dns, t0 + 10s);
  CHECK(asked == std::vector<std::string>{"9.2.0.192.zen.example", "9.2.0.192.bl.example"});
  asked.clear();
  check("192.0.2.10", sites, 1, cache, dns, t0 + 15s);
  CHECK(asked == std::vector<std::string>{"10.2.0.192.bl.example"});
  // It answers again after that back-off: no more back-off.
  zen_dead = false;
  asked.clear();
  v = check("192.0.2.11", sites, 1, cache, dns, t0 + 21s);
  CHECK(asked.size() == 2);
  CHECK(v.errors.empty());
  CHECK_FALSE(cache.zone_down("zen.example", t0 + 22s));
  // A back-off of 0 turns it off: every failure asked again.
  Cache no_backoff(Cache::Limits{.failure_backoff = 0s});
  zen_dead = true;
  calls = 0;
  check("192.0.2.7", sites, 1, no_backoff, dns, t0);
  check("192.0.2.7", sites, 1, no_backoff, dns, t0 + 1s);
  CHECK(calls == 2);
  // A lookup that answers fewer names than asked: the rest failed.
  Cache fresh;
  Lookup short_answer = [](const std::vector<std::string>&) { return std::vector<Answer>{}; };
  v = check("192.0.2.7", sites, 1, fresh, short_answer, t0);
  CHECK(v.errors.size() == 2);
  CHECK(!v.blocked);
  // A client that is no IP address is never asked about.
  calls = 0;
  v = check("unknown", sites, 1, no_backoff, dns, t0);
  CHECK(calls == 0);
  CHECK(!v.blocked);
}

TEST_CASE("Cache: TTL clamped, least recently used evicted first") {
  Cache cache(Cache::Limits{.max_entries = 3, .min_ttl = 10s, .max_ttl = 100s});
  auto t0 = Cache::Clock::time_point{} + 1000h;
  cache.put("192.0.2.1", "z", listed({"127.0.0.2"}, 5), t0);    // 5 → 10
  cache.put("192.0.2.2", "z", listed({"127.0.0.2"}, 1000), t0); // 1000 → 100
  cache.put("192.0.2.3", "z", not_listed(50), t0);
  CHECK(cache.get("192.0.2.1", "z", t0 + 9s));
  CHECK(!cache.get("192.0.2.1", "z", t0 + 10s));  // expired and dropped
  CHECK(cache.size() == 2);
  CHECK(cache.get("192.0.2.2", "z", t0 + 99s));
  CHECK(!cache.get("192.0.2.2", "z", t0 + 100s));
  auto a = cache.get("192.0.2.3", "z", t0 + 49s);
  REQUIRE(a);
  CHECK(a->status == Answer::Status::not_listed);
  // Full: the least recently used goes.
  cache.put("192.0.2.4", "z", listed({"127.0.0.2"}, 50), t0);
  cache.put("192.0.2.5", "z", listed({"127.0.0.2"}, 50), t0);
  CHECK(cache.size() == 3);
  CHECK(cache.get("192.0.2.3", "z", t0 + 1s));  // touched: now the most recent
  cache.put("192.0.2.6", "z", listed({"127.0.0.2"}, 50), t0);
  CHECK(cache.size() == 3);
  CHECK(!cache.get("192.0.2.4", "z", t0 + 1s));  // the least recently used
  CHECK(cache.get("192.0.2.3", "z", t0 + 1s));
  CHECK(cache.get("192.0.2.5", "z", t0 + 1s));
  CHECK(cache.get("192.0.2.6", "z", t0 + 1s));
  // Replacing an entry keeps one entry; errors are never kept.
  cache.put("192.0.2.6", "z", not_listed(50), t0);
  CHECK(cache.size() == 3);
  CHECK(cache.get("192.0.2.6", "z", t0 + 1s)->status == Answer::Status::not_listed);
  cache.put("192.0.2.7", "z", failed(), t0);
  CHECK(cache.size() == 3);
  CHECK(!cache.get("192.0.2.7", "z", t0));
  // Zones are apart.
  CHECK(!cache.get("192.0.2.6", "y", t0 + 1s));
  Cache none(Cache::Limits{.max_entries = 0});
  none.put("192.0.2.1", "z", listed({"127.0.0.2"}), t0);
  CHECK(none.size() == 0);
}
