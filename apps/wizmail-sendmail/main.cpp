// wizmail-sendmail: hand a message to the running server (SPEC §8, the
// manual's メール送信ツール), over the trusted local socket var/run/submit.sock.
// The command line rules and exit statuses are submit::parse_command_line()
// and submit::exit_status() (wizmail/admin/submit.hpp); the text below says them.
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "wizmail/config.hpp"
#include "wizmail/admin/control.hpp"
#include "wizmail/admin/submit.hpp"

namespace {

namespace fs = std::filesystem;
using namespace wizmail;
namespace x = submit::exit_code;

const char* const kUsageText =
    "usage: wizmail-sendmail [--home DIR] [--node NAME] FROM TO[,TO...] -mf FILE [-del]\n"
    "       wizmail-sendmail [--home DIR] [--node NAME] FROM TO[,TO...] -sb FILE [-onlyonce CSV] [--auto-replied]\n"
    "       wizmail-sendmail [--home DIR] [--node NAME] FROM TO[,TO...]  < message\n"
    "       wizmail-sendmail [--home DIR] [--node NAME] [-t] [-i|-oi] [-f FROM] [-F NAME] [--] [RCPT...] < message\n"
    "\n"
    "Which form: with -mf or -sb, FROM TO (the manual's forms). Exactly two\n"
    "arguments and no option: FROM TO, the message on standard input (the\n"
    "manual's forwarding recipe) -- except when started as \"sendmail\" outside a\n"
    "server hook, where `sendmail a b < msg` sends to two recipients as on any\n"
    "Unix. Anything else is the classic form: every argument a recipient; give\n"
    "an option (-i) or -- to send to exactly two recipients. An empty message is\n"
    "refused. Run by a reply.def hook, every message gets Auto-Submitted:\n"
    "auto-replied (RFC 3834) and In-Reply-To/References of the mail answered.\n"
    "--node NAME (default $WIZMAIL_NODE, which the server sets for its hooks):\n"
    "submit through node NAME of a shared home, HOME/nodes/NAME/run/submit.sock.\n"
    "\n"
    "Exit status (sysexits.h): 0 sent (on disk at the server); 64 usage;\n"
    "65 bad message; 66 file unreadable or empty message; 67 the server refused\n"
    "a recipient (unknown user); 69 the server refused the message otherwise;\n"
    "70 internal error; 73 -onlyonce file unusable; 75 server not running, busy\n"
    "or 4xx: try again later; 76 protocol error; 77 permission denied on the\n"
    "submit socket (the message says which user or group may use it);\n"
    "78 no home (set WIZ98MS_HOME or --home).\n";

int usage(const std::string& why) {
  std::cerr << "wizmail-sendmail: " << why << '\n' << kUsageText;
  return x::usage;
}

int report(const Error& e) {
  std::cerr << "wizmail-sendmail: " << e.message << '\n';
  return submit::exit_status(e);
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return s;
}

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

// Run by a reply.def hook of the server: what RFC 3834 asks of the reply.
std::vector<std::string> auto_reply_fields() {
  std::vector<std::string> f;
  const char* hook = env("WIZMAIL_HOOK");
  const char* as = env("WIZMAIL_AUTO_SUBMITTED");
  if (!as && !(hook && std::string(hook) == "reply")) return f;
  auto clean = [](std::string v) {
    for (char& c : v)
      if (c == '\r' || c == '\n') c = ' ';
    return v;
  };
  f.push_back("Auto-Submitted: " + clean(as ? as : "auto-replied") + "\r\n");
  if (const char* irt = env("WIZMAIL_IN_REPLY_TO")) f.push_back("In-Reply-To: " + clean(irt) + "\r\n");
  if (const char* refs = env("WIZMAIL_REFERENCES")) {
    // One id a line: folded, every line far below 998 octets.
    std::string v = clean(refs), folded;
    std::size_t pos = 0;
    while (pos < v.size()) {
      auto sp = v.find(' ', pos);
      std::string id = v.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos);
      if (!id.empty()) folded += (folded.empty() ? "" : "\r\n ") + id;
      if (sp == std::string::npos) break;
      pos = sp + 1;
    }
    if (!folded.empty()) f.push_back("References: " + folded + "\r\n");
  }
  return f;
}

// Standard input, line ends made CRLF; nullopt (reported) when unreadable.
std::optional<std::string> read_stdin(bool ignore_dots) {
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (std::cin.bad()) {
    std::cerr << "wizmail-sendmail: cannot read standard input\n";
    return std::nullopt;
  }
  return submit::read_message(input, ignore_dots);
}

int refuse_empty() {
  std::cerr << "wizmail-sendmail: no message on standard input: nothing sent\n";
  if (env("WIZMAIL_HOOK"))
    std::cerr << "wizmail-sendmail: (run by a hook: the server gives a hook the mail on standard input only "
                 "when its .def file has the line stdin=1; or pass the file: FROM TO -mf MAILFILE_PATH)\n";
  return x::no_input;
}

struct Setup {
  fs::path home;
  std::string node;  // a node of a shared home (--node, $WIZMAIL_NODE): its submit socket
  std::string domain = "localhost";
};

int send(const Setup& setup, const submit::Envelope& env, const std::string& message) {
  if (auto st = submit::send(control::submit_socket_path(setup.home, setup.node), env, message); !st) return report(st.error());
  return x::ok;
}

int manual_form(const Setup& setup, submit::CommandLine& c) {
  const auto replying = auto_reply_fields();
  std::string message;
  if (c.form == submit::CommandLine::Form::manual_stdin) {
    auto in = read_stdin(true);
    if (!in) return x::no_input;
    if (submit::empty_message(*in)) return refuse_empty();
    message = submit::add_missing_fields(*in, replying);
  } else if (c.form == submit::CommandLine::Form::stored_file) {
    auto content = read_file(c.file);
    if (!content) {
      std::cerr << "wizmail-sendmail: cannot read " << c.file << '\n';
      return x::no_input;
    }
    if (submit::empty_message(*content)) {
      std::cerr << "wizmail-sendmail: " << c.file << " is empty: nothing sent\n";
      return x::no_input;
    }
    message = submit::add_missing_fields(*content, replying);
  } else {
    auto content = read_file(c.file);
    if (!content) {
      std::cerr << "wizmail-sendmail: cannot read " << c.file << '\n';
      return x::no_input;
    }
    auto parsed = submit::parse_subject_body(*content);
    if (!parsed) return report(parsed.error());
    if (!c.onlyonce.empty()) {
      std::vector<std::string> fresh;
      for (const auto& t : c.recipients) {
        auto seen = submit::onlyonce_seen(c.onlyonce, c.sender, t);
        if (!seen) {
          std::cerr << "wizmail-sendmail: " << seen.error().message << '\n';
          return x::cant_create;
        }
        if (!*seen) fresh.push_back(t);
      }
      if (fresh.empty()) return x::ok;  // sent before: nothing to do
      c.recipients = std::move(fresh);
    }
    submit::TextMessage m;
    m.from = c.sender;
    m.to = c.recipients;
    m.subject = parsed->subject;
    m.body = parsed->body;
    m.hostname = setup.domain;
    for (const auto& f : replying) m.extra_headers += f;
    if (c.auto_replied && m.extra_headers.find("Auto-Submitted:") == std::string::npos)
      m.extra_headers += "Auto-Submitted: auto-replied\r\n";
    message = submit::build_text_message(m);
  }
  if (int rc = send(setup, {c.sender, c.recipients}, message); rc != x::ok) return rc;
  if (!c.onlyonce.empty())
    for (const auto& t : c.recipients)
      if (auto st = submit::onlyonce_record(c.onlyonce, c.sender, t); !st)
        std::cerr << "wizmail-sendmail: sent, but could not record the pair: " << st.error().message << '\n';
  if (c.del && ::unlink(c.file.c_str()) != 0)
    std::cerr << "wizmail-sendmail: sent, but could not remove " << c.file << '\n';
  return x::ok;
}

int classic_form(const Setup& setup, submit::CommandLine& c) {
  std::string from = c.sender;
  if (from == "<>") from.clear();
  std::string login;
  if (passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_name) login = pw->pw_name;
  // Without -f the sender is the calling user at the server's domain; -f <>
  // sends with the null sender (bounces, auto-replies).
  std::string header_from = from;
  if (from.empty()) {
    header_from = (login.empty() ? std::string("nobody") : login) + "@" + setup.domain;
    if (!c.sender_given) from = header_from;
  }
  auto in = read_stdin(c.ignore_dots);
  if (!in) return x::no_input;
  std::string message = std::move(*in);
  if (submit::empty_message(message)) return refuse_empty();
  if (c.from_headers) {
    auto hr = submit::recipients_from_headers(message);
    if (!hr) return report(hr.error());
    message = std::move(hr->message);
    for (auto& r : hr->recipients) c.recipients.push_back(std::move(r));
  }
  for (const auto& r : c.recipients)
    if (!submit::valid_address(r)) return usage("bad recipient address: " + r);
  if (c.recipients.empty()) return usage("no recipients (give them as arguments, or use -t)");
  std::string shown_from = header_from;
  if (!c.full_name.empty()) {
    bool plain = true;
    for (char ch : c.full_name)
      if (ch == '"' || ch == '\\' || ch == '\r' || ch == '\n') plain = false;
    if (plain) shown_from = "\"" + c.full_name + "\" <" + header_from + ">";
  }
  message = submit::add_missing_fields(submit::complete_headers(message, shown_from, setup.domain),
                                       auto_reply_fields());
  return send(setup, {from, c.recipients}, message);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  std::string home_option;
  std::string node = env("WIZMAIL_NODE") ? env("WIZMAIL_NODE") : "";
  for (std::size_t i = 0; i < args.size();) {
    if (args[i] == "--node" && i + 1 < args.size()) {
      node = args[i + 1];
      args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
    } else if (args[i].starts_with("--node=")) {
      node = args[i].substr(7);
      args.erase(args.begin() + static_cast<long>(i));
    } else if (args[i] == "--home" && i + 1 < args.size()) {
      home_option = args[i + 1];
      args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
    } else if (args[i].starts_with("--home=")) {
      home_option = args[i].substr(7);
      args.erase(args.begin() + static_cast<long>(i));
    } else if (args[i] == "--help" || args[i] == "-h") {
      std::cout << kUsageText;
      return x::ok;
    } else {
      ++i;
    }
  }
  const bool as_sendmail = argc > 0 && fs::path(argv[0]).filename() == "sendmail";
  auto line = submit::parse_command_line(args, as_sendmail, env("WIZMAIL_HOOK") != nullptr);
  if (!line) return usage(line.error().message);
  auto home = resolve_home(home_option);
  if (!home) {
    std::cerr << "wizmail-sendmail: " << home.error().message << '\n';
    return x::config;
  }
  if (!node.empty()) {
    if (auto st = validate_node_name(node); !st) return usage(st.error().message);
  }
  Setup setup;
  setup.home = *home;
  setup.node = node;
  if (auto cfg = load_config(*home, node)) setup.domain = (*cfg)->server.domain;
  return line->form == submit::CommandLine::Form::classic ? classic_form(setup, *line) : manual_form(setup, *line);
}
