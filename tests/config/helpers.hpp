// Shared by the config tests: temporary homes, file writing, running the CLI,
// and a minimal JSON validator.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "temp_dir.hpp"

extern char** environ;

namespace cfgtest {

namespace fs = std::filesystem;

// A temporary directory removed when the object dies; a test that took the
// permissions of the folder away gets them back first, so it can go.
struct TempDir {
  wizmail::test::TempDir dir{"wizmail-cfg"};
  fs::path path = dir.path();
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
  }
};

inline void write(const fs::path& p, std::string_view data) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  REQUIRE(f.good());
}

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct RunResult {
  int status = -1;  // exit code, or -1 when killed
  std::string out;
  std::string err;
};

// Run `program` with `args`, WIZ98MS_HOME removed from (or set in) the environment.
inline RunResult run(const fs::path& program, const std::vector<std::string>& args,
                     const std::string& home_env = {}) {
  TempDir io;
  auto out_path = io.path / "out", err_path = io.path / "err";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string_view v(*e);
    if (!v.starts_with("WIZ98MS_HOME=")) env_store.emplace_back(v);
  }
  if (!home_env.empty()) env_store.push_back("WIZ98MS_HOME=" + home_env);
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_store{program.string()};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_store) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, program.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0) {
    REQUIRE(errno == EINTR);
  }
  RunResult r;
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

inline fs::path build_dir() {
  const char* b = std::getenv("WIZMAIL_BUILD_DIR");
  REQUIRE_MESSAGE(b != nullptr, "WIZMAIL_BUILD_DIR is not set (run through meson test)");
  return b;
}

inline fs::path source_dir() {
  const char* s = std::getenv("WIZMAIL_SOURCE_DIR");
  REQUIRE_MESSAGE(s != nullptr, "WIZMAIL_SOURCE_DIR is not set (run through meson test)");
  return s;
}

// A strict validator for the JSON subset show_config_json emits (RFC 8259
// grammar; numbers, strings with escapes, arrays, objects, literals).
class JsonChecker {
 public:
  explicit JsonChecker(std::string_view s) : s_(s) {}
  bool valid() {
    ws();
    if (!value()) return false;
    ws();
    return i_ == s_.size();
  }

 private:
  std::string_view s_;
  std::size_t i_ = 0;
  int depth_ = 0;
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r'))
      ++i_;
  }
  bool lit(std::string_view l) {
    if (s_.substr(i_, l.size()) != l) return false;
    i_ += l.size();
    return true;
  }
  bool string() {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    while (i_ < s_.size()) {
      auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) return false;
        char e = s_[i_];
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k)
            if (i_ + k >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_ + k])))
              return false;
          i_ += 5;
          continue;
        }
        if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) return false;
      }
      ++i_;
    }
    return false;
  }
  bool number() {
    std::size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[i_]))) return false;
    if (s_[i_] == '0' && i_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_ + 1])))
      return false;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    return i_ > start;
  }
  bool value() {
    if (++depth_ > 64) return false;
    ws();
    bool ok = false;
    if (i_ >= s_.size()) ok = false;
    else if (s_[i_] == '{') ok = container('}', true);
    else if (s_[i_] == '[') ok = container(']', false);
    else if (s_[i_] == '"') ok = string();
    else if (s_[i_] == 't') ok = lit("true");
    else if (s_[i_] == 'f') ok = lit("false");
    else if (s_[i_] == 'n') ok = lit("null");
    else ok = number();
    --depth_;
    return ok;
  }
  bool container(char close, bool object) {
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == close) {
      ++i_;
      return true;
    }
    while (true) {
      ws();
      if (object) {
        if (!string()) return false;
        ws();
        if (i_ >= s_.size() || s_[i_] != ':') return false;
        ++i_;
      }
      if (!value()) return false;
      ws();
      if (i_ >= s_.size()) return false;
      if (s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (s_[i_] == close) {
        ++i_;
        return true;
      }
      return false;
    }
  }
};

inline bool valid_json(std::string_view s) { return JsonChecker(s).valid(); }

}  // namespace cfgtest
