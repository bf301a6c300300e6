#include "store/journal_record.hpp"

#include <array>
#include <cstring>

namespace wizmail::store::journal {

namespace fs = std::filesystem;

namespace {

std::uint32_t crc32c_soft(std::uint32_t crc, const unsigned char* p, std::size_t n) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  while (n--) crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) std::uint32_t crc32c_hw(std::uint32_t crc,
                                                          const unsigned char* p,
                                                          std::size_t n) {
  std::uint64_t c = ~crc & 0xffffffffu;
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return ~c32;
}
#endif

std::uint32_t head_crc(std::uint32_t payload_crc, const RecordHead& h) {
  return crc32c(payload_crc, reinterpret_cast<const char*>(&h) + 8, sizeof h - 8);
}

}  // namespace

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__)
  static const bool hw = __builtin_cpu_supports("sse4.2");
  if (hw) return crc32c_hw(crc, p, n);
#endif
  return crc32c_soft(crc, p, n);
}

std::size_t record_size(std::string_view name, std::span<const fs::path> maildirs,
                        std::uint64_t data_len) noexcept {
  std::size_t len = sizeof(RecordHead) + name.size() + static_cast<std::size_t>(data_len);
  for (const auto& d : maildirs) len += 4 + d.native().size();
  return (len + 7) & ~std::size_t{7};
}

char* lay_out_record(char* out, std::string_view name, std::span<const fs::path> maildirs,
                     std::uint64_t data_len) noexcept {
  RecordHead h{kRecordMagic, 0, 0, record_size(name, maildirs, data_len),
               static_cast<std::uint32_t>(name.size()),
               static_cast<std::uint32_t>(maildirs.size()), data_len};
  std::memcpy(out, &h, sizeof h);
  char* q = out + sizeof h;
  std::memcpy(q, name.data(), name.size());
  q += name.size();
  for (const auto& d : maildirs) {
    auto n = static_cast<std::uint32_t>(d.native().size());
    std::memcpy(q, &n, 4);
    std::memcpy(q + 4, d.native().data(), n);
    q += 4 + n;
  }
  return q;
}

std::uint32_t payload_crc(const char* record) noexcept {
  RecordHead h;
  std::memcpy(&h, record, sizeof h);
  return crc32c(0, record + sizeof h, static_cast<std::size_t>(h.len) - sizeof h);
}

void seal_record(char* record, std::uint64_t seq, std::uint32_t payload_crc) noexcept {
  RecordHead h;
  std::memcpy(&h, record, sizeof h);
  h.seq = seq;
  h.crc = head_crc(payload_crc, h);
  std::memcpy(record, &h, sizeof h);
}

std::string encode_record(std::string_view name, std::span<const fs::path> maildirs,
                          std::string_view data, std::uint64_t seq) {
  std::string out(record_size(name, maildirs, data.size()), '\0');
  char* q = lay_out_record(out.data(), name, maildirs, data.size());
  std::memcpy(q, data.data(), data.size());
  seal_record(out.data(), seq, payload_crc(out.data()));
  return out;
}

std::optional<std::uint64_t> record_length(std::string_view head, std::uint64_t seq,
                                           std::uint64_t room) noexcept {
  RecordHead h;
  if (head.size() < sizeof h) return std::nullopt;
  std::memcpy(&h, head.data(), sizeof h);
  if (h.magic != kRecordMagic || h.seq != seq || h.len < sizeof h || h.len % 8 != 0 ||
      h.len > room)
    return std::nullopt;
  return h.len;
}

std::optional<Record> parse_record(std::string_view bytes, std::uint64_t seq) {
  auto len = record_length(bytes, seq, bytes.size());
  if (!len) return std::nullopt;
  RecordHead h;
  std::memcpy(&h, bytes.data(), sizeof h);
  std::string_view payload = bytes.substr(sizeof h, static_cast<std::size_t>(*len) - sizeof h);
  if (head_crc(crc32c(0, payload.data(), payload.size()), h) != h.crc) return std::nullopt;
  Record r;
  r.len = *len;
  std::size_t pos = 0;
  auto take = [&](std::uint64_t n) -> std::optional<std::string_view> {
    if (n > payload.size() - pos) return std::nullopt;
    std::string_view v = payload.substr(pos, static_cast<std::size_t>(n));
    pos += static_cast<std::size_t>(n);
    return v;
  };
  auto name = take(h.name_len);
  if (!name) return std::nullopt;
  r.name = *name;
  for (std::uint32_t i = 0; i < h.ndirs; ++i) {
    auto l = take(4);
    if (!l) return std::nullopt;
    std::uint32_t n;
    std::memcpy(&n, l->data(), 4);
    auto d = take(n);
    if (!d) return std::nullopt;
    r.maildirs.emplace_back(std::string(*d));
  }
  auto data = take(h.data_len);
  if (!data) return std::nullopt;
  r.data = *data;
  // A name is one path component: never a way out of new/.
  if (r.name.empty() || r.name.find('/') != std::string::npos || r.name[0] == '.')
    return std::nullopt;
  return r;
}

}  // namespace wizmail::store::journal
