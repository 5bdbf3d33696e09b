"""The room page in a real browser (Debian's chromium, headless, through chromium-driver)."""
import os
import shutil
import tempfile
import time

import pytest

from harness.client import Browser
from harness.servers import REPO, wait_for

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                       reason="chromium and chromium-driver are not installed (make test installs them)"),
]
# One layout per shape (the layer makes no difference to the page), and the RabbitMQ layer's.
BROWSER_LAYOUTS = ("ipc", "asgi-ipc", "inverse-redis", "rabbitmq")
# Screenshots land in docs/ when asked (CHAT_SCREENSHOT_DIR=docs make test), else beside the logs.
SHOTS = os.environ.get("CHAT_SCREENSHOT_DIR")


class Page(object):
    """One user's browser with the room open."""

    def __init__(self, site, username, query=""):
        self.profile = tempfile.mkdtemp(prefix="chat-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--disable-quic", "--window-size=900,700",
                     "--user-data-dir=" + self.profile):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        self.username = username
        session = Browser(site.url).signup(username)
        self.driver.get(site.url + "/healthz")
        self.driver.add_cookie({"name": "sessionid", "value": session.cookie("sessionid"), "path": "/"})
        self.driver.get(site.url + "/rooms/lobby/" + query)

    def state(self):
        return self.driver.find_element(By.ID, "status").get_attribute("data-state")

    def wait_state(self, state, timeout=30):
        wait_for(lambda: self.state() == state, timeout, "%s's page to be %s" % (self.username, state))

    def send(self, text):
        box = self.driver.find_element(By.ID, "text")
        box.send_keys(text)
        self.driver.find_element(By.CSS_SELECTOR, "#composer button").click()

    def messages(self):
        """(id, user, text) of every acked message on the page, in page order."""
        return self.driver.execute_script("""
            return Array.from(document.querySelectorAll('#messages li[data-id]')).map(function (li) {
              return [+li.getAttribute('data-id'), li.querySelector('.user').textContent,
                      li.querySelector('.text').textContent];
            });""")

    def paste(self, text):
        """Put text into the message box as a paste would (newlines included), then press Send."""
        self.driver.execute_script("document.getElementById('text').value = arguments[0];", text)
        self.driver.find_element(By.CSS_SELECTOR, "#composer button").click()

    def pending(self):
        return len(self.driver.find_elements(By.CSS_SELECTOR, "#messages li.pending"))

    def texts(self):
        return [text for _, _, text in self.messages()]

    def screenshot(self, name, site):
        directory = os.path.join(REPO, SHOTS) if SHOTS else os.path.join(site.var_dir, "log")
        os.makedirs(directory, exist_ok=True)
        self.driver.save_screenshot(os.path.join(directory, name))

    def close(self):
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def pages(site):
    if site.layout not in BROWSER_LAYOUTS:
        pytest.skip("the browser runs against one layout of each shape")
    opened = []

    def open_page(username, query=""):
        opened.append(Page(site, username, query))
        return opened[-1]
    yield open_page
    for page in opened:
        page.close()


def wait_texts(page, texts, timeout=40):
    wait_for(lambda: all(t in page.texts() for t in texts), timeout,
             "%s to show %s" % (page.username, texts))


def assert_consistent(*pages):
    """Every page shows the same messages, each once, ids strictly increasing, nothing pending."""
    lists = [p.messages() for p in pages]
    for page, shown in zip(pages, lists):
        ids = [i for i, _, _ in shown]
        assert ids == sorted(set(ids)), "%s shows ids out of order or twice: %s" % (page.username, ids)
        assert page.pending() == 0
    assert all(shown == lists[0] for shown in lists)


def test_two_users_chat_and_survive_restarts(site, pages):
    """Two users see each other's messages; the worker pools restart, then each daphne in turn,
    while both pages stay open and keep sending: the pages reconnect and catch up, and both end up
    with every message exactly once, in id order."""
    alice, bob = pages("ann-%d" % time.time()), pages("ben-%d" % time.time())
    for page in (alice, bob):
        page.wait_state("online")
    alice.send("hello from alice")
    bob.send("hi alice, <b>bob</b> here")
    wait_texts(alice, ["hello from alice", "hi alice, <b>bob</b> here"])
    wait_texts(bob, ["hello from alice", "hi alice, <b>bob</b> here"])
    assert not alice.driver.find_elements(By.CSS_SELECTOR, "#messages b")  # text, never HTML
    alice.screenshot("room-alice.png", site)

    supervisor = site.supervisor()
    sent = []
    for pool in ("realtime", "background", "default"):
        supervisor.stopProcessGroup(pool)
    alice.send("sent while the workers were down")
    sent.append("sent while the workers were down")
    for pool in ("realtime", "background", "default"):
        supervisor.startProcessGroup(pool)
    for daphne in ("daphne:daphne_00", "daphne:daphne_01"):
        supervisor.stopProcess(daphne)
        bob.send("bob during %s restart" % daphne)
        sent.append("bob during %s restart" % daphne)
        supervisor.startProcess(daphne)
        site.wait_running(daphne)
        alice.send("alice after %s restart" % daphne)
        sent.append("alice after %s restart" % daphne)
    for page in (alice, bob):
        wait_texts(page, sent, timeout=60)
        page.wait_state("online")
    wait_for(lambda: alice.pending() == 0 and bob.pending() == 0, 30, "the outboxes to empty")
    assert_consistent(alice, bob)
    bob.screenshot("room-bob-after-restarts.png", site)


def test_long_poll_fallback(site, pages):
    """A page without WebSockets long-polls for news and sends over HTTP; a WebSocket page and it
    see each other's messages."""
    ws_page = pages("cat-%d" % time.time())
    poll_page = pages("dan-%d" % time.time(), query="?transport=poll")
    ws_page.wait_state("online")
    poll_page.wait_state("polling")
    ws_page.send("to the poller")
    wait_texts(poll_page, ["to the poller"])
    poll_page.send("from the poller")
    wait_texts(ws_page, ["from the poller"])
    wait_texts(poll_page, ["from the poller"])
    poll_page.screenshot("room-long-poll.png", site)


def test_pasted_lines_arrive_in_order_past_the_rate_limit(site, pages):
    """Sixty lines pasted at once (three times the per-socket burst) become sixty messages, stored
    and shown in the order pasted, each once: the page pauses on rate_limited for retry_after_ms and
    resends in order. The socket speaks the chat's subprotocol (chromium fails a socket whose offered
    subprotocol the server does not select). A line over the length limit is not queued at all."""
    page = pages("eve-%d" % time.time())
    page.wait_state("online")
    assert page.driver.find_element(By.ID, "status").get_attribute("data-protocol") == "chat.v1"
    lines = ["line %02d of the paste %d" % (n, time.time()) for n in range(60)]
    page.paste("\n".join(lines))
    wait_texts(page, lines, timeout=90)
    wait_for(lambda: page.pending() == 0, 30, "the outbox to empty")
    assert [text for text in page.texts() if text in lines] == lines
    assert_consistent(page)
    page.paste("x" * 2001)
    wait_for(lambda: page.state() == "error", 10, "the page to refuse the long line")
    assert "limit is 2000" in page.driver.find_element(By.ID, "status").text
    assert page.pending() == 0
