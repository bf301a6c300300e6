// The monitor (SPEC §10, the manual's wmsmonitor): per account — messages,
// bytes, sent, received, deleted — with totals, sorting and the manual's
// account search ("find the account in the table and move the cursor to it").
//
// collect_activity() reads no message body: per account one readdir of new/
// and cur/ (sizes come from the ",S=" part of Maildir names) and the small
// counters file. MonitorView is the terminal screen as a pure model: keys in,
// text out (ANSI escape codes), so it is tested without a terminal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/config.hpp"
#include "wizmail/error.hpp"

namespace wizmail {

struct AccountActivity {
  std::string account;
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t deleted = 0;
  std::string error;  // non-empty when the account could not be read
};

struct ActivitySnapshot {
  std::vector<AccountActivity> accounts;  // sorted by name
  AccountActivity totals;                 // account = "total"
  std::int64_t queue_length = -1;         // entries in resendmail/; -1 when unknown
  std::int64_t taken_at = 0;              // unix seconds
};

// Every account of the home's mailbox folder.
Result<ActivitySnapshot> collect_activity(const Config& config);

enum class ActivitySort { account, messages, bytes, sent, received, deleted };
std::string_view to_string(ActivitySort s) noexcept;
// "account"/"name", "messages", "bytes"/"size", "sent", "received", "deleted".
std::optional<ActivitySort> parse_activity_sort(std::string_view s);

// Stable sort; ties by account name (ascending).
void sort_activity(std::vector<AccountActivity>& rows, ActivitySort by, bool descending);

// The manual's account search: the first row at or after `from` (wrapping
// around) whose name starts with `query`, else the first that contains it;
// case-insensitive. nullopt when none matches or the query is empty.
std::optional<std::size_t> find_account(std::span<const AccountActivity> rows, std::string_view query,
                                        std::size_t from = 0);

// `wizmail monitor --once --json`.
std::string activity_json(const ActivitySnapshot& s);
// `wizmail monitor --once`: a plain table (no escape codes).
std::string activity_table(const ActivitySnapshot& s);

// The full-screen view.
class MonitorView {
 public:
  enum class Key {
    none, up, down, page_up, page_down, home, end, enter, escape, backspace, character,
  };
  struct Input {
    Key key = Key::none;
    char ch = 0;  // Key::character
  };
  // Decode terminal input bytes (ESC [ A, ESC [ 5 ~, ...) into keys; an
  // incomplete escape sequence stays in `pending` for the next call.
  static std::vector<Input> decode_keys(std::string& pending, std::string_view bytes);
  // No more input came for a while: a lone ESC left pending was the Escape
  // key; anything else pending is dropped.
  static std::vector<Input> flush_keys(std::string& pending);

  void set_snapshot(ActivitySnapshot s);
  void set_size(int rows, int cols);
  // Returns false when the user asked to quit.
  bool handle(const Input& in);
  // The whole screen: clear, header, table, status line.
  std::string render() const;

  ActivitySort sort() const noexcept { return sort_; }
  bool descending() const noexcept { return descending_; }
  std::size_t cursor() const noexcept { return cursor_; }
  const std::vector<AccountActivity>& rows() const noexcept { return snap_.accounts; }
  bool searching() const noexcept { return searching_; }
  const std::string& message() const noexcept { return message_; }

 private:
  void resort();
  void search(bool next);
  int table_rows() const;

  ActivitySnapshot snap_;
  ActivitySort sort_ = ActivitySort::account;
  bool descending_ = false;
  std::size_t cursor_ = 0;
  mutable std::size_t top_ = 0;  // first visible row (render() keeps the cursor on screen)
  int rows_ = 24, cols_ = 80;
  bool searching_ = false;
  std::string query_, last_query_;
  std::string message_;
};

}  // namespace wizmail
