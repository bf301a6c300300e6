#include "wizmail/admin/monitor.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

#include "util/strings.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/mailbox.hpp"
#include "wizmail/queue.hpp"

namespace wizmail {

Result<ActivitySnapshot> collect_activity(const Config& config) {
  ActivitySnapshot s;
  s.taken_at = static_cast<std::int64_t>(std::time(nullptr));
  s.totals.account = "total";
  AccountStore store(config.mailbox_dir());
  auto names = store.list();
  if (!names) return unexpected(names.error());
  s.accounts.reserve(names->size());
  for (const auto& n : *names) {
    AccountActivity a;
    a.account = n;
    auto dir = store.account_dir(n);
    if (!dir) {
      a.error = dir.error().message;
    } else {
      Mailbox mb(*dir);
      if (auto t = mb.totals()) {
        a.messages = t->messages;
        a.bytes = t->bytes;
      } else {
        a.error = t.error().message;
      }
      if (auto c = mb.counters()) {
        a.sent = c->sent;
        a.received = c->received;
        a.deleted = c->deleted;
      } else if (a.error.empty()) {
        a.error = c.error().message;
      }
    }
    s.totals.messages += a.messages;
    s.totals.bytes += a.bytes;
    s.totals.sent += a.sent;
    s.totals.received += a.received;
    s.totals.deleted += a.deleted;
    s.accounts.push_back(std::move(a));
  }
  RelayQueue q(config.queue_dir(), config.node);
  if (auto ids = q.list()) s.queue_length = static_cast<std::int64_t>(ids->size());
  return s;
}

std::string_view to_string(ActivitySort s) noexcept {
  switch (s) {
    case ActivitySort::account: return "account";
    case ActivitySort::messages: return "messages";
    case ActivitySort::bytes: return "bytes";
    case ActivitySort::sent: return "sent";
    case ActivitySort::received: return "received";
    case ActivitySort::deleted: return "deleted";
  }
  return "account";
}

std::optional<ActivitySort> parse_activity_sort(std::string_view s) {
  auto l = util::to_lower(s);
  if (l == "account" || l == "name") return ActivitySort::account;
  if (l == "messages") return ActivitySort::messages;
  if (l == "bytes" || l == "size") return ActivitySort::bytes;
  if (l == "sent") return ActivitySort::sent;
  if (l == "received") return ActivitySort::received;
  if (l == "deleted") return ActivitySort::deleted;
  return std::nullopt;
}

namespace {

std::uint64_t field(const AccountActivity& a, ActivitySort by) {
  switch (by) {
    case ActivitySort::messages: return a.messages;
    case ActivitySort::bytes: return a.bytes;
    case ActivitySort::sent: return a.sent;
    case ActivitySort::received: return a.received;
    case ActivitySort::deleted: return a.deleted;
    case ActivitySort::account: break;
  }
  return 0;
}

// Printable ASCII only (error texts may carry file names).
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  return out;
}

std::string pad_left(std::string s, std::size_t w) {
  if (s.size() < w) s.insert(0, w - s.size(), ' ');
  return s;
}
std::string pad_right(std::string s, std::size_t w) {
  if (s.size() > w) s.resize(w);
  if (s.size() < w) s.append(w - s.size(), ' ');
  return s;
}

constexpr std::size_t num_w = 12;

std::string row_text(const AccountActivity& a, std::size_t name_w) {
  std::string line = pad_right(printable(a.account), name_w);
  for (auto v : {a.messages, a.bytes, a.sent, a.received, a.deleted}) line += pad_left(std::to_string(v), num_w);
  if (!a.error.empty()) line += "  ! " + printable(a.error);
  return line;
}

std::string header_text(std::size_t name_w, ActivitySort sort, bool desc, bool keys) {
  static const char* names[] = {"account", "messages", "bytes", "sent", "received", "deleted"};
  std::string line;
  for (int i = 0; i < 6; ++i) {
    std::string h = keys ? std::to_string(i + 1) + ":" + names[i] : names[i];
    if (static_cast<int>(sort) == i && keys) h += desc ? "v" : "^";
    line += i == 0 ? pad_right(h, name_w) : pad_left(h, num_w);
  }
  return line;
}

std::size_t name_width(const std::vector<AccountActivity>& rows) {
  std::size_t w = 12;
  for (const auto& r : rows) w = std::max(w, r.account.size() + 2);
  return std::min<std::size_t>(w, 66);
}

}  // namespace

void sort_activity(std::vector<AccountActivity>& rows, ActivitySort by, bool descending) {
  std::stable_sort(rows.begin(), rows.end(), [&](const AccountActivity& x, const AccountActivity& y) {
    if (by != ActivitySort::account) {
      auto fx = field(x, by), fy = field(y, by);
      if (fx != fy) return descending ? fx > fy : fx < fy;
      return x.account < y.account;
    }
    return descending ? x.account > y.account : x.account < y.account;
  });
}

std::optional<std::size_t> find_account(std::span<const AccountActivity> rows, std::string_view query,
                                        std::size_t from) {
  if (query.empty() || rows.empty()) return std::nullopt;
  auto q = util::to_lower(query);
  std::size_t n = rows.size();
  from %= n;
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t k = (from + i) % n;
    if (rows[k].account.starts_with(q)) return k;
  }
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t k = (from + i) % n;
    if (rows[k].account.find(q) != std::string::npos) return k;
  }
  return std::nullopt;
}

std::string activity_json(const ActivitySnapshot& s) {
  using Json = nlohmann::ordered_json;
  auto obj = [](const AccountActivity& a, bool with_name) {
    Json o = Json::object();
    if (with_name) o["account"] = a.account;
    o["messages"] = a.messages;
    o["bytes"] = a.bytes;
    o["sent"] = a.sent;
    o["received"] = a.received;
    o["deleted"] = a.deleted;
    if (with_name && !a.error.empty()) o["error"] = a.error;
    return o;
  };
  auto accounts = Json::array();
  for (const auto& a : s.accounts) accounts.push_back(obj(a, true));
  Json out{{"time", s.taken_at}, {"accounts", std::move(accounts)}, {"totals", obj(s.totals, false)}};
  out["queue_length"] = s.queue_length < 0 ? Json(nullptr) : Json(s.queue_length);
  return out.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

std::string activity_table(const ActivitySnapshot& s) {
  auto w = name_width(s.accounts);
  std::string out = header_text(w, ActivitySort::account, false, false) + "\n";
  for (const auto& a : s.accounts) out += row_text(a, w) + "\n";
  out += row_text(s.totals, w) + "\n";
  out += "accounts " + std::to_string(s.accounts.size()) + ", queue " +
         (s.queue_length < 0 ? std::string("?") : std::to_string(s.queue_length)) + "\n";
  return out;
}

// ---------------------------------------------------------------------------

std::vector<MonitorView::Input> MonitorView::decode_keys(std::string& pending, std::string_view bytes) {
  pending.append(bytes);
  std::vector<Input> out;
  std::size_t i = 0;
  while (i < pending.size()) {
    char c = pending[i];
    if (c == '\x1b') {
      if (i + 1 >= pending.size()) break;  // maybe the start of a sequence
      char c1 = pending[i + 1];
      if (c1 != '[' && c1 != 'O') {  // a lone ESC followed by a key
        out.push_back({Key::escape, 0});
        ++i;
        continue;
      }
      // CSI: ESC [ params final (final in 0x40–0x7E).
      std::size_t j = i + 2;
      while (j < pending.size() && (pending[j] < 0x40 || pending[j] > 0x7e)) ++j;
      if (j >= pending.size()) {
        if (j - i > 32) i = j;  // garbage without an end: drop it
        break;
      }
      if (j - i > 32) {  // too long to be a key: ignore it
        i = j + 1;
        continue;
      }
      std::string_view seq(pending.data() + i + 2, j - i - 1);
      Key k = Key::none;
      if (seq == "A") k = Key::up;
      else if (seq == "B") k = Key::down;
      else if (seq == "H" || seq == "1~" || seq == "7~") k = Key::home;
      else if (seq == "F" || seq == "4~" || seq == "8~") k = Key::end;
      else if (seq == "5~") k = Key::page_up;
      else if (seq == "6~") k = Key::page_down;
      if (k != Key::none) out.push_back({k, 0});
      i = j + 1;
      continue;
    }
    if (c == '\r' || c == '\n') out.push_back({Key::enter, 0});
    else if (c == 0x7f || c == 0x08) out.push_back({Key::backspace, 0});
    else if (static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f)
      out.push_back({Key::character, c});
    ++i;
  }
  pending.erase(0, i);
  return out;
}

std::vector<MonitorView::Input> MonitorView::flush_keys(std::string& pending) {
  std::vector<Input> out;
  if (pending == "\x1b") out.push_back({Key::escape, 0});
  pending.clear();
  return out;
}

void MonitorView::set_snapshot(ActivitySnapshot s) {
  std::string at = cursor_ < snap_.accounts.size() ? snap_.accounts[cursor_].account : std::string();
  snap_ = std::move(s);
  resort();
  cursor_ = 0;
  if (!at.empty()) {
    for (std::size_t i = 0; i < snap_.accounts.size(); ++i)
      if (snap_.accounts[i].account == at) cursor_ = i;
  }
}

void MonitorView::set_size(int rows, int cols) {
  rows_ = std::max(rows, 6);
  cols_ = std::max(cols, 20);
}

int MonitorView::table_rows() const { return rows_ - 4; }  // title, header, totals, status

void MonitorView::resort() {
  std::string at = cursor_ < snap_.accounts.size() ? snap_.accounts[cursor_].account : std::string();
  sort_activity(snap_.accounts, sort_, descending_);
  for (std::size_t i = 0; i < snap_.accounts.size(); ++i)
    if (snap_.accounts[i].account == at) cursor_ = i;
}

void MonitorView::search(bool next) {
  const std::string& q = next ? last_query_ : query_;
  if (q.empty()) {
    message_ = "no search yet: press / and type a name";
    return;
  }
  auto found = find_account(snap_.accounts, q, next ? cursor_ + 1 : cursor_);
  if (found) {
    cursor_ = *found;
    message_ = "found " + snap_.accounts[*found].account;
  } else {
    message_ = "no account matches \"" + q + "\"";
  }
}

bool MonitorView::handle(const Input& in) {
  const std::size_t n = snap_.accounts.size();
  const std::size_t page = static_cast<std::size_t>(std::max(1, table_rows()));
  if (searching_) {
    switch (in.key) {
      case Key::enter:
        searching_ = false;
        last_query_ = query_;
        search(false);
        break;
      case Key::escape:
        searching_ = false;
        message_.clear();
        break;
      case Key::backspace:
        if (!query_.empty()) query_.pop_back();
        break;
      case Key::character:
        if (query_.size() < 64) query_ += in.ch;
        break;
      default: break;
    }
    return true;
  }
  switch (in.key) {
    case Key::up: if (cursor_ > 0) --cursor_; break;
    case Key::down: if (cursor_ + 1 < n) ++cursor_; break;
    case Key::page_up: cursor_ = cursor_ > page ? cursor_ - page : 0; break;
    case Key::page_down: cursor_ = n == 0 ? 0 : std::min(n - 1, cursor_ + page); break;
    case Key::home: cursor_ = 0; break;
    case Key::end: cursor_ = n == 0 ? 0 : n - 1; break;
    case Key::character:
      if (in.ch == 'q' || in.ch == 'Q') return false;
      if (in.ch >= '1' && in.ch <= '6') {
        auto s = static_cast<ActivitySort>(in.ch - '1');
        if (s == sort_) {
          descending_ = !descending_;
        } else {
          sort_ = s;
          descending_ = s != ActivitySort::account;  // biggest first for numbers
        }
        resort();
        message_ = std::string("sorted by ") + std::string(to_string(sort_)) +
                   (descending_ ? ", descending" : ", ascending");
      } else if (in.ch == 'r') {
        descending_ = !descending_;
        resort();
      } else if (in.ch == '/') {
        searching_ = true;
        query_.clear();
      } else if (in.ch == 'n') {
        search(true);
      } else if (in.ch == 'k') {
        if (cursor_ > 0) --cursor_;
      } else if (in.ch == 'j') {
        if (cursor_ + 1 < n) ++cursor_;
      }
      break;
    default: break;
  }
  return true;
}

std::string MonitorView::render() const {
  const auto cols = static_cast<std::size_t>(cols_);
  auto clip = [&](std::string s) {
    if (s.size() > cols) s.resize(cols);
    return s;
  };
  const std::size_t n = snap_.accounts.size();
  const auto visible = static_cast<std::size_t>(std::max(1, table_rows()));
  // Keep the cursor on screen; `top_` is a view detail recomputed here.
  std::size_t top = top_;
  if (cursor_ < top) top = cursor_;
  if (cursor_ >= top + visible) top = cursor_ + 1 - visible;
  if (top + visible > n) top = n > visible ? n - visible : 0;
  top_ = top;

  std::string out = "\x1b[H\x1b[2J";
  char when[32] = "";
  std::time_t t = static_cast<std::time_t>(snap_.taken_at);
  std::tm tm{};
  if (::localtime_r(&t, &tm)) std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  out += "\x1b[1m" + clip("wizmail monitor  " + std::string(when) + "  accounts " + std::to_string(n) +
                          "  queue " +
                          (snap_.queue_length < 0 ? std::string("?") : std::to_string(snap_.queue_length))) +
         "\x1b[0m\r\n";
  auto w = name_width(snap_.accounts);
  out += "\x1b[4m" + clip(header_text(w, sort_, descending_, true)) + "\x1b[0m\r\n";
  for (std::size_t r = 0; r < visible; ++r) {
    std::size_t i = top + r;
    if (i < n) {
      auto line = clip(row_text(snap_.accounts[i], w));
      out += i == cursor_ ? "\x1b[7m" + line + "\x1b[0m" : line;
    }
    out += "\x1b[K\r\n";
  }
  out += "\x1b[1m" + clip(row_text(snap_.totals, w)) + "\x1b[0m\r\n";
  if (searching_)
    out += clip("search: " + query_) + "\x1b[K";
  else
    out += clip(message_.empty() ? "1-6 sort (again: reverse)  r reverse  / search  n next  arrows move  q quit"
                                 : printable(message_)) +
           "\x1b[K";
  return out;
}

}  // namespace wizmail
