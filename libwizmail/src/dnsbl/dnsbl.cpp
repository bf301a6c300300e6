#include "dnsbl/dnsbl.hpp"

#include <algorithm>
#include <cctype>

#include "util/ip.hpp"
#include "util/strings.hpp"

namespace wizmail::dnsbl {

namespace {

Error bad(std::string_view text, std::string_view why) {
  return Error(Errc::parse, util::cat("'", text, "': ", why));
}

std::optional<int> octet(std::string_view s) {
  if (s.empty() || s.size() > 3) return std::nullopt;
  for (char c : s)
    if (c < '0' || c > '9') return std::nullopt;
  auto v = util::parse_int(s);
  if (!v || *v > 255) return std::nullopt;
  return static_cast<int>(*v);
}

// "7", "[2..11]", "[1;3;5..7]".
std::optional<OctetSet> parse_octet(std::string_view s) {
  OctetSet set{};
  if (auto v = octet(s)) {
    set[static_cast<std::size_t>(*v)] = true;
    return set;
  }
  if (s.size() < 3 || s.front() != '[' || s.back() != ']') return std::nullopt;
  s = s.substr(1, s.size() - 2);
  for (;;) {
    auto semi = s.find(';');
    auto item = s.substr(0, semi);
    auto dots = item.find("..");
    if (dots == std::string_view::npos) {
      auto v = octet(item);
      if (!v) return std::nullopt;
      set[static_cast<std::size_t>(*v)] = true;
    } else {
      auto lo = octet(item.substr(0, dots));
      auto hi = octet(item.substr(dots + 2));
      if (!lo || !hi || *lo > *hi) return std::nullopt;
      for (int i = *lo; i <= *hi; ++i) set[static_cast<std::size_t>(i)] = true;
    }
    if (semi == std::string_view::npos) break;
    s.remove_prefix(semi + 1);
  }
  return set;
}

bool valid_zone(std::string_view z) {
  if (z.empty() || z.size() > 200 || z.front() == '.' || z.back() == '.' ||
      z.find("..") != std::string_view::npos)
    return false;
  for (char c : z) {
    auto u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '-' || c == '.' || c == '_')) return false;
  }
  return true;
}

std::optional<std::array<std::uint8_t, 4>> dotted_quad(std::string_view s) {
  auto ip = util::IpAddress::parse(s);
  if (!ip || ip->v6) return std::nullopt;
  return std::array<std::uint8_t, 4>{ip->bytes[0], ip->bytes[1], ip->bytes[2], ip->bytes[3]};
}

}  // namespace

bool Site::matches(const std::vector<std::string>& records) const {
  for (const auto& r : records) {
    if (!filter) return true;
    auto q = dotted_quad(r);
    if (!q) continue;
    bool all = true;
    for (std::size_t i = 0; i < 4 && all; ++i) all = (*filter)[i][(*q)[i]];
    if (all) return true;
  }
  return false;
}

Result<Site> parse_site(std::string_view text) {
  Site site;
  site.text = std::string(text);
  std::string_view rest = text;
  if (auto star = rest.rfind('*'); star != std::string_view::npos) {
    auto w = rest.substr(star + 1);
    auto v = util::parse_int(w);
    if (w.empty() || !v) return unexpected(bad(text, "the weight after * is not a whole number"));
    if (*v == 0) return unexpected(bad(text, "a weight of 0 does nothing (positive: block list, negative: allow list)"));
    if (*v < -kMaxWeight || *v > kMaxWeight)
      return unexpected(bad(text, util::cat("the weight is not within -", std::to_string(kMaxWeight), "..",
                                            std::to_string(kMaxWeight))));
    site.weight = static_cast<int>(*v);
    rest = rest.substr(0, star);
  }
  if (auto eq = rest.find('='); eq != std::string_view::npos) {
    auto f = rest.substr(eq + 1);
    rest = rest.substr(0, eq);
    std::array<OctetSet, 4> filter{};
    std::size_t n = 0;
    bool ok = !f.empty();
    while (ok) {
      if (n == 4) {
        ok = false;
        break;
      }
      // A dot inside [..] is part of a range, not an octet separator.
      std::size_t end = 0;
      int depth = 0;
      while (end < f.size() && (depth > 0 || f[end] != '.')) {
        if (f[end] == '[') ++depth;
        if (f[end] == ']') --depth;
        ++end;
      }
      auto set = parse_octet(f.substr(0, end));
      if (!set) {
        ok = false;
        break;
      }
      filter[n++] = *set;
      if (end == f.size()) break;
      f.remove_prefix(end + 1);
    }
    if (!ok || n != 4)
      return unexpected(bad(text, "the filter after = is not four octets (each a number 0-255, [a..b] or [a;b;c])"));
    site.filter = filter;
  }
  if (!valid_zone(rest)) return unexpected(bad(text, "no DNS zone before = or *"));
  site.zone = util::to_lower(rest);
  return site;
}

std::vector<std::string> split_sites(std::string_view value) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : value) {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

Result<std::vector<Site>> parse_sites(const std::vector<std::string>& items) {
  std::vector<Site> out;
  for (const auto& item : items) {
    for (const auto& piece : split_sites(item)) {
      auto s = parse_site(piece);
      if (!s) return unexpected(s.error());
      out.push_back(std::move(*s));
    }
  }
  return out;
}

std::optional<std::string> query_name(std::string_view ip, std::string_view zone) {
  auto a = util::IpAddress::parse(ip);
  if (!a) return std::nullopt;
  std::string out;
  if (!a->v6) {
    for (int i = 3; i >= 0; --i) {
      out += std::to_string(a->bytes[static_cast<std::size_t>(i)]);
      out += '.';
    }
  } else {
    static constexpr char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; --i) {
      auto b = a->bytes[static_cast<std::size_t>(i)];
      out += hex[b & 0xf];
      out += '.';
      out += hex[b >> 4];
      out += '.';
    }
  }
  out.append(zone);
  return out;
}

// ---- cache ----------------------------------------------------------------

namespace {
std::string cache_key(std::string_view ip, std::string_view zone) {
  // The canonical address (IPv4-mapped IPv6 as IPv4), so one client is one key.
  std::string addr(ip);
  if (auto a = util::IpAddress::parse(ip); a && !a->v6)
    addr = util::cat(std::to_string(a->bytes[0]), ".", std::to_string(a->bytes[1]), ".",
                     std::to_string(a->bytes[2]), ".", std::to_string(a->bytes[3]));
  return util::cat(addr, " ", zone);
}
}  // namespace

std::optional<Answer> Cache::get(std::string_view ip, std::string_view zone, Clock::time_point now) {
  auto key = cache_key(ip, zone);
  std::lock_guard lk(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  if (now >= it->second->expires) {
    lru_.erase(it->second);
    map_.erase(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->answer;
}

void Cache::put(std::string_view ip, std::string_view zone, const Answer& a, Clock::time_point now) {
  if (a.status == Answer::Status::error || limits_.max_entries == 0) return;
  auto ttl = a.ttl.count() <= 0 ? limits_.min_ttl : std::clamp(a.ttl, limits_.min_ttl, limits_.max_ttl);
  auto key = cache_key(ip, zone);
  std::lock_guard lk(mu_);
  if (auto it = map_.find(key); it != map_.end()) {
    lru_.erase(it->second);
    map_.erase(it);
  }
  while (map_.size() >= limits_.max_entries && !lru_.empty()) {
    map_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{key, a, now + ttl});
  map_.emplace(std::move(key), lru_.begin());
}

std::size_t Cache::size() const {
  std::lock_guard lk(mu_);
  return map_.size();
}

std::optional<Cache::Failure> Cache::zone_down(std::string_view zone, Clock::time_point now) const {
  std::lock_guard lk(mu_);
  auto it = down_.find(std::string(zone));
  if (it == down_.end() || now >= it->second.since + limits_.failure_backoff) return std::nullopt;
  return it->second;
}

void Cache::zone_failed(std::string_view zone, std::string error, Clock::time_point now) {
  if (limits_.failure_backoff.count() <= 0) return;
  std::lock_guard lk(mu_);
  down_[std::string(zone)] = Failure{std::move(error), now};
}

void Cache::zone_answered(std::string_view zone) {
  std::lock_guard lk(mu_);
  if (!down_.empty()) down_.erase(std::string(zone));
}

// ---- scoring --------------------------------------------------------------

Verdict score(const std::vector<Site>& sites, const std::vector<Answer>& answers, int threshold) {
  Verdict v;
  const Site* top = nullptr;
  for (std::size_t i = 0; i < sites.size() && i < answers.size(); ++i) {
    const Site& s = sites[i];
    const Answer& a = answers[i];
    if (a.status == Answer::Status::error) {
      v.errors.push_back(util::cat(s.zone, ": ", a.error));
      continue;
    }
    if (a.status != Answer::Status::listed || !s.matches(a.records)) continue;
    v.score += s.weight;
    v.listed.push_back(util::cat(s.zone, "*", std::to_string(s.weight)));
    if (s.weight > 0 && (!top || s.weight > top->weight)) top = &s;
  }
  v.blocked = top && v.score >= threshold;
  if (v.blocked) v.zone = top->zone;
  return v;
}

Verdict check(std::string_view ip, const std::vector<Site>& sites, int threshold, Cache& cache,
              const Lookup& lookup, Cache::Clock::time_point now) {
  // One question per zone (several sites may share one, with other filters).
  std::vector<std::string> zones;
  for (const auto& s : sites)
    if (std::find(zones.begin(), zones.end(), s.zone) == zones.end()) zones.push_back(s.zone);
  std::vector<std::optional<Answer>> by_zone(zones.size());
  std::vector<std::string> names;
  std::vector<std::size_t> asked;
  for (std::size_t i = 0; i < zones.size(); ++i) {
    if ((by_zone[i] = cache.get(ip, zones[i], now))) continue;
    if (auto down = cache.zone_down(zones[i], now)) {
      auto ago = std::chrono::duration_cast<std::chrono::seconds>(now - down->since).count();
      by_zone[i] = Answer{Answer::Status::error, {}, {},
                          util::cat("not asked: it failed ", std::to_string(ago), " s ago (", down->error, ")")};
      continue;
    }
    auto name = query_name(ip, zones[i]);
    if (!name) {
      by_zone[i] = Answer{Answer::Status::error, {}, {}, "not an IP address"};
      continue;
    }
    names.push_back(std::move(*name));
    asked.push_back(i);
  }
  if (!names.empty()) {
    auto got = lookup ? lookup(names) : std::vector<Answer>{};
    for (std::size_t j = 0; j < asked.size(); ++j) {
      Answer a = j < got.size() ? std::move(got[j]) : Answer{Answer::Status::error, {}, {}, "no answer"};
      if (a.status == Answer::Status::error) cache.zone_failed(zones[asked[j]], a.error, now);
      else cache.zone_answered(zones[asked[j]]);
      cache.put(ip, zones[asked[j]], a, now);
      by_zone[asked[j]] = std::move(a);
    }
  }
  std::vector<Answer> answers;
  answers.reserve(sites.size());
  for (const auto& s : sites) {
    auto i = static_cast<std::size_t>(std::find(zones.begin(), zones.end(), s.zone) - zones.begin());
    answers.push_back(*by_zone[i]);
  }
  Verdict v = score(sites, answers, threshold);
  v.queries = names.size();
  return v;
}

std::string reject_reply(std::string_view ip, std::string_view zone, int code) {
  return util::cat(std::to_string(code), " 5.7.1 Service unavailable; client [", ip, "] blocked using ", zone);
}

}  // namespace wizmail::dnsbl
