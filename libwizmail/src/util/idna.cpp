#include "util/idna.hpp"

#include <idn2.h>

#include "util/strings.hpp"
#include "util/utf8.hpp"

namespace wizmail::util {

Result<std::string> domain_to_ascii(std::string_view domain) {
  if (is_ascii(domain)) return to_lower(domain);
  if (domain.size() > 1024 || domain.find('\0') != std::string_view::npos)
    return fail(Errc::invalid_argument, "domain name too long or with NUL");
  std::string in(domain);
  char* out = nullptr;
  int rc = idn2_to_ascii_8z(in.c_str(), &out, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
  if (rc != IDN2_OK) {
    if (out) idn2_free(out);
    return fail(Errc::invalid_argument, std::string("not a valid internationalised domain name: ") +
                                            idn2_strerror(rc));
  }
  std::string r = to_lower(out);
  idn2_free(out);
  return r;
}

Result<std::string> address_domain_to_ascii(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos) return std::string(address);
  auto d = domain_to_ascii(address.substr(at + 1));
  if (!d) return unexpected(d.error());
  return std::string(address.substr(0, at + 1)) + *d;
}

}  // namespace wizmail::util
