// Internationalised domain names (SMTPUTF8, RFC 6531): one comparable form
// for a domain however the client wrote it.
//
// libidn2 does the work (Debian's libidn2-dev): UTS #46 mapping (which
// folds case, "MÜNCHEN" → "münchen"), NFC normalisation and IDNA2008
// validation are tables of Unicode data that must not be hand-written.
#pragma once

#include <string>
#include <string_view>

#include "wizmail/error.hpp"

namespace wizmail::util {

// The ASCII (A-label, "xn--…") form of `domain`, lower-cased. An all-ASCII
// domain is only lower-cased (it is compared as before, nothing is
// re-validated); a domain with U-labels goes through libidn2 and one that is
// not a valid IDN is Errc::invalid_argument.
Result<std::string> domain_to_ascii(std::string_view domain);

// The address `local@domain` with its domain in ASCII form (the local part
// as it is); an address without '@' is returned unchanged.
Result<std::string> address_domain_to_ascii(std::string_view address);

}  // namespace wizmail::util
