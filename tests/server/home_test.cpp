#include "wizmail/home.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <map>

#include "loopback.hpp"
#include "temp_dir.hpp"
#include "util/fs.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/config.hpp"

namespace fs = std::filesystem;
using namespace wizmail;
using wizmail::test::TempDir;

namespace {

// Every file and folder under `root` with its contents and mode.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto& e : fs::recursive_directory_iterator(root)) {
    struct stat st{};
    REQUIRE(::lstat(e.path().c_str(), &st) == 0);
    std::string v = std::to_string(st.st_mode);
    if (e.is_regular_file()) v += ":" + util::read_file(e.path()).value();
    out[fs::relative(e.path(), root).string()] = v;
  }
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

TEST_CASE("make_home makes a home a Server runs on, and it takes mail over loopback") {
  TempDir tmp("wizmail-home");
  const fs::path home = tmp.path() / "home";  // does not exist yet
  HomeOptions o;
  o.bind_address = {"127.0.0.1"};
  o.domain = "example.test";
  o.smtp_port = 2525;
  auto made = make_home(home, o);
  REQUIRE_MESSAGE(made, (made ? "" : made.error().message));
  CHECK(made->home == fs::absolute(home));
  CHECK(made->def_written.size() == 3);
  CHECK(made->def_kept.empty());
  // The SRS secret: made with the home, mode 0600.
  CHECK(made->srs_secret_written);
  struct stat secret_st {};
  REQUIRE(::stat((home / "def" / "srs.secret").c_str(), &secret_st) == 0);
  CHECK((secret_st.st_mode & 0777) == 0600);
  CHECK(secret_st.st_size == 33);
  REQUIRE(made->accounts.size() == 4);
  AccountStore store(home / "mailbox");
  std::vector<std::string> passwords;
  for (const auto& a : made->accounts) {
    CHECK(a.created);
    CHECK(a.password.size() == 16);
    // The password reported is the account's.
    CHECK(store.authenticate(a.name, a.password).value());
    passwords.push_back(a.password);
  }
  std::sort(passwords.begin(), passwords.end());
  CHECK(std::unique(passwords.begin(), passwords.end()) == passwords.end());
  for (const char* d : {"def", "mailbox", "resendmail", "deadmail", "dustbox", "var/log", "var/run", "var/trace"})
    CHECK(fs::is_directory(home / d));
  CHECK(fs::exists(home / "mailbox" / "forward" / "forward.def"));
  // Safe values (SPEC §2) and the options given.
  auto smtp = util::read_file(home / "def" / "smtpenv.dat").value();
  CHECK(smtp.find("\nrelay=0\n") != std::string::npos);
  CHECK(smtp.find("\nsend_permits_only_smtp_auth=1\n") != std::string::npos);
  CHECK(smtp.find("\nport=2525\n") != std::string::npos);
  auto cfg = load_config(home);
  REQUIRE(cfg);
  CHECK((*cfg)->server.domain == "example.test");

  // The server runs on it (ports chosen at run time) and delivers.
  test::RunningServer srv(home);
  auto r = test::send_message(srv.port(), "someone@remote.example", {"postmaster@example.test"},
                              "Subject: first mail\r\n\r\nhello");
  CHECK(r.substr(0, 3) == "250");
  std::size_t n = 0;
  for (auto& e : fs::directory_iterator(home / "mailbox" / "postmaster" / "new")) {
    ++n;
    CHECK(util::read_file(e.path()).value().find("Subject: first mail") != std::string::npos);
  }
  CHECK(n == 1);
  // An address of another domain is not relayed (relay=0, AUTH-only).
  CHECK(test::send_message(srv.port(), "someone@remote.example", {"x@elsewhere.example"}, "x").substr(0, 16) ==
        "RCPT refused: 55");
}

TEST_CASE("make_home over an existing home adds what is missing and clobbers nothing") {
  TempDir tmp("wizmail-home");
  const fs::path home = tmp.path();
  HomeOptions o;
  o.password = "first-pw";
  REQUIRE(make_home(home, o));
  // The administrator's changes: an account, a note in a def file, mail.
  AccountStore store(home / "mailbox");
  REQUIRE(store.create("alice", "pw"));
  {
    std::ofstream(home / "def" / "smtpenv.dat", std::ios::app) << "# a local note\n";
    std::ofstream(home / "mailbox" / "alice" / "new" / "1.m1.host") << "Subject: keep\r\n\r\nx\r\n";
  }
  const auto before = snapshot(home);

  SUBCASE("nothing missing: nothing changes, options for kept files are reported unapplied") {
    HomeOptions again;
    again.smtp_port = 2626;
    again.domain = "other.example";
    again.password = "second-pw";
    auto made = make_home(home, again);
    REQUIRE(made);
    CHECK(snapshot(home) == before);
    CHECK(made->def_written.empty());
    CHECK_FALSE(made->srs_secret_written);  // kept: its addresses must still reverse
    CHECK(made->def_kept.size() == 3);
    CHECK(has(made->options_not_applied, "smtpenv.dat"));
    CHECK(has(made->options_not_applied, "wiz98msenv.dat"));
    CHECK_FALSE(has(made->options_not_applied, "popenv.dat"));
    for (const auto& a : made->accounts) {
      CHECK_FALSE(a.created);
      CHECK(a.password.empty());
    }
    CHECK(store.authenticate("postmaster", "first-pw").value());
  }
  SUBCASE("missing parts are made again; the rest stays as it was") {
    fs::remove_all(home / "var");
    fs::remove(home / "def" / "popenv.dat");
    fs::remove_all(home / "mailbox" / "notifi");
    HomeOptions again;
    again.pop_port = 1111;
    auto made = make_home(home, again);
    REQUIRE(made);
    CHECK(made->def_written == std::vector<std::string>{"popenv.dat"});
    CHECK(util::read_file(home / "def" / "popenv.dat").value().find("\nport=1111\n") != std::string::npos);
    CHECK(fs::is_directory(home / "var" / "trace"));
    for (const auto& a : made->accounts) CHECK(a.created == (a.name == "notifi"));
    auto after = snapshot(home);
    for (const auto& [path, v] : before)
      if (!path.starts_with("var") && !path.starts_with("mailbox/notifi") && path != "def/popenv.dat")
        CHECK_MESSAGE(after[path] == v, path);
  }
}

TEST_CASE("make_home checks everything before it touches the disk") {
  TempDir tmp("wizmail-home");
  const fs::path home = tmp.path() / "home";
  auto refused = [&](HomeOptions o, std::string_view starts) {
    auto made = make_home(home, o);
    REQUIRE_FALSE(made);
    CHECK(made.error().code == Errc::invalid_argument);
    CHECK_MESSAGE(made.error().message.starts_with(starts), made.error().message);
    CHECK_FALSE(fs::exists(home));
  };
  HomeOptions bind;
  bind.bind_address = {"127.0.0.1", "999.1.1.1"};
  refused(bind, "bind_address: 999.1.1.1");
  HomeOptions domain;
  domain.domain = "a/../b";
  refused(domain, "domain: ");
  HomeOptions pw;
  pw.password = "{CRYPT}$6$x";
  refused(pw, "password: ");
  HomeOptions port;
  port.pop_port = 70000;
  refused(port, "pop_port: ");

  SUBCASE("a broken existing configuration: nothing is changed") {
    REQUIRE(make_home(home));
    std::ofstream(home / "def" / "smtpenv.dat", std::ios::app) << "port=notanumber\n";
    fs::remove_all(home / "var");
    const auto before = snapshot(home);
    auto made = make_home(home);
    REQUIRE_FALSE(made);
    CHECK(made.error().code == Errc::parse);
    CHECK(made.error().message.find("smtpenv.dat") != std::string::npos);
    CHECK(snapshot(home) == before);
  }
  SUBCASE("a file as the home") {
    std::ofstream(home) << "x";
    auto made = make_home(home);
    REQUIRE_FALSE(made);
    CHECK(made.error().message.find("not a directory") != std::string::npos);
  }
}
