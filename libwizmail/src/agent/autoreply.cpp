#include "wizmail/autoreply.hpp"

#include <algorithm>
#include <map>

#include "util/fs.hpp"
#include "util/strings.hpp"

namespace wizmail {

namespace {

std::size_t count_field(const HeaderList& h, std::string_view name) {
  return static_cast<std::size_t>(
      std::count_if(h.begin(), h.end(), [&](const auto& f) { return util::iequals(f.first, name); }));
}

std::string angle_free(std::string_view v) {
  v = util::trim(v);
  auto lt = v.rfind('<');
  if (lt != std::string_view::npos) {
    auto gt = v.find('>', lt);
    if (gt != std::string_view::npos) v = v.substr(lt + 1, gt - lt - 1);
  }
  return util::to_lower(util::trim(v));
}

constexpr std::size_t kMaxHops = 25;

}  // namespace

AutoReplyCheck auto_reply_check(std::string_view sender, const HeaderList& headers,
                                std::string_view own_address) {
  if (sender.empty()) return {false, "null sender"};
  std::string s = util::to_lower(sender);
  std::string local = s.substr(0, s.rfind('@'));
  if (local == "mailer-daemon" || local.starts_with("owner-") || local.ends_with("-request") ||
      local.ends_with("-bounces") || local.ends_with("-owner"))
    return {false, "sender " + std::string(sender) + " is a mail system address"};
  if (!own_address.empty() && s == util::to_lower(own_address)) return {false, "mail from the account itself"};
  for (const auto& [name, value] : headers) {
    if (util::iequals(name, "Auto-Submitted")) {
      std::string v = util::to_lower(util::trim(value));
      if (auto semi = v.find(';'); semi != std::string::npos) v = std::string(util::trim(v.substr(0, semi)));
      if (v != "no") return {false, "Auto-Submitted: " + value};
    } else if (util::iequals(name, "Precedence")) {
      std::string v = util::to_lower(util::trim(value));
      if (v == "bulk" || v == "list" || v == "junk") return {false, "Precedence: " + v};
    } else if (util::iequals(name, "List-Id") || util::iequals(name, "List-Unsubscribe")) {
      return {false, "mailing-list mail (" + name + ")"};
    } else if (util::iequals(name, "X-Loop") || util::iequals(name, "X-Autoreply") ||
               util::iequals(name, "X-Autorespond")) {
      return {false, name + " present"};
    }
  }
  if (count_field(headers, "Received") >= kMaxHops) return {false, "too many Received fields (loop)"};
  return {true, {}};
}

bool forward_loop(const HeaderList& headers, std::string_view address) {
  std::string a = util::to_lower(address);
  std::size_t hops = 0;
  for (const auto& [name, value] : headers) {
    if (util::iequals(name, "Delivered-To")) {
      if (angle_free(value) == a) return true;
      ++hops;
    } else if (util::iequals(name, "Received")) {
      ++hops;
    }
  }
  return hops >= kMaxHops;
}

bool ReplyMemory::recently(std::string_view address, std::int64_t now, std::chrono::seconds interval) const {
  auto text = util::read_file(file_);
  if (!text) return false;
  std::string a = util::to_lower(address);
  for (auto& line : util::split_list(*text, '\n')) {
    auto sp = line.find(' ');
    if (sp == std::string::npos) continue;
    auto t = util::parse_int(std::string_view(line).substr(0, sp));
    if (t && line.substr(sp + 1) == a && *t > now - interval.count()) return true;
  }
  return false;
}

Status ReplyMemory::record(std::string_view address, std::int64_t now) const {
  std::map<std::string, std::int64_t> latest;
  if (auto text = util::read_file(file_)) {
    for (auto& line : util::split_list(*text, '\n')) {
      auto sp = line.find(' ');
      if (sp == std::string::npos) continue;
      auto t = util::parse_int(std::string_view(line).substr(0, sp));
      if (t) latest[line.substr(sp + 1)] = std::max(latest[line.substr(sp + 1)], *t);
    }
  }
  latest[util::to_lower(address)] = now;
  std::vector<std::pair<std::int64_t, std::string>> rows;
  for (auto& [a, t] : latest) rows.emplace_back(t, a);
  std::sort(rows.begin(), rows.end(), std::greater<>());
  if (rows.size() > 1000) rows.resize(1000);
  std::string out;
  for (auto& [t, a] : rows) out += std::to_string(t) + " " + a + "\n";
  return util::write_file_atomic(file_, out, 0600);
}

}  // namespace wizmail
