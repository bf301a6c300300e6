#include <fstream>
#include <sstream>

#include "mailauth/mailauth.hpp"
#include "util/strings.hpp"

namespace wizmail::mailauth {

PublicSuffixList PublicSuffixList::parse(std::string_view text) {
  PublicSuffixList l;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    auto line = util::trim(text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (auto sp = line.find_first_of(" \t"); sp != std::string_view::npos) line = line.substr(0, sp);
    if (line.empty() || line.starts_with("//")) continue;
    std::string rule = util::to_lower(line);
    if (rule.starts_with('!')) l.exceptions_.insert(rule.substr(1));
    else if (rule.starts_with("*.")) l.wildcards_.insert(rule.substr(2));
    else l.rules_.insert(rule);
  }
  return l;
}

Result<PublicSuffixList> PublicSuffixList::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(Errc::not_found, util::cat("public suffix list ", path, ": cannot read"));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str());
}

std::string PublicSuffixList::organizational_domain(std::string_view name) const {
  std::string n = util::to_lower(name);
  while (!n.empty() && n.back() == '.') n.pop_back();
  // Labels from the right: the longest matching rule is the public suffix
  // (an exception rule ends one label shorter; no rule at all: "*").
  std::vector<std::size_t> starts{0};  // start of each suffix, longest first
  for (std::size_t i = 0; i < n.size(); ++i)
    if (n[i] == '.') starts.push_back(i + 1);
  std::size_t suffix_labels = 1;
  for (std::size_t k = 0; k < starts.size(); ++k) {
    std::string_view suf = std::string_view(n).substr(starts[k]);
    const std::size_t labels = starts.size() - k;
    if (exceptions_.contains(std::string(suf))) {
      suffix_labels = labels - 1;
      break;
    }
    bool match = rules_.contains(std::string(suf));
    if (!match && k + 1 < starts.size())
      match = wildcards_.contains(std::string(std::string_view(n).substr(starts[k + 1])));
    if (match) {
      suffix_labels = labels;
      break;
    }
  }
  if (suffix_labels >= starts.size()) return n;  // a public suffix itself (or one label)
  return n.substr(starts[starts.size() - suffix_labels - 1]);
}

bool aligned(const PublicSuffixList& psl, std::string_view a, std::string_view b, bool strict) {
  std::string x = util::to_lower(a), y = util::to_lower(b);
  if (x.empty() || y.empty()) return false;
  if (strict) return x == y;
  return psl.organizational_domain(x) == psl.organizational_domain(y);
}

}  // namespace wizmail::mailauth
