"""Drives the member settings page in a real headless Chromium, as a member would.

    settings_browser.py BASE_URL MEMBER_TOKEN PURPOSE

With JavaScript: sign in with the login link, reach the purpose's switch with the Tab key
alone, check that it is a labelled `role="switch"` checkbox, flip it with the Space key
(the page's script submits at once) and read the receipt the page shows. Without
JavaScript: the same switch flipped back and saved with the Save button (a plain form
post). Prints one JSON line with what it saw; exits non-zero on the first mismatch.

Uses Debian's chromium and chromedriver (`CHROMEDRIVER`, default /usr/bin/chromedriver)
and never lets Selenium download a driver.
"""

import json
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

PAGE_TITLE = "Data sharing and AI model training"


def browser(javascript):
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--no-first-run"):
        options.add_argument(argument)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    return driver


def fail(message):
    print(f"settings_browser: {message}", file=sys.stderr)
    sys.exit(1)


def expect(condition, message):
    if not condition:
        fail(message)


def sign_in(driver, base, token):
    driver.get(f"{base}/settings/login?token={token}")
    expect(driver.current_url.rstrip("/").endswith("/settings"),
           f"the login link should land on /settings, got {driver.current_url}")
    heading = driver.find_element(By.TAG_NAME, "h1").text
    expect(heading == PAGE_TITLE, f"heading {heading!r}")


def the_switch(driver, purpose):
    switch = driver.find_element(By.ID, f"switch-{purpose}")
    expect(switch.get_attribute("type") == "checkbox", "the switch is a real checkbox")
    expect(switch.get_attribute("role") == "switch", "the checkbox has role=switch")
    label = driver.find_element(By.CSS_SELECTOR, f"label[for='switch-{purpose}']").text
    expect(label.strip() != "", "the switch has a label")
    described = (switch.get_attribute("aria-describedby") or "").split()
    expect(described, "the switch is described by the notice")
    for ident in described:
        expect(driver.find_elements(By.ID, ident), f"aria-describedby names #{ident}")
    return switch, label


def tab_to(driver, element_id, presses=40):
    """Presses Tab from the top of the page until `element_id` has the focus."""
    body = driver.find_element(By.TAG_NAME, "body")
    body.click()
    for _ in range(presses):
        active = driver.switch_to.active_element
        if active.get_attribute("id") == element_id:
            return active
        active.send_keys(Keys.TAB)
    fail(f"#{element_id} cannot be reached with the Tab key")


def saved_receipt(driver):
    status = WebDriverWait(driver, 20).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "[role=status]"))
    text = status[0].text
    expect("receipt" in text.lower(), f"the page shows a receipt: {text!r}")
    return text


def main():
    base, token, purpose = sys.argv[1], sys.argv[2], sys.argv[3]
    seen = {}

    driver = browser(javascript=True)
    try:
        sign_in(driver, base, token)
        switch, label = the_switch(driver, purpose)
        seen["label"] = label
        before = switch.is_selected()
        save = driver.find_element(By.CSS_SELECTOR, f"form[action='/settings/{purpose}'] button")
        expect(not save.is_displayed(), "with JavaScript the Save button is hidden")
        focused = tab_to(driver, f"switch-{purpose}")
        focused.send_keys(Keys.SPACE)
        WebDriverWait(driver, 20).until(lambda d: "receipt=" in d.current_url)
        seen["javascript_receipt"] = saved_receipt(driver)
        after = driver.find_element(By.ID, f"switch-{purpose}").is_selected()
        expect(after != before, "the Space key flipped the switch")
        seen["javascript"] = {"before": before, "after": after}
    finally:
        driver.quit()

    driver = browser(javascript=False)
    try:
        sign_in(driver, base, token)
        switch, _ = the_switch(driver, purpose)
        before = switch.is_selected()
        focused = tab_to(driver, f"switch-{purpose}")
        focused.send_keys(Keys.SPACE)
        expect("receipt=" not in driver.current_url, "without JavaScript nothing is sent yet")
        save = driver.find_element(By.CSS_SELECTOR, f"form[action='/settings/{purpose}'] button")
        expect(save.is_displayed(), "without JavaScript the Save button is shown")
        focused.send_keys(Keys.TAB)
        driver.switch_to.active_element.send_keys(Keys.ENTER)
        WebDriverWait(driver, 20).until(lambda d: "receipt=" in d.current_url)
        seen["form_receipt"] = saved_receipt(driver)
        after = driver.find_element(By.ID, f"switch-{purpose}").is_selected()
        expect(after != before, "the form post flipped the setting")
        seen["form"] = {"before": before, "after": after}
    finally:
        driver.quit()

    print(json.dumps(seen))


if __name__ == "__main__":
    main()
