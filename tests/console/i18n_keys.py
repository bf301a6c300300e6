"""Every text key the console's scripts use (t("...") in app.js and admin.js,
and the families built from a prefix: t("nav.group." + group) ...) exists in
both i18n/en.json and i18n/ja.json, the two files have the same keys, and no
Japanese text is left in English (a value equal to the English one is allowed
only for names such as smtp.log)."""
import json, os, re, sys

SRC = os.environ.get("WIZMAIL_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
D = os.path.join(SRC, "libwizmail", "src", "server", "console")
SAME_OK = {"queue.id", "logs.file.smtp", "logs.file.pop", "logs.file.error", "whoami.user"}

js = "".join(open(os.path.join(D, f), encoding="utf-8").read() for f in ("app.js", "admin.js"))
en = json.load(open(os.path.join(D, "i18n", "en.json"), encoding="utf-8"))
ja = json.load(open(os.path.join(D, "i18n", "ja.json"), encoding="utf-8"))
problems = []
if set(en) != set(ja):
    problems.append(f"en.json and ja.json differ: {sorted(set(en) ^ set(ja))}")
used = set(re.findall(r'\bt\("([a-z_.]+)"', js)) | set(re.findall(r'label: "([a-z_.]+)"', js))
for key in sorted(used):
    if key.endswith("."):
        if not any(k.startswith(key) for k in en):
            problems.append(f"no key starts with {key!r}")
    elif key not in en or key not in ja:
        problems.append(f"{key!r} is used but missing from en.json or ja.json")
for key, value in ja.items():
    if key in en and value == en[key] and key not in SAME_OK:
        problems.append(f"ja.json {key!r} is still the English text {value!r}")
for p in problems:
    print("FAILED:", p)
print(f"{len(used)} keys used, {len(en)} defined, {len(problems)} problems")
sys.exit(1 if problems else 0)
