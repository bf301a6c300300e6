// Private: one record of the delivery journal (store/delivery_journal.hpp)
// as octets, without I/O, so that the writer, the recovery reader, the tests
// and the fuzz target (tests/fuzz/journal_record.cpp) share one layout.
//
//   head (40 octets, host byte order)  magic, crc, seq, len, name_len, ndirs, data_len
//   name                               name_len octets
//   ndirs × (u32 length, path)         the target Maildirs
//   data                               data_len octets
//   zero padding                       to len, a multiple of 8
//
// crc = crc32c(everything after the head), continued over the head fields
// after `crc`; so the payload's CRC can be computed before the sequence
// number is known.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wizmail::store::journal {

inline constexpr std::uint32_t kRecordMagic = 0x52434a57;  // "WJCR"

struct RecordHead {
  std::uint32_t magic;
  std::uint32_t crc;  // crc32c(payload), continued over the head fields after `crc`
  std::uint64_t seq;
  std::uint64_t len;  // the whole record, head included, a multiple of 8
  std::uint32_t name_len;
  std::uint32_t ndirs;
  std::uint64_t data_len;
};
static_assert(sizeof(RecordHead) == 40);

// CRC32C (Castagnoli), in hardware when the CPU has SSE 4.2.
std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n);

// Octets of the record for these fields, padding included.
std::size_t record_size(std::string_view name, std::span<const std::filesystem::path> maildirs,
                        std::uint64_t data_len) noexcept;
// Lay out a record in `out` (record_size() octets, zero-filled): the head
// with sequence and CRC still 0, the name and the Maildirs. Returns where
// its data_len octets of data go.
char* lay_out_record(char* out, std::string_view name,
                     std::span<const std::filesystem::path> maildirs, std::uint64_t data_len) noexcept;
// The CRC of a laid-out record's payload (everything after the head).
std::uint32_t payload_crc(const char* record) noexcept;
// Give a laid-out record its sequence number and its CRC.
void seal_record(char* record, std::uint64_t seq, std::uint32_t payload_crc) noexcept;
// A whole record at once (tests, fuzzing).
std::string encode_record(std::string_view name, std::span<const std::filesystem::path> maildirs,
                          std::string_view data, std::uint64_t seq);

// The length of the record starting with `head` (at least sizeof(RecordHead)
// octets) if it can be the record `seq` with `room` octets left in the
// ring: magic, sequence, a length that is a multiple of 8, holds a head
// and fits. nullopt otherwise (a torn, stale or foreign record).
std::optional<std::uint64_t> record_length(std::string_view head, std::uint64_t seq,
                                           std::uint64_t room) noexcept;

struct Record {
  std::uint64_t len = 0;
  std::string name;  // one path component: not empty, no '/', not starting with '.'
  std::vector<std::filesystem::path> maildirs;
  std::string data;
};
// Parse the record `seq` from `bytes` (its record_length() octets or more;
// what follows is ignored). nullopt when it is not exactly that record:
// the head (as record_length), the CRC, fields that overrun the record, or
// a name that could leave new/.
std::optional<Record> parse_record(std::string_view bytes, std::uint64_t seq);

}  // namespace wizmail::store::journal
