// wizmail-sendmail: hand a message to the running server (SPEC §8, the
// manual's メール送信ツール), over the trusted local socket var/run/submit.sock.
//
//   wizmail-sendmail FROM TO[,TO...] -mf FILE [-del]
//   wizmail-sendmail FROM TO[,TO...] -sb FILE [-onlyonce CSV] [--auto-replied]
//   wizmail-sendmail [-t] [-i|-oi] [-f FROM] [-F NAME] [RCPT...]  < message
//
// Every form takes --home DIR (default $WIZ98MS_HOME). Exit status follows
// sysexits.h: 0 sent; 64 usage; 65 bad message; 66 cannot read the file;
// 69 the server refused the message; 75 the server is not running or asked
// to try later (nothing was sent).
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "wizmail/config.hpp"
#include "wizmail/control.hpp"
#include "wizmail/submit.hpp"

namespace {

namespace fs = std::filesystem;
using namespace wizmail;

constexpr int kUsage = 64, kDataErr = 65, kNoInput = 66, kUnavailable = 69, kTempFail = 75;

const char* const kUsageText =
    "usage: wizmail-sendmail [--home DIR] FROM TO[,TO...] -mf FILE [-del]\n"
    "       wizmail-sendmail [--home DIR] FROM TO[,TO...] -sb FILE [-onlyonce CSV] [--auto-replied]\n"
    "       wizmail-sendmail [--home DIR] [-t] [-i|-oi] [-f FROM] [-F NAME] [RCPT...] < message\n";

int usage(const std::string& why) {
  std::cerr << "wizmail-sendmail: " << why << '\n' << kUsageText;
  return kUsage;
}

int report(const Error& e) {
  std::cerr << "wizmail-sendmail: " << e.message << '\n';
  if (e.code == Errc::unavailable || e.code == Errc::temporary || (e.smtp_code >= 400 && e.smtp_code < 500))
    return kTempFail;
  if (e.smtp_code >= 500) return kUnavailable;
  if (e.code == Errc::invalid_argument) return kDataErr;
  return kTempFail;
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return s;
}

std::vector<std::string> split_addresses(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c != ' ' && c != '\t') {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

struct Setup {
  fs::path home;
  std::string domain = "localhost";
};

int manual_form(const Setup& setup, const std::vector<std::string>& args) {
  std::vector<std::string> positional;
  std::string mf, sb, onlyonce;
  bool del = false, auto_replied = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    auto value = [&](std::string& into) {
      if (i + 1 >= args.size()) return false;
      into = args[++i];
      return true;
    };
    if (a == "-mf") {
      if (!value(mf)) return usage("-mf needs a file");
    } else if (a == "-sb") {
      if (!value(sb)) return usage("-sb needs a file");
    } else if (a == "-onlyonce") {
      if (!value(onlyonce)) return usage("-onlyonce needs a file");
    } else if (a == "-del") {
      del = true;
    } else if (a == "--auto-replied") {
      auto_replied = true;
    } else if (a == "-nowait") {
      // accepted and ignored, like every manual command
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      return usage("unknown option " + a);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) return usage("FROM and TO are needed");
  if (!mf.empty() && !sb.empty()) return usage("-mf and -sb exclude each other");
  if (del && mf.empty()) return usage("-del goes with -mf");
  if (!onlyonce.empty() && sb.empty()) return usage("-onlyonce goes with -sb");
  const std::string& from = positional[0];
  auto to = split_addresses(positional[1]);
  if (!submit::valid_address(from)) return usage("bad sender address: " + from);
  if (to.empty()) return usage("no recipient");
  for (const auto& t : to)
    if (!submit::valid_address(t)) return usage("bad recipient address: " + t);

  std::string message;
  if (!mf.empty()) {
    auto content = read_file(mf);
    if (!content) {
      std::cerr << "wizmail-sendmail: cannot read " << mf << '\n';
      return kNoInput;
    }
    message = std::move(*content);
  } else {
    auto content = read_file(sb);
    if (!content) {
      std::cerr << "wizmail-sendmail: cannot read " << sb << '\n';
      return kNoInput;
    }
    auto parsed = submit::parse_subject_body(*content);
    if (!parsed) return report(parsed.error());
    if (!onlyonce.empty()) {
      std::vector<std::string> fresh;
      for (const auto& t : to) {
        auto seen = submit::onlyonce_seen(onlyonce, from, t);
        if (!seen) return report(seen.error());
        if (!*seen) fresh.push_back(t);
      }
      if (fresh.empty()) return 0;  // sent before: nothing to do
      to = std::move(fresh);
    }
    submit::TextMessage m;
    m.from = from;
    m.to = to;
    m.subject = parsed->subject;
    m.body = parsed->body;
    m.hostname = setup.domain;
    if (auto_replied) m.extra_headers = "Auto-Submitted: auto-replied\r\n";
    message = submit::build_text_message(m);
  }
  submit::Envelope env{from, to};
  if (auto st = submit::send(control::submit_socket_path(setup.home), env, message); !st)
    return report(st.error());
  if (!onlyonce.empty())
    for (const auto& t : to)
      if (auto st = submit::onlyonce_record(onlyonce, from, t); !st)
        std::cerr << "wizmail-sendmail: sent, but could not record the pair: " << st.error().message << '\n';
  if (del && ::unlink(mf.c_str()) != 0)
    std::cerr << "wizmail-sendmail: sent, but could not remove " << mf << '\n';
  return 0;
}

int classic_form(const Setup& setup, const std::vector<std::string>& args) {
  bool from_headers = false, ignore_dots = false;
  std::string from, full_name;
  bool f_given = false;
  std::vector<std::string> rcpts;
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (options_done || a.empty() || a[0] != '-') {
      for (auto& r : split_addresses(a)) rcpts.push_back(r);
      continue;
    }
    if (a == "--") {
      options_done = true;
    } else if (a == "-t") {
      from_headers = true;
    } else if (a == "-i" || a == "-oi") {
      ignore_dots = true;
    } else if (a == "-f" || a == "-r" || a == "-F") {
      if (i + 1 >= args.size()) return usage(a + " needs a value");
      if (a != "-F") f_given = true;
      (a == "-F" ? full_name : from) = args[++i];
    } else if (a.starts_with("-f") || a.starts_with("-r")) {
      f_given = true;
      from = a.substr(2);
    } else if (a.starts_with("-F")) {
      full_name = a.substr(2);
    } else if (a == "-bm" || a == "-v" || a.starts_with("-od") || a.starts_with("-oe") || a == "-om" ||
               a == "-oem" || a == "-U" || a == "-nowait") {
      // sendmail compatibility: delivery mode, error mode, verbosity
    } else {
      return usage("unsupported option " + a);
    }
  }
  if (!from.empty() && from != "<>" && !submit::valid_address(from))
    return usage("bad sender address: " + from);
  if (from == "<>") from.clear();
  std::string login;
  if (passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_name) login = pw->pw_name;
  // Without -f the sender is the calling user at the server's domain; -f <>
  // sends with the null sender (bounces, auto-replies).
  std::string header_from = from;
  if (from.empty()) {
    header_from = (login.empty() ? std::string("nobody") : login) + "@" + setup.domain;
    if (!f_given) from = header_from;
  }
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (std::cin.bad()) {
    std::cerr << "wizmail-sendmail: cannot read standard input\n";
    return kNoInput;
  }
  std::string message = submit::read_message(input, ignore_dots);
  if (from_headers) {
    auto hr = submit::recipients_from_headers(message);
    if (!hr) return report(hr.error());
    message = std::move(hr->message);
    for (auto& r : hr->recipients) rcpts.push_back(std::move(r));
  }
  for (const auto& r : rcpts)
    if (!submit::valid_address(r)) return usage("bad recipient address: " + r);
  if (rcpts.empty()) return usage("no recipients (give them as arguments, or use -t)");
  std::string shown_from = header_from;
  if (!full_name.empty()) {
    bool plain = true;
    for (char c : full_name)
      if (c == '"' || c == '\\' || c == '\r' || c == '\n') plain = false;
    if (plain) shown_from = "\"" + full_name + "\" <" + header_from + ">";
  }
  message = submit::complete_headers(message, shown_from, setup.domain);
  if (auto st = submit::send(control::submit_socket_path(setup.home), {from, rcpts}, message); !st)
    return report(st.error());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  std::string home_option;
  for (std::size_t i = 0; i < args.size();) {
    if (args[i] == "--home" && i + 1 < args.size()) {
      home_option = args[i + 1];
      args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
    } else if (args[i].starts_with("--home=")) {
      home_option = args[i].substr(7);
      args.erase(args.begin() + static_cast<long>(i));
    } else if (args[i] == "--help" || args[i] == "-h") {
      std::cout << kUsageText;
      return 0;
    } else {
      ++i;
    }
  }
  auto home = resolve_home(home_option);
  if (!home) {
    std::cerr << "wizmail-sendmail: " << home.error().message << '\n';
    return kUsage;
  }
  Setup setup;
  setup.home = *home;
  if (auto cfg = load_config(*home)) setup.domain = (*cfg)->server.domain;
  bool manual = false;
  for (const auto& a : args)
    if (a == "-mf" || a == "-sb") manual = true;
  return manual ? manual_form(setup, args) : classic_form(setup, args);
}
