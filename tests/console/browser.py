"""The web console's pages in a real browser (docs/console.md, "Browser
tests"): headless Chromium driven by Selenium against a real
wizmail-server on free loopback ports. An administrator logs in, creates an
account and sees it listed, watches the dashboard's counts and chart data
move after mail sent with smtplib, flushes and deletes a queue entry
deferred to a dead smart host, edits a configuration key and sees it in
force (and a bad value refused with its file:line); an account holder sets a
vacation reply that a POP3 client then reads; the Japanese switch; logout.
Security: state changes without or with a wrong CSRF token (from the page's
own context) are 403; an account holder gets 403 for administrator data and
no administrator pages; XSS payloads in a message subject, a mailing list's
name and members, a log line, a configuration value and a vacation subject
stay text (no dialog, the literal text shown, no element made); the session
cookie is HttpOnly and SameSite=Strict; a page opened without a session is
the login page."""
import datetime, os, poplib, smtplib, socket, subprocess, sys, time
from email.message import EmailMessage

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import chromium
from harness import CLI, Home, Server, check, free_port, port_open, run_tests, wait_until

# The vacation reply the console writes runs wizmail-sendmail from the
# server's PATH, as the manual's recipes do.
os.environ["PATH"] = os.path.join(os.environ.get("WIZMAIL_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build")),
                                  "apps", "wizmail-sendmail") + os.pathsep + os.environ.get("PATH", "")
why = chromium.missing()
if why:
    print("SKIP:", why)
    sys.exit(77)  # meson: skipped

from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

XSS_IMG = '<img src=x onerror="alert(1)">'
XSS_SCRIPT = "<script>alert(2)</script>"

dead_port = free_port()  # nothing listens: the smart host is down
home = Home(accounts=(("alice", "secret"), ("bob", "bobpw"), ("postmaster", "pm")),
            smtp_extra=f"smart_host=127.0.0.1:{dead_port}\ngreet_wait=0\n")
admin_port = free_port()
with open(os.path.join(home.path, "def", "wiz98msenv.dat"), "a") as f:
    f.write(f"admin_port={admin_port}\nadmin_accounts=postmaster\n")
srv = Server(home)
wait_until(lambda: port_open(admin_port), "the console listens on admin_port")
BASE = f"http://127.0.0.1:{admin_port}"
driver = chromium.start()


def wait(cond, what, timeout=15):
    try:
        # An element found before a re-render of its page is stale: ask again.
        WebDriverWait(driver, timeout, poll_frequency=0.1,
                      ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: cond())
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text
        check(False, f"{what} (timed out; page: {body[:600]!r})")
    check(True, what)


def values(css, attr=None):
    """The text (or attribute) of every element matching css, read in one
    script run: the page may re-render between two WebDriver calls."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => arguments[1] ? e.getAttribute(arguments[1])"
        " : e.textContent);", css, attr)


def number(css):
    try:
        return int(text(css))
    except ValueError:
        return -1


def text(css):
    """The visible text of the first element matching css ("" when none)."""
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css)


def no_dialog(where):
    try:
        a = driver.switch_to.alert
        msg = a.text
        a.dismiss()
        check(False, f"{where}: a script ran (alert {msg!r})")
    except NoAlertPresentException:
        check(True, f"{where}: no dialog opened")


def no_injected(container_css, where):
    n = driver.execute_script(
        "const c = document.querySelector(arguments[0]);"
        "return c ? c.querySelectorAll('img, script').length : -1;", container_css)
    check(n == 0, f"{where}: no <img>/<script> element was made from the data ({n})")


def login(account, password):
    driver.get(BASE + "/")
    wait(lambda: driver.find_elements(By.ID, "login-form"), "the login page is shown")
    driver.find_element(By.ID, "login-account").send_keys(account)
    driver.find_element(By.ID, "login-password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    wait(lambda: driver.find_elements(By.ID, "page-title"), f"{account} is logged in")


def logout():
    driver.find_element(By.ID, "logout").click()
    wait(lambda: driver.find_elements(By.ID, "login-form"), "logging out shows the login page")


def go(route, ready_css):
    driver.get(BASE + "/#/" + route)
    driver.refresh()
    wait(lambda: driver.find_elements(By.CSS_SELECTOR, ready_css), f"the {route} page is shown")


def page_fetch(method, path, body=None, csrf="session"):
    """fetch() from the page itself (same origin, the session's cookie);
    csrf: 'session' = the page's own token, None = no header, else that
    string. Returns [status, body text]."""
    return driver.execute_async_script("""
        const [method, path, body, csrf, done] = arguments;
        const h = {"Content-Type": "application/json"};
        if (csrf === "session") h["X-CSRF-Token"] = W.state.me.csrf_token;
        else if (csrf !== null) h["X-CSRF-Token"] = csrf;
        fetch(path, {method, headers: h, body: body === null ? undefined : JSON.stringify(body)})
          .then(async r => done([r.status, await r.text()]), e => done([0, String(e)]));
    """, method, path, body, csrf)


def send(frm, to, subject, auth, body="hello\r\n"):
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = frm, ", ".join(to), subject
    m.set_content(body)
    with smtplib.SMTP("127.0.0.1", home.submission_port, timeout=30) as s:
        s.login(*auth)
        s.send_message(m, frm, to)


def test_a_no_page_without_login_and_cookie_flags():
    driver.get(BASE + "/#/accounts")
    wait(lambda: driver.find_elements(By.ID, "login-form"), "an admin route without a session shows the login page")
    check(not driver.find_elements(By.ID, "accounts") and not driver.find_element(By.ID, "nav").is_displayed(),
          "and no account table, no navigation")
    login("postmaster", "pm")
    cookies = {c["name"]: c for c in driver.get_cookies()}
    c = cookies.get("wizmail_session")
    check(c is not None and c["httpOnly"] is True and c.get("sameSite") == "Strict",
          f"the session cookie is HttpOnly, SameSite=Strict ({c})")
    check("wizmail_session" not in driver.execute_script("return document.cookie"),
          "document.cookie does not show the session")


def test_b_csrf_from_the_page():
    status, _ = page_fetch("POST", "/api/accounts", {"account": "mallory", "password": "x1"}, csrf=None)
    check(status == 403, f"POST without X-CSRF-Token from the page: 403 ({status})")
    status, _ = page_fetch("POST", "/api/accounts", {"account": "mallory", "password": "x1"}, csrf="0" * 64)
    check(status == 403, f"POST with a wrong X-CSRF-Token: 403 ({status})")
    status, _ = page_fetch("DELETE", "/api/accounts/bob", csrf="f" * 64)
    check(status == 403, f"DELETE with a wrong X-CSRF-Token: 403 ({status})")
    check(not os.path.exists(os.path.join(home.path, "mailbox", "mallory")) and
          os.path.isdir(os.path.join(home.path, "mailbox", "bob")), "nothing created, nothing deleted")


def test_c_create_account_and_see_it_listed():
    go("accounts", "#accounts tbody tr")
    driver.find_element(By.ID, "new-account").send_keys("carol")
    driver.find_element(By.ID, "new-password").send_keys("carol-pw")
    driver.find_element(By.CSS_SELECTOR, "#create-account button").click()
    wait(lambda: driver.find_elements(By.CSS_SELECTOR, '#accounts tr[data-account="carol"]'),
         "the new account carol is listed")
    check(os.path.isdir(os.path.join(home.path, "mailbox", "carol")), "and exists on disk")
    # A name with markup: the server refuses it; its answer is shown as text.
    driver.find_element(By.ID, "new-account").send_keys(XSS_IMG)
    driver.find_element(By.ID, "new-password").send_keys("x-pw-1")
    driver.find_element(By.CSS_SELECTOR, "#create-account button").click()
    wait(lambda: "error" in driver.find_element(By.CSS_SELECTOR, ".notice").get_attribute("class"),
         "an account name with <img ...> is refused, the error shown")
    no_injected("main", "accounts page after a refused name")
    no_dialog("accounts page")
    driver.find_element(By.ID, "accounts-search").send_keys("car")
    wait(lambda: values("#accounts tbody tr", "data-account") == ["carol"],
         "searching 'car' lists only carol")
    # carol's panel: a new password (a POP3 login proves it) and a setting of
    # her config.def (a bad value refused with file:line, a good one kept).
    driver.find_element(By.CSS_SELECTOR, '#accounts tr[data-account="carol"] button.secondary').click()
    wait(lambda: driver.find_elements(By.CSS_SELECTOR, '#account-settings tr[data-key="mailbox_capacity_mail_count"]'),
         "carol's settings are shown")
    driver.find_element(By.ID, "set-password").send_keys("carol-new-1")
    driver.find_element(By.CSS_SELECTOR, "#set-password-form button").click()
    wait(lambda: "ok" in driver.find_element(By.CSS_SELECTOR, "#account-panel .notice").get_attribute("class"),
         "the administrator sets carol's password")
    p = poplib.POP3("127.0.0.1", home.pop_port, timeout=10)
    p.user("carol")
    check(p.pass_("carol-new-1").startswith(b"+OK"), "carol logs in to POP3 with it")
    p.quit()
    row = driver.find_element(By.CSS_SELECTOR, '#account-settings tr[data-key="mailbox_capacity_mail_count"]')
    box = row.find_element(By.CSS_SELECTOR, "input")
    box.clear()
    box.send_keys("lots")
    row.find_element(By.CSS_SELECTOR, "button").click()
    wait(lambda: "config.def:" in row.find_element(By.CSS_SELECTOR, ".row-msg").text,
         "a bad account setting is refused with its config.def:line message")
    box.clear()
    box.send_keys("50")
    row.find_element(By.CSS_SELECTOR, "button").click()
    wait(lambda: "error" not in row.find_element(By.CSS_SELECTOR, ".row-msg").get_attribute("class") and
         row.find_element(By.CSS_SELECTOR, ".row-msg").text != "", "mailbox_capacity_mail_count=50 is saved")
    with open(os.path.join(home.path, "mailbox", "carol", "config.def")) as f:
        check("mailbox_capacity_mail_count=50" in f.read(), "in carol's config.def")


def test_d_dashboard_counts_and_chart_move():
    go("dashboard", "#card-received")

    def total(series_index):
        return driver.execute_script(
            "const c = window.Chart && Chart.getChart('chart-traffic');"
            "return c ? c.data.datasets[arguments[0]].data.reduce((a, b) => a + b, 0) : -1;", series_index)

    check(total(0) >= 0, "the dashboard draws its Chart.js chart (Chart.js served from /assets/chart.js)")
    before_card = number("#card-received .value")
    before_chart = total(0)
    for i in range(3):
        send("bob@localhost", ["alice@localhost"], f"dashboard {i}", ("bob", "bobpw"))
    wait(lambda: number("#card-received .value") >= before_card + 3,
         "the dashboard's received count rises by the 3 messages (auto-refresh)", timeout=20)
    check(total(0) >= before_chart + 3, f"and so does the chart's data ({before_chart} -> {total(0)})")
    check(text("#sessions") != "", "sessions by protocol are shown")
    check("/" in text("#card-disk .value"), "disk use is shown")


def test_e_queue_flush_and_delete():
    subjects = [f"queued {XSS_IMG}", f"second {XSS_SCRIPT}"]
    for s in subjects:
        send("alice@localhost", ["someone@example.net"], s, ("alice", "secret"))
    go("queue", "#queue tbody tr[data-id]")
    wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr[data-id]")) == 2,
         "both messages to the dead smart host wait in the queue")
    attempts = [int(x) for x in values("#queue tbody tr[data-id] td:nth-child(5)")]
    driver.find_element(By.ID, "queue-flush").click()
    wait(lambda: "flush" in text(".notice").lower() or "再送" in text(".notice"), "the flush is acknowledged")

    def attempts_now():
        driver.find_element(By.ID, "queue-reload").click()
        time.sleep(0.2)
        return [int(x) for x in values("#queue tbody tr[data-id] td:nth-child(5)")]
    wait(lambda: sum(attempts_now()) > sum(attempts), "after the flush the entries were tried again (attempts rose)")
    wait(lambda: text("#queue tbody tr[data-id] .last-error") != "", "each shows its last error")
    # The headers, with the subject's payload: text, not markup.
    driver.find_element(By.CSS_SELECTOR, "#queue tbody tr[data-id] td:last-child button.secondary").click()
    wait(lambda: "Subject:" in text("#queue-header-text"), "the headers of an entry are shown")
    both = text("#queue-header-text")
    check(XSS_IMG in both or XSS_SCRIPT in both, "the subject's <img>/<script> payload shows as literal text")
    no_injected("#queue-header-text", "queue headers")
    no_dialog("queue headers")
    first = driver.find_element(By.CSS_SELECTOR, "#queue tbody tr[data-id]")
    qid = first.get_attribute("data-id")
    button = first.find_element(By.CSS_SELECTOR, "button.danger")
    button.click()
    button.click()
    wait(lambda: qid not in values("#queue tbody tr[data-id]", "data-id"),
         f"queue entry {qid} is deleted")


def test_f_config_edit_and_reload():
    go("config", '#config tr[data-key="max_recipients"]')
    row = driver.find_element(By.CSS_SELECTOR, '#config tr[data-key="max_recipients"]')
    box = row.find_element(By.CSS_SELECTOR, "input")
    box.clear()
    box.send_keys("0")
    row.find_element(By.CSS_SELECTOR, "button").click()
    wait(lambda: "smtpenv.dat:" in row.find_element(By.CSS_SELECTOR, ".row-msg").text,
         "a bad value (0) is refused with its file:line message")
    box.clear()
    box.send_keys("2")
    row.find_element(By.CSS_SELECTOR, "button").click()
    wait(lambda: row.find_element(By.CSS_SELECTOR, ".row-msg").text not in ("", ) and
         "error" not in row.find_element(By.CSS_SELECTOR, ".row-msg").get_attribute("class"),
         "max_recipients=2 is accepted and the server reloaded")
    go("config", '#config tr[data-key="max_recipients"]')
    check(driver.find_element(By.CSS_SELECTOR, '#config tr[data-key="max_recipients"] input')
          .get_attribute("value") == "2", "the page shows the effective value 2")
    with smtplib.SMTP("127.0.0.1", home.port, timeout=30) as s:
        s.ehlo()
        s.mail("bob@localhost")
        codes = [s.rcpt(f"{r}@localhost")[0] for r in ("alice", "bob", "postmaster")]
        s.rset()
    check(codes[:2] == [250, 250] and codes[2] >= 400, f"and SMTP takes only 2 recipients now ({codes})")
    # A value with markup: refused or kept, the answer and the value are text.
    row = driver.find_element(By.CSS_SELECTOR, '#config tr[data-key="milter_default_action"]')
    box = row.find_element(By.CSS_SELECTOR, "input")
    box.clear()
    box.send_keys(XSS_IMG)
    row.find_element(By.CSS_SELECTOR, "button").click()
    wait(lambda: row.find_element(By.CSS_SELECTOR, ".row-msg").text != "", "a configuration value with <img ...> is answered")
    no_injected("#config", "configuration page")
    # milter_default_action is a free text key: the value is kept, and comes
    # back literally; then removed again (the default applies).
    go("config", '#config tr[data-key="milter_default_action"]')
    row = driver.find_element(By.CSS_SELECTOR, '#config tr[data-key="milter_default_action"]')
    check(row.find_element(By.CSS_SELECTOR, "input").get_attribute("value") == XSS_IMG,
          "the stored <img ...> value comes back as the field's value, literally")
    no_injected("#config", "configuration page")
    row.find_element(By.CSS_SELECTOR, "input").clear()
    row.find_element(By.CSS_SELECTOR, "button").click()
    wait(lambda: row.find_element(By.CSS_SELECTOR, "input").get_attribute("value") == "tempfail",
         "emptied, the key takes its default again (tempfail)")
    go("config", '#config tr[data-key="smart_host"]')
    check(driver.find_element(By.CSS_SELECTOR, '#config tr[data-key="smart_host"] input').get_attribute("value")
          == f"127.0.0.1:{dead_port}", "smart_host shows its value")
    no_dialog("configuration page")


def test_g_list_and_log_payloads_are_text():
    # A mailing list made as an administrator does (`wizmail ml create`).
    r = subprocess.run([CLI, "--home", home.path, "ml", "create", "team", "teampw"], capture_output=True, text=True)
    check(r.returncode == 0, f"`wizmail ml create team` ({r.stderr.strip()})")
    go("lists", '#lists tr[data-list="team"]')
    driver.find_element(By.CSS_SELECTOR, '#lists tr[data-list="team"] a').click()
    wait(lambda: driver.find_elements(By.ID, "list-members"), "the list's page opens")
    members = driver.find_element(By.ID, "list-members")
    members.clear()
    members.send_keys("alice@localhost\nbob@localhost")
    driver.find_element(By.CSS_SELECTOR, "#list-members-form button").click()
    wait(lambda: text(".notice") != "" and "error" not in driver.find_element(By.CSS_SELECTOR, ".notice")
         .get_attribute("class"), "the members are saved")
    go("lists/team", "#list-member-items li")
    check(text("#list-member-items") == "alice@localhost\nbob@localhost", "the list shows its members")
    # A member line written by hand into ml_member.csv (the API would refuse
    # it) and a list setting holding markup: both shown as text.
    with open(os.path.join(home.path, "mailbox", "team", "ml_member.csv"), "a") as f:
        f.write(XSS_IMG + "@localhost\n")
    go("lists/team", "#list-member-items li")
    check(XSS_IMG + "@localhost" in text("#list-member-items"), "a hand-written <img ...> member shows as literal text")
    no_injected("#list-member-items", "list members")
    no_dialog("list members")
    row = driver.find_element(By.CSS_SELECTOR, '#list-settings tr[data-key="mailing_list_filter_string"]')
    box = row.find_element(By.CSS_SELECTOR, "input")
    box.clear()
    box.send_keys(XSS_SCRIPT)
    row.find_element(By.CSS_SELECTOR, "button").click()
    wait(lambda: row.find_element(By.CSS_SELECTOR, ".row-msg").text != "", "a list setting with <script> is saved")
    check("error" not in row.find_element(By.CSS_SELECTOR, ".row-msg").get_attribute("class"),
          f"(accepted: {row.find_element(By.CSS_SELECTOR, '.row-msg').text})")
    go("lists/team", '#list-settings tr[data-key="mailing_list_filter_string"]')
    check(driver.find_element(By.CSS_SELECTOR, '#list-settings tr[data-key="mailing_list_filter_string"] input')
          .get_attribute("value") == XSS_SCRIPT, "and comes back as the field's value, literally")
    no_injected("#list-settings", "list settings")
    no_dialog("list settings")
    # A log line with a payload: the HELO name as the client sent it.
    s = socket.create_connection(("127.0.0.1", home.port), 10)
    s.recv(512)
    s.sendall(f"EHLO {XSS_IMG}\r\nQUIT\r\n".encode())
    while s.recv(4096):  # until the server closes after QUIT
        pass
    s.close()
    go("logs", "#log-lines-out div")
    driver.find_element(By.ID, "log-search").send_keys("onerror")
    driver.find_element(By.CSS_SELECTOR, "#log-form button").click()
    wait(lambda: "onerror" in text("#log-lines-out"), "the log search finds the EHLO line")
    check("<img" in text("#log-lines-out"), "the log line's <img ...> shows as literal text")
    no_injected("#log-lines-out", "log lines")
    no_dialog("logs page")


def test_h_user_vacation_reply_received():
    logout()
    login("alice", "secret")
    check(driver.find_element(By.ID, "page-title").text == "Mailbox", "an account holder lands on the mailbox page")
    navs = values("#nav a", "id")
    check(not any(n in navs for n in ("nav-dashboard", "nav-accounts", "nav-queue", "nav-config", "nav-logs")),
          f"no administrator page in the navigation ({navs})")
    go("accounts", "#forbidden")
    check(not driver.find_elements(By.ID, "accounts"), "an administrator route shows 'not allowed', no data")
    status, _ = page_fetch("GET", "/api/accounts")
    check(status == 403, f"the API refuses the account holder administrator data (403, got {status})")
    status, _ = page_fetch("POST", "/api/password", {"account": "bob", "password": "taken1"})
    check(status == 403, f"and another account's password (403, got {status})")
    go("vacation", "#vacation-form")
    if not driver.find_element(By.ID, "vacation-enabled").is_selected():
        driver.find_element(By.ID, "vacation-enabled").click()
    subj = driver.find_element(By.ID, "vacation-subject")
    subj.clear()
    subj.send_keys("Away " + XSS_SCRIPT)
    body = driver.find_element(By.ID, "vacation-text")
    body.clear()
    body.send_keys("I am away until Monday.")
    # The dates (yesterday to next week, the server's local dates), set as
    # the date picker would set them.
    today = datetime.date.today()
    first, last = (today - datetime.timedelta(days=1)).isoformat(), (today + datetime.timedelta(days=7)).isoformat()
    driver.execute_script("document.getElementById('vacation-from').value = arguments[0];"
                          "document.getElementById('vacation-until').value = arguments[1];", first, last)
    driver.find_element(By.ID, "vacation-save").click()
    wait(lambda: text(".notice") != "" and "error" not in driver.find_element(By.CSS_SELECTOR, ".notice")
         .get_attribute("class"), "the vacation reply is saved")
    go("vacation", "#vacation-form")
    check(driver.find_element(By.ID, "vacation-subject").get_attribute("value") == "Away " + XSS_SCRIPT,
          "the saved subject comes back as the field's value, literally")
    check(driver.execute_script("return [document.getElementById('vacation-from').value,"
                                "document.getElementById('vacation-until').value]") == [first, last],
          f"and the dates {first} to {last}")
    no_dialog("vacation page")
    send("bob@localhost", ["alice@localhost"], "are you there?", ("bob", "bobpw"))

    def reply():
        p = poplib.POP3("127.0.0.1", home.pop_port, timeout=10)
        try:
            p.user("bob")
            p.pass_("bobpw")
            for i in range(len(p.list()[1])):
                msg = b"\n".join(p.retr(i + 1)[1]).decode(errors="replace")
                if "I am away until Monday." in msg:
                    return msg
        finally:
            p.quit()
        return None
    wait(lambda: reply() is not None, "bob receives alice's vacation reply over POP3", timeout=20)
    # Forwarding set in the page: the next message to alice reaches carol too.
    go("forward", "#forward-form")
    check(driver.find_element(By.ID, "forward-keep").is_selected(), "a copy is always kept (shown, not a choice)")
    driver.find_element(By.ID, "forward-addresses").send_keys("carol@localhost")
    driver.find_element(By.CSS_SELECTOR, "#forward-form button").click()
    wait(lambda: "ok" in driver.find_element(By.CSS_SELECTOR, ".notice").get_attribute("class"), "the forwarding is saved")
    before = len(home.messages("carol"))
    send("bob@localhost", ["alice@localhost"], "forward me", ("bob", "bobpw"))
    wait(lambda: any(b"forward me" in m for m in home.messages("carol")[before:]),
         "the next message to alice is forwarded to carol", timeout=20)
    check(any(b"forward me" in m for m in home.messages("alice")), "and alice keeps her copy")
    # Her own password: a wrong current one is refused, the right one works.
    go("password", "#password-form")
    for current in ("not-it", "secret"):
        for field, value in (("pw-current", current), ("pw-new", "alice-new-1"), ("pw-again", "alice-new-1")):
            driver.find_element(By.ID, field).clear()
            driver.find_element(By.ID, field).send_keys(value)
        driver.find_element(By.CSS_SELECTOR, "#password-form button").click()
        want = "error" if current == "not-it" else "ok"
        wait(lambda: want in driver.find_element(By.CSS_SELECTOR, ".notice").get_attribute("class"),
             f"changing the password with the {'wrong' if want == 'error' else 'right'} current one: {want}")
    p = poplib.POP3("127.0.0.1", home.pop_port, timeout=10)
    p.user("alice")
    check(p.pass_("alice-new-1").startswith(b"+OK"), "alice's new password works for POP3")
    p.quit()


def test_i_japanese_and_logout():
    Select(driver.find_element(By.ID, "lang")).select_by_value("ja")
    wait(lambda: driver.find_element(By.ID, "nav-vacation").text == "不在通知（自動応答）", "the Japanese labels are shown")
    check(driver.execute_script("return document.documentElement.lang") == "ja", "<html lang=ja>")
    check(driver.find_element(By.ID, "logout").text == "ログアウト", "ログアウト")
    driver.refresh()
    wait(lambda: driver.find_elements(By.ID, "nav-forward") and driver.find_element(By.ID, "nav-forward").text == "転送",
         "the choice is remembered across a reload (localStorage)")
    logout()
    check(driver.find_element(By.ID, "login-submit").text == "ログイン", "the login page in Japanese")
    driver.get(BASE + "/#/vacation")
    wait(lambda: driver.find_elements(By.ID, "login-form"), "after logout a page needs a login again")
    Select(driver.find_element(By.ID, "lang")).select_by_value("en")


try:
    run_tests(globals())
finally:
    driver.quit()
srv.stop()
