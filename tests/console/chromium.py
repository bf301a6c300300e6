"""Headless Chromium driven by Selenium (Debian's python3-selenium and
/usr/bin/chromedriver), shared by the browser tests and scripts/screenshots."""
import os, shutil, tempfile

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"


def missing():
    """Why the browser cannot run here (a sentence), or None."""
    for p in (CHROMIUM, CHROMEDRIVER):
        if not os.access(p, os.X_OK):
            return f"{p} is missing (scripts/install-deps installs chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "python3-selenium is missing (scripts/install-deps installs it)"
    return None


def start(lang="en-US", width=1280, height=900):
    """A new headless Chromium with its own temporary profile; the caller
    quits it (driver.quit()), which also removes the profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="wizmail-chromium-")
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--no-first-run", "--disable-extensions", "--disable-background-networking",
              f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--lang={lang}"):
        o.add_argument(a)
    # Accept-Language and navigator.languages follow this preference.
    o.add_experimental_option("prefs", {"intl.accept_languages": lang})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    quit_ = driver.quit

    def quit_and_clean():
        try:
            quit_()
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    driver.quit = quit_and_clean
    return driver
