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


def click(page, selector, within=None):
    """Click an element even while it is hidden until hover (the message actions)."""
    element = (within or page.driver).find_element(By.CSS_SELECTOR, selector)
    page.driver.execute_script("arguments[0].click();", element)


def test_private_room_mentions_edits_and_unread(site, pages):
    """Two users as they would: alice creates a private room and invites bob; bob's mention of
    alice reaches her badge live; alice's edit and delete show live on bob's page; bob's unread
    count for the room goes up while he is away and back to 0 once he reads it."""
    if site.layout != "ipc":
        pytest.skip("the features are the same on every layout: one run")
    alice, bob = pages("amy-%d" % time.time()), pages("bo-%d" % time.time())
    name = "Plans %d" % time.time()
    alice.driver.get(site.url + "/")
    alice.driver.find_element(By.CSS_SELECTOR, "form.create input[name=name]").send_keys(name)
    click(alice, "form.create input[name=private]")
    alice.driver.find_element(By.CSS_SELECTOR, "form.create button").click()
    wait_for(lambda: "/rooms/plans-" in alice.driver.current_url, 20, "the private room to open")
    room_url = alice.driver.current_url.split("#")[0].split("?")[0]
    slug = room_url.rstrip("/").split("/")[-1]
    bob.driver.get(room_url)
    assert "403" in bob.driver.page_source or "Forbidden" in bob.driver.page_source  # not a member yet
    alice.driver.find_element(By.CSS_SELECTOR, "#invite input[name=username]").send_keys(bob.username)
    alice.driver.find_element(By.CSS_SELECTOR, "#invite button").click()
    wait_for(lambda: alice.driver.find_elements(By.CSS_SELECTOR, '#members li[data-username="%s"]' % bob.username),
             20, "bob to be listed as a member")
    bob.driver.get(room_url)
    for page in (alice, bob):
        page.wait_state("online")

    bob.send("@%s shall we meet at noon?" % alice.username)
    wait_for(lambda: alice.driver.find_element(By.ID, "notifications").get_attribute("data-unread") == "1", 20,
             "alice's notifications badge to count the mention")
    alice.send("yes, at the cafe")
    wait_texts(bob, ["yes, at the cafe"])
    wait_texts(alice, ["yes, at the cafe"])
    mine = alice.driver.find_element(By.XPATH, '//li[@data-id][span[@class="text" and text()="yes, at the cafe"]]')
    click(alice, "button.edit", within=mine)
    box = alice.driver.find_element(By.ID, "text")
    box.clear()
    box.send_keys("yes, at the library")
    alice.driver.find_element(By.ID, "send").click()
    wait_texts(bob, ["yes, at the library"])
    shown = bob.driver.find_element(By.ID, mine.get_attribute("id"))
    assert shown.find_element(By.CSS_SELECTOR, ".edited").text == "(edited)"
    alice.send("ignore this")
    wait_texts(bob, ["ignore this"])
    wait_texts(alice, ["ignore this"])
    gone = alice.driver.find_element(By.XPATH, '//li[@data-id][span[@class="text" and text()="ignore this"]]')
    gone_id = gone.get_attribute("id")
    click(alice, "button.delete", within=gone)
    alice.driver.switch_to.alert.accept()
    wait_for(lambda: bob.driver.find_element(By.ID, gone_id).get_attribute("class") == "deleted", 20,
             "bob to see the delete")
    assert "ignore this" not in bob.texts()
    alice.screenshot("room-private.png", site)

    bob.driver.get(site.url + "/")  # bob away: alice writes twice
    alice.send("are you there?")
    alice.send("bob?")

    counts = []

    def unread():
        bob.driver.refresh()
        found = bob.driver.find_elements(By.CSS_SELECTOR, '#rooms li[data-room="%s"]' % slug)
        counts.append(found[0].get_attribute("data-unread") if found else None)
        return counts[-1]
    deadline = time.time() + 20
    while unread() != "2" and time.time() < deadline:
        time.sleep(0.5)
    assert counts[-1] == "2", "bob's room list counted %s" % counts
    bob.driver.get(site.url + "/rooms/lobby/")  # another room's page lists the rooms' counts too
    bob.wait_state("online")

    def listed():
        item = bob.driver.find_element(By.CSS_SELECTOR, '#rooms li[data-room="%s"]' % slug)
        return item.get_attribute("data-unread")
    assert listed() == "2"
    lobby = bob.driver.current_window_handle
    bob.driver.switch_to.new_window("tab")  # bob reads the room in a second tab...
    bob.driver.get(room_url)
    wait_texts(bob, ["are you there?", "bob?"])
    bob.driver.switch_to.window(lobby)  # ...and the first tab's count drops live (a read frame)
    wait_for(lambda: listed() == "0", 20, "the lobby tab's count for the room to clear")
    wait_for(lambda: (bob.driver.get(site.url + "/"), unread())[1] == "0", 20, "bob's unread count to clear")
    alice.driver.get(site.url + "/notifications/")
    alice.screenshot("notifications.png", site)
    assert alice.driver.find_elements(By.CSS_SELECTOR, '#notification-list li.notification[data-state="unread"]')
