// The Sendmail milter protocol, version 6, as bytes (docs/milter.md): no
// sockets, no clocks. Commands the MTA sends are encoded here; what a milter
// sends back is cut into packets by PacketReader and decoded by
// decode_reply()/decode_optneg(), which refuse every malformed packet (wrong
// length, missing NUL, unknown code, a reply code that is no 4xx/5xx).
//
// A packet: a 4-octet length in network order (the command octet and the
// data), the command octet, the data. Strings are NUL-terminated.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::milter {

inline constexpr std::uint32_t kVersion = 6;
// The longest packet we accept from a milter (a REPLBODY chunk is at most
// 64 KiB - 1 in practice; libmilter's own limit is 512 MiB, far too much).
inline constexpr std::uint32_t kMaxPacket = 1024 * 1024;
// Body chunks we send are at most this long (MILTER_CHUNK_SIZE).
inline constexpr std::size_t kChunk = 65535;

// Commands (MTA → milter).
namespace cmd {
inline constexpr char abort = 'A', body = 'B', connect = 'C', macro = 'D', eom = 'E', helo = 'H',
                      quit_nc = 'K', header = 'L', mail = 'M', eoh = 'N', optneg = 'O', quit = 'Q',
                      rcpt = 'R', data = 'T', unknown = 'U';
}

// Replies (milter → MTA).
namespace rep {
inline constexpr char addrcpt = '+', delrcpt = '-', addrcpt_par = '2', shutdown = '4', accept = 'a',
                      replbody = 'b', cont = 'c', discard = 'd', chgfrom = 'e', conn_fail = 'f',
                      addheader = 'h', insheader = 'i', setsymlist = 'l', chgheader = 'm',
                      progress = 'p', quarantine = 'q', reject = 'r', skip = 's', tempfail = 't',
                      replycode = 'y', optneg = 'O';
}

// Actions a milter may take (SMFIF_*), offered in the negotiation.
namespace act {
inline constexpr std::uint32_t addhdrs = 0x01, chgbody = 0x02, addrcpt = 0x04, delrcpt = 0x08,
                               chghdrs = 0x10, quarantine = 0x20, chgfrom = 0x40, addrcpt_par = 0x80,
                               setsymlist = 0x100;
inline constexpr std::uint32_t all = 0x1FF;
}

// Protocol steps a milter may leave out or not answer (SMFIP_*).
namespace proto {
inline constexpr std::uint32_t noconnect = 0x1, nohelo = 0x2, nomail = 0x4, norcpt = 0x8, nobody = 0x10,
                               nohdrs = 0x20, noeoh = 0x40, nr_hdr = 0x80, nounknown = 0x100,
                               nodata = 0x200, skip = 0x400, rcpt_rej = 0x800, nr_conn = 0x1000,
                               nr_helo = 0x2000, nr_mail = 0x4000, nr_rcpt = 0x8000, nr_data = 0x10000,
                               nr_unkn = 0x20000, nr_eoh = 0x40000, nr_body = 0x80000,
                               hdr_leadspc = 0x100000;
// What this client supports (everything but RCPT_REJ: rejected recipients
// are never shown to milters; no MDS_*: our chunks are 64 KiB).
inline constexpr std::uint32_t offered = 0x1FFFFF & ~rcpt_rej;
}

// Macro stages of SETSYMLIST / the negotiation.
enum class Stage : std::uint32_t { connect = 0, helo = 1, mail = 2, rcpt = 3, data = 4, eom = 5, eoh = 6 };
inline constexpr int kStages = 7;

using Macros = std::vector<std::pair<std::string, std::string>>;

// ---- encoding (MTA → milter) ----
std::string packet(char command, std::string_view data);
std::string encode_optneg(std::uint32_t version, std::uint32_t actions, std::uint32_t protocol);
// SMFIC_MACRO for the command `for_command` (e.g. cmd::mail).
std::string encode_macros(char for_command, const Macros& macros);
// family: '4', '6', 'L' (UNIX) or 'U' (unknown: no port, no address).
std::string encode_connect(std::string_view hostname, char family, std::uint16_t port, std::string_view address);
std::string encode_helo(std::string_view name);
// MAIL/RCPT: the address in <>, then each ESMTP argument.
std::string encode_envelope(char command, std::string_view address, const std::vector<std::string>& args);
std::string encode_header(std::string_view name, std::string_view value);
std::string encode_body(std::string_view chunk);  // at most kChunk octets
std::string encode_unknown(std::string_view line);
std::string encode_simple(char command);  // data, eoh, eom, abort, quit

// ---- decoding (milter → MTA) ----

// Cuts a byte stream into packets.
class PacketReader {
 public:
  struct Packet {
    char code = 0;
    std::string data;
  };
  void feed(std::string_view bytes) { buf_.append(bytes); }
  // A whole packet, nullopt when more bytes are needed, or an error (a
  // length of 0 or over kMaxPacket: the stream cannot be trusted further).
  Result<std::optional<Packet>> next();
  bool empty() const noexcept { return buf_.size() == pos_; }

 private:
  std::string buf_;
  std::size_t pos_ = 0;
};

struct Negotiated {
  std::uint32_t version = 0;
  std::uint32_t actions = 0;
  std::uint32_t protocol = 0;
  // Macro names a milter asked for per stage (SETSYMLIST in the
  // negotiation); nullopt: the defaults.
  std::optional<std::vector<std::string>> symlist[kStages];
};
// The milter's SMFIC_OPTNEG answer, checked against what we offered: a
// version below 2, or actions/protocol steps we did not offer, are errors.
Result<Negotiated> decode_optneg(const PacketReader::Packet& p, std::uint32_t offered_actions,
                                 std::uint32_t offered_protocol);

struct Reply {
  enum class Kind {
    accept, cont, reject, tempfail, discard, replycode, skip, progress, shutdown, conn_fail,
    // modifications (end of message only)
    addheader, chgheader, insheader, chgfrom, addrcpt, addrcpt_par, delrcpt, replbody, quarantine,
  };
  Kind kind = Kind::cont;
  std::string text;       // replycode: "550 5.7.1 text" (CRLF between lines); quarantine: reason
  std::string name;       // headers: field name
  std::string value;      // headers: field value; chgfrom/addrcpt*/delrcpt: the address
  std::string args;       // chgfrom/addrcpt_par: ESMTP arguments
  std::uint32_t index = 0;  // chgheader (1-based occurrence), insheader (position)
  std::string body;       // replbody: a chunk

  bool modification() const noexcept { return kind >= Kind::addheader; }
  // The final answer to a command (accept … conn_fail, not progress).
  bool final() const noexcept { return kind < Kind::progress || kind == Kind::shutdown || kind == Kind::conn_fail; }
};
Result<Reply> decode_reply(const PacketReader::Packet& p);

// A reply code line is usable when it is "4xx"/"5xx", optionally with an
// enhanced code "4.x.x"/"5.x.x" of the same class, then text; each line of a
// multi-line reply the same (libmilter's smfi_setmlreply).
bool valid_reply_code(std::string_view text) noexcept;

}  // namespace wizmail::milter
