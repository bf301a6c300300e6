#include "server/console_assets.hpp"

#include <httplib.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>

#include "util/strings.hpp"

namespace wizmail::server::console_assets {

namespace {
// Revalidated on each use (cheap: 304 on a matching ETag), so a new build's
// files are picked up at once without a versioned URL.
constexpr const char* cache_control = "no-cache";

void serve(const httplib::Request& req, httplib::Response& res, const Asset& a) {
  res.set_header("Cache-Control", cache_control);
  res.set_header("ETag", std::string(a.etag));
  if (etag_matches(req.get_header_value("If-None-Match"), a.etag)) {
    res.status = 304;
    return;
  }
  res.set_content(a.body.data(), a.body.size(), std::string(a.content_type).c_str());
}

std::string find_chart_js() {
  for (auto c : chart_js_candidates) {
    struct stat st {};
    if (::stat(std::string(c).c_str(), &st) == 0 && S_ISREG(st.st_mode)) return std::string(c);
  }
  return {};
}

void serve_chart_js(const httplib::Request& req, httplib::Response& res) {
  auto path = find_chart_js();
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0) {
    res.status = 404;
    res.set_content("Chart.js is not installed (Debian package libjs-chart.js)", "text/plain; charset=utf-8");
    return;
  }
  auto etag = util::cat("\"", std::to_string(st.st_mtime), "-", std::to_string(st.st_size), "\"");
  res.set_header("Cache-Control", cache_control);
  res.set_header("ETag", etag);
  if (etag_matches(req.get_header_value("If-None-Match"), etag)) {
    res.status = 304;
    return;
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream body;
  body << in.rdbuf();
  if (!in) {
    res.status = 500;
    res.set_content("Chart.js could not be read", "text/plain; charset=utf-8");
    return;
  }
  res.set_content(body.str(), "text/javascript; charset=utf-8");
}
}  // namespace

const Asset* find(std::string_view path) {
  for (const auto& a : all())
    if (a.path == path) return &a;
  return nullptr;
}

bool etag_matches(std::string_view header, std::string_view etag) {
  while (!header.empty()) {
    auto comma = header.find(',');
    auto item = header.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == "*" || item == etag) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

void register_routes(httplib::Server& h) {
  // Registered before the generic /assets/ route: the first match wins.
  h.Get("/assets/chart.js", [](const httplib::Request& req, httplib::Response& res) { serve_chart_js(req, res); });
  h.Get(R"(/(|index\.html|assets/[A-Za-z0-9_./-]+))", [](const httplib::Request& req, httplib::Response& res) {
    const Asset* a = find(req.path == "/index.html" ? std::string_view("/") : std::string_view(req.path));
    if (!a) {
      res.status = 404;
      return;
    }
    serve(req, res, *a);
  });
}

}  // namespace wizmail::server::console_assets
