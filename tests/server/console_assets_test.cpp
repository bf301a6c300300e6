// The web console's compiled-in files (server/console_assets.hpp): the
// generated table is complete and consistent, the page obeys the CSP (no
// inline script, style or event handler) and only references files that
// are served, the scripts never write HTML from strings, and If-None-Match
// matching — good and bad input.
#include "server/console_assets.hpp"

#include <doctest/doctest.h>

#include <regex>
#include <set>
#include <string>

using namespace wizmail::server::console_assets;

TEST_CASE("the table has the page, the scripts, the style sheet and both languages") {
  for (const char* p : {"/", "/assets/app.js", "/assets/admin.js", "/assets/style.css", "/assets/i18n/en.json",
                        "/assets/i18n/ja.json"}) {
    CAPTURE(p);
    const Asset* a = find(p);
    REQUIRE(a != nullptr);
    CHECK(!a->body.empty());
  }
  CHECK(find("/")->content_type == "text/html; charset=utf-8");
  CHECK(find("/assets/app.js")->content_type == "text/javascript; charset=utf-8");
  CHECK(find("/assets/style.css")->content_type == "text/css; charset=utf-8");
  CHECK(find("/assets/i18n/ja.json")->content_type == "application/json; charset=utf-8");
  CHECK(find("/assets/chart.js") == nullptr);  // from libjs-chart.js, not compiled in
  CHECK(find("/index.html") == nullptr);       // an alias the route maps to "/"
  CHECK(find("/assets/") == nullptr);
  CHECK(find("") == nullptr);
}

TEST_CASE("every entry: a unique path under /assets/ (or /), a type, a quoted ETag") {
  std::set<std::string_view> paths, etags;
  for (const auto& a : all()) {
    CAPTURE(a.path);
    CHECK((a.path == "/" || a.path.starts_with("/assets/")));
    CHECK(a.path.find("..") == std::string_view::npos);
    CHECK(paths.insert(a.path).second);
    CHECK(!a.content_type.empty());
    CHECK(a.etag.size() == 34);
    CHECK(a.etag.front() == '"');
    CHECK(a.etag.back() == '"');
    etags.insert(a.etag);
  }
  CHECK(etags.size() == paths.size());
}

TEST_CASE("the page has no inline script, style or event handler and loads only served files") {
  std::string html(find("/")->body);
  // Every <script> has a src and nothing inside.
  std::regex script(R"(<script([^>]*)>([\s\S]*?)</script>)", std::regex::icase);
  int scripts = 0;
  for (std::sregex_iterator it(html.begin(), html.end(), script), end; it != end; ++it, ++scripts) {
    CAPTURE((*it)[0].str());
    CHECK((*it)[1].str().find("src=") != std::string::npos);
    CHECK((*it)[2].str().empty());
  }
  CHECK(scripts == 3);
  CHECK(!std::regex_search(html, std::regex(R"(\son[a-z]+\s*=)", std::regex::icase)));
  CHECK(!std::regex_search(html, std::regex(R"(\sstyle\s*=|<style)", std::regex::icase)));
  CHECK(html.find("javascript:") == std::string::npos);
  std::regex ref(R"re((?:src|href)="([^"]+)")re");
  for (std::sregex_iterator it(html.begin(), html.end(), ref), end; it != end; ++it) {
    auto target = (*it)[1].str();
    CAPTURE(target);
    CHECK(target.starts_with("/assets/"));  // same origin, no CDN
    if (target != "/assets/chart.js") CHECK(find(target) != nullptr);
  }
}

TEST_CASE("the scripts never turn strings into HTML") {
  for (const char* p : {"/assets/app.js", "/assets/admin.js"}) {
    CAPTURE(p);
    std::string js(find(p)->body);
    for (const char* bad : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                            "new Function", "setAttribute(\"on", "srcdoc"})
      CHECK_MESSAGE(js.find(bad) == std::string::npos, bad);
  }
}

TEST_CASE("If-None-Match") {
  const std::string_view tag = "\"abc\"";
  CHECK(etag_matches("\"abc\"", tag));
  CHECK(etag_matches("W/\"abc\"", tag));
  CHECK(etag_matches("\"x\", \"abc\"", tag));
  CHECK(etag_matches("\"x\",\"abc\" ", tag));
  CHECK(etag_matches("*", tag));
  CHECK_FALSE(etag_matches("", tag));
  CHECK_FALSE(etag_matches("abc", tag));
  CHECK_FALSE(etag_matches("\"abcd\"", tag));
  CHECK_FALSE(etag_matches("\"ab\"", tag));
  CHECK_FALSE(etag_matches(",,,", tag));
  CHECK_FALSE(etag_matches("W/", tag));
}
