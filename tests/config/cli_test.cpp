// `wizmail config show|check|reference` run as a user runs them.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "wizmail/config.hpp"

using namespace wizmail;
using cfgtest::TempDir;
namespace fs = std::filesystem;

namespace {

fs::path wizmail_bin() { return cfgtest::build_dir() / "apps" / "wizmail" / "wizmail"; }

void write_setup_files(const fs::path& home, const std::string& bind) {
  DefFileOptions opt;
  opt.smtp_port = 2525;
  opt.pop_port = 1110;
  opt.bind_address = {bind};
  opt.domain = "example.org";
  for (const auto& f : def_file_names()) cfgtest::write(home / "def" / f, default_def_file(f, opt));
}

}  // namespace

TEST_CASE("config show: text and JSON on a set-up home") {
  TempDir home;
  write_setup_files(home.path, "127.0.0.1");
  auto r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "show"});
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(r.out.find("port=2525  # smtpenv.dat\n") != std::string::npos);
  CHECK(r.out.find("send_permits_only_smtp_auth=1  # smtpenv.dat\n") != std::string::npos);

  r = cfgtest::run(wizmail_bin(), {"config", "show", "--json"}, home.path.string());
  CHECK(r.status == 0);
  CHECK(cfgtest::valid_json(r.out));
  CHECK(r.out.find("\"port\": 1110") != std::string::npos);

  // The manual's name.
  auto manual = cfgtest::build_dir() / "apps" / "wizmail" / "wmsprtdef";
  if (fs::exists(manual)) {
    r = cfgtest::run(manual, {"--home", home.path.string()});
    CHECK(r.status == 0);
    CHECK(r.out.find("port=2525  # smtpenv.dat\n") != std::string::npos);
  }
}

TEST_CASE("config show: a bad file gives every error, exit 1, nothing on stdout") {
  TempDir home;
  cfgtest::write(home.path / "def/smtpenv.dat", "prot=25\nport=99999\nrelay=yes\n");
  const std::string before = cfgtest::slurp(home.path / "def/smtpenv.dat");
  auto r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "show"});
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  const std::string file = (home.path / "def/smtpenv.dat").string();
  CHECK(r.err.find("warning: " + file + ":1: prot: unknown key 'prot'; did you mean 'port'?") !=
        std::string::npos);
  CHECK(r.err.find("error: " + file + ":2: port: 99999 is out of range") != std::string::npos);
  CHECK(r.err.find("error: " + file + ":3: relay: 'yes' is not 0 or 1") != std::string::npos);
  CHECK(cfgtest::slurp(home.path / "def/smtpenv.dat") == before);
}

TEST_CASE("config check: exit 0 when clean, 1 on errors, warnings printed") {
  TempDir home;
  write_setup_files(home.path, "127.0.0.1");
  auto r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "check"});
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(r.out == "configuration OK (0 warning(s))\n");

  // A warning alone does not fail.
  cfgtest::write(home.path / "def/smtpenv.dat",
                 "bind_address=127.0.0.1\nsend_permits_only_smtp_auth=0\n");
  r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "check"});
  CHECK(r.status == 0);
  CHECK(r.err.find("warning:") != std::string::npos);
  CHECK(r.err.find("send_permits_only_smtp_auth") != std::string::npos);

  // An open relay on all addresses is an error.
  cfgtest::write(home.path / "def/smtpenv.dat", "relay=1\n");
  r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "check"});
  CHECK(r.status == 1);
  CHECK(r.err.find("error: " + (home.path / "def/smtpenv.dat").string() + ": relay: relay=1") !=
        std::string::npos);

  // Load errors fail check too.
  cfgtest::write(home.path / "def/popenv.dat", "port=\x01\n");
  r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "check"});
  CHECK(r.status == 1);
  CHECK(r.err.find("popenv.dat:1:") != std::string::npos);
}

TEST_CASE("config set: checked as the loader reads it, comments kept, removed with no value") {
  TempDir home;
  write_setup_files(home.path, "127.0.0.1");
  const auto smtpenv = home.path / "def/smtpenv.dat";
  auto before = cfgtest::slurp(smtpenv);
  REQUIRE(before.find("\n#") != std::string::npos);  // the setup file has comments
  auto r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "set", "max_recipients", "7"});
  CHECK(r.status == 0);
  CHECK(r.out.find("smtpenv.dat: max_recipients=7") != std::string::npos);
  auto after = cfgtest::slurp(smtpenv);
  CHECK(after.find("\nmax_recipients=7") != std::string::npos);
  // Every other line kept: the comments of the setup file are still there.
  CHECK(after.find(before.substr(0, before.find('\n'))) == 0);
  r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "show"});
  CHECK(r.out.find("max_recipients=7  # smtpenv.dat\n") != std::string::npos);

  // A value the loader refuses: its file:line message, nothing written.
  r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "set", "port", "70000"});
  CHECK(r.status == 1);
  CHECK(r.err.find("smtpenv.dat:") != std::string::npos);
  CHECK(r.err.find("port") != std::string::npos);
  CHECK(cfgtest::slurp(smtpenv) == after);
  // A line break cannot go into a def line; an unknown key is named.
  r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "set", "domain", "a\nrelay=1"});
  CHECK(r.status == 1);
  CHECK(cfgtest::slurp(smtpenv) == after);
  r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "set", "no_such_key", "1"});
  CHECK(r.status == 1);
  CHECK(r.err.find("unknown key 'no_such_key'") != std::string::npos);

  // No value: the key's line goes and the default applies again.
  r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "set", "max_recipients"});
  CHECK(r.status == 0);
  CHECK(r.out.find("max_recipients removed") != std::string::npos);
  CHECK(cfgtest::slurp(smtpenv).find("max_recipients=") == std::string::npos);
  // A key of another file lands in that file.
  r = cfgtest::run(wizmail_bin(), {"--home", home.path.string(), "config", "set", "admin_port", "2580"});
  CHECK(r.status == 0);
  CHECK(cfgtest::slurp(home.path / "def/wiz98msenv.dat").find("\nadmin_port=2580") != std::string::npos);
}

TEST_CASE("config: no home, a missing home, and usage errors") {
  auto r = cfgtest::run(wizmail_bin(), {"config", "show"});
  CHECK(r.status != 0);
  CHECK(r.err.find("WIZ98MS_HOME") != std::string::npos);
  r = cfgtest::run(wizmail_bin(), {"--home", "/nonexistent/wizmail-home", "config", "check"});
  CHECK(r.status == 1);
  CHECK(r.err.find("does not exist") != std::string::npos);
  r = cfgtest::run(wizmail_bin(), {"config"});
  CHECK(r.status != 0);
  r = cfgtest::run(wizmail_bin(), {"config", "show", "--bogus"});
  CHECK(r.status != 0);
}

TEST_CASE("config reference prints the generated Markdown without a home") {
  auto r = cfgtest::run(wizmail_bin(), {"config", "reference"});
  CHECK(r.status == 0);
  CHECK(r.out == config_reference_markdown());
}
