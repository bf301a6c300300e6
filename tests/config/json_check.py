#!/usr/bin/env python3
"""`wizmail config show --json` must be JSON a real parser accepts, with typed values."""
import json, os, subprocess, sys, tempfile

wizmail = os.path.join(os.environ["WIZMAIL_BUILD_DIR"], "apps", "wizmail", "wizmail")
with tempfile.TemporaryDirectory() as home:
    os.makedirs(os.path.join(home, "def"))
    with open(os.path.join(home, "def", "wiz98msenv.dat"), "w", encoding="utf-8") as f:
        f.write('mailing_list_filter_string=a"b,c\\d,未承諾広告\nalias=Example.COM\n')
    with open(os.path.join(home, "def", "smtpenv.dat"), "w", encoding="utf-8") as f:
        f.write("port=2525\nrelay=1\nbind_address=127.0.0.1,::1\nprot=1\n")
    out = subprocess.run([wizmail, "--home", home, "config", "show", "--json"],
                         capture_output=True, check=True).stdout.decode("utf-8")
    doc = json.loads(out)
    files = doc["files"]
    assert files["smtpenv.dat"]["port"] == 2525, files["smtpenv.dat"]["port"]
    assert files["smtpenv.dat"]["relay"] is True
    assert files["smtpenv.dat"]["bind_address"] == ["127.0.0.1", "::1"]
    assert files["popenv.dat"]["dustbox"] is False
    assert files["wiz98msenv.dat"]["mailing_list_filter_string"] == ['a"b', "c\\d", "未承諾広告"]
    assert doc["local_domains"] == ["localhost", "example.com"], doc["local_domains"]
    assert len(doc["warnings"]) == 1 and "did you mean 'port'" in doc["warnings"][0]
print("ok")
