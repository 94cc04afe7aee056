"""The seed page, walked in a real browser (Debian's chromium driven by Playwright): log in,
Websites → site → SSL/TLS → Client Certificates, create an ECDSA certificate, take the key from
the Preview Certificate dialog, close it and prove the key is gone, bind a domain name, create the
mTLS rule, then ask the edge with the downloaded certificate (200) and without (403), revoke
through the confirmation box and see the edge answer 403. Every screen is saved to
``artifacts/console/``.

The control plane runs for real (the API app with the console mounted, uvicorn on a loopback
port, SQLite, the system clock), and so do the edge (pulling snapshots from it) and an origin;
the browser is checked for script errors, unlabelled controls and requests to any other origin.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect, sync_playwright
from tests.console.conftest import Tenant, make_context, make_tenant

from certgate.api.app import create_app
from certgate.api.server import BackgroundServer, console_routes
from certgate.bootstrap import ensure_edge_token
from certgate.clock import SystemClock
from certgate.console.certificates import CONFIRM_REVOKE
from certgate.console.rules import NO_HOSTNAME_WARNING
from certgate.demo import origin_app
from certgate.edge.server import EdgeThread
from certgate.edge.settings import EdgeSettings
from certgate.model import CertificateStatus, RuleAction
from certgate.services import accounts, certificates, rules
from certgate.services.context import ServiceContext
from certgate.settings import ControlPlaneSettings

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
SEED_RULE = '(http.host eq "api.example.com" and not tls.client_auth.cert_verified)'

# Every visible form control must have a name a screen reader can read out.
_UNLABELLED_CONTROLS = """() => Array.from(document.querySelectorAll(
    "input:not([type=hidden]), select, textarea, button"))
  .filter(el => el.checkVisibility())
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
               && !el.getAttribute("aria-labelledby") && !(el.tagName === "BUTTON" && el.textContent.trim()))
  .map(el => el.outerHTML.slice(0, 80))"""


@dataclass
class ControlPlane:
    url: str
    ctx: ServiceContext
    tenant: Tenant
    edge_port: int
    edge_ca: Path

    def edge_status(self, hostname: str, cert: Path | None = None, key: Path | None = None) -> int:
        """Status of ``GET /`` at the edge, as a TLS client with or without a client certificate."""
        tls = ssl.create_default_context(cafile=str(self.edge_ca))
        if cert is not None:
            tls.load_cert_chain(cert, key)
        with socket.create_connection(("127.0.0.1", self.edge_port), timeout=10) as raw:
            with tls.wrap_socket(raw, server_hostname=hostname) as conn:
                conn.sendall(f"GET / HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
                return int(conn.recv(64).split(b" ", 2)[1])

    def expect_edge(
        self, status: int, hostname: str, cert: Path | None = None, key: Path | None = None
    ) -> None:
        """The edge applies changes within a second (long-poll); wait that long for ``status``."""
        deadline = time.monotonic() + 10
        seen = None
        while time.monotonic() < deadline:
            seen = self.edge_status(hostname, cert, key)
            if seen == status:
                return
            time.sleep(0.05)
        raise AssertionError(f"the edge answered {seen} for {hostname}, expected {status}")


@pytest.fixture
def control_plane(tmp_path: Path, _migrated_sqlite_file: Path) -> Iterator[ControlPlane]:
    """The control plane (API + console) on a real loopback server over SQLite on the system clock
    (so what it issues is valid now), an origin, and an edge that pulls its snapshots."""
    db = tmp_path / "certgate.db"
    shutil.copyfile(_migrated_sqlite_file, db)
    ctx = make_context(f"sqlite:///{db}", SystemClock())
    settings = ControlPlaneSettings(data_dir=tmp_path, database_url=f"sqlite:///{db}")
    try:
        edge_ca = tmp_path / "edge-ca.pem"
        edge_ca.write_text(accounts.ensure_edge_authority(ctx).certificate_pem)
        tenant = make_tenant(ctx, "alice", "example.com", ["api.example.com", "www.example.com"])
        token = ensure_edge_token(settings)
        app = create_app(ctx, settings, edge_token=token, extra_routes=console_routes(ctx, settings))
        with BackgroundServer(app) as server, BackgroundServer(origin_app) as origin:
            rules.create_origin_rule(
                ctx,
                tenant.account_id,
                tenant.site_id,
                rules.OriginRuleInput(name="origin", expression="ssl", origin_http_port=origin.port),
            )
            edge_settings = EdgeSettings(
                control_plane=server.url,
                token=token,
                listen="127.0.0.1:0",
                workers=1,
                state_dir=tmp_path / "edge",
                access_log=None,
            )
            with EdgeThread(edge_settings) as edge:
                assert edge.wait_for_version(ctx.store.current_version(), timeout=15)
                plane = ControlPlane(server.url, ctx, tenant, edge.port, edge_ca)
                plane.expect_edge(200, "api.example.com")  # not mTLS yet: straight to the origin
                yield plane
    finally:
        ctx.store.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    # Module scope, not session: the sync API keeps an event loop running in this thread until
    # it stops, and the async tests that follow need the thread to themselves.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class BrowserLog:
    """What the page did that it must not: script errors, console errors (CSP violations land
    there), and requests to any origin but the console's."""

    origin: str
    errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def on_request(self, request: Request) -> None:
        if not request.url.startswith((self.origin + "/", "blob:", "data:")):
            self.foreign_requests.append(request.url)


class SeedWalk:
    """The seed page's steps, in its order and words. Each step checks what the page shows and
    what the control plane stored, and saves a screenshot."""

    def __init__(self, page: Page, plane: ControlPlane, downloads: Path) -> None:
        self.page = page
        self.plane = plane
        self.tenant = plane.tenant
        self.downloads = downloads
        self.screens = 0
        self.certs_url = f"{plane.url}/console/sites/{self.tenant.site_id}/ssl/client-certificates"
        self.private_key_pem = ""
        self.certificate_pem = ""
        self.certificate_file = downloads / "client.crt"
        self.key_file = downloads / "client.key"

    def screen(self, name: str) -> None:
        self.screens += 1
        assert self.page.evaluate(_UNLABELLED_CONTROLS) == [], f"unlabelled controls on {name}"
        assert self.page.locator("h1").count() == 1, f"one h1 on {name}"
        self.page.screenshot(path=ARTIFACTS / f"{self.screens:02d}-{name}.png", full_page=True)

    def nav_to_client_certificates(self) -> None:
        nav = self.page.get_by_role("navigation", name=f"Website {self.tenant.site_name}")
        nav.get_by_role("link", name="Client Certificates").click()
        expect(self.page.get_by_role("heading", level=1)).to_have_text("Client Certificates")

    # -- the steps ------------------------------------------------------------------------------

    def log_in(self) -> None:
        page = self.page
        page.goto(f"{self.plane.url}/console/")
        expect(page).to_have_url(re.compile(r"/console/login$"))
        self.screen("login")
        page.get_by_label("AccessKey ID").fill(self.tenant.key_id)
        page.get_by_label("AccessKey secret").fill(self.tenant.secret)
        page.get_by_label("AccessKey secret").press("Enter")
        expect(page).to_have_url(f"{self.plane.url}/console/sites")

    def open_client_certificates(self) -> None:
        """ "In the ESA console, choose Websites and click the website name you want to manage.
        In the left-side navigation pane, choose SSL/TLS > Client Certificates.\""""
        page = self.page
        expect(page.get_by_role("link", name="Websites")).to_have_attribute("aria-current", "page")
        self.screen("websites")
        page.get_by_role("link", name=self.tenant.site_name, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(self.tenant.site_name)
        self.screen("site")
        self.nav_to_client_certificates()
        expect(page.get_by_text("No client certificates yet.")).to_be_visible()
        self.screen("client-certificates")

    def create_ecdsa_certificate(self) -> None:
        """ "Click Create Certificate. Set CSR Generation, Private Key Type, and Certificate
        Validity as needed. Click OK." Then take the certificate and key from the preview."""
        page = self.page
        page.get_by_role("link", name="Create Certificate").click()
        expect(page.get_by_label("Generated by certgate")).to_be_checked()
        expect(page.get_by_label("CSR", exact=True)).to_be_hidden()  # only for My own CSR
        page.get_by_label("ECDSA (P-256)").check()
        expect(page.get_by_label("Certificate Validity")).to_have_value("365")
        expect(page.get_by_text("The default validity period for a certificate is one year.")).to_be_visible()
        self.screen("create-certificate")
        page.get_by_role("button", name="OK").click()

        dialog = page.get_by_role("dialog", name="Preview Certificate")
        expect(dialog).to_be_visible()
        assert page.evaluate("document.querySelector('[data-preview]').matches(':modal')")
        expect(dialog).to_contain_text(
            "Copy the certificate and key to your client. After you close the dialog box, "
            "they will no longer be accessible."
        )
        self.certificate_pem = dialog.get_by_label("Certificate", exact=True).input_value()
        self.private_key_pem = dialog.get_by_label("Private Key", exact=True).input_value()
        cert = x509.load_pem_x509_certificate(self.certificate_pem.encode())
        key = serialization.load_pem_private_key(self.private_key_pem.encode(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
        assert cert.public_key() == key.public_key()

        dialog.get_by_role("button", name="Copy key").click()
        expect(dialog.get_by_role("status")).to_have_text("Private Key copied to the clipboard.")
        assert page.evaluate("navigator.clipboard.readText()") == self.private_key_pem
        for name, target, suffix in (
            ("Download certificate", self.certificate_file, ".crt"),
            ("Download key", self.key_file, ".key"),
        ):
            with page.expect_download() as info:
                dialog.get_by_role("link", name=name).click()
            download = info.value
            assert download.url.startswith("blob:")  # made in the page, not served again
            assert download.suggested_filename.endswith(suffix)
            download.save_as(target)
        assert self.certificate_file.read_text() == self.certificate_pem
        assert self.key_file.read_text() == self.private_key_pem
        self.screen("preview-certificate")

    def close_preview_and_prove_the_key_is_gone(self) -> None:
        page = self.page
        key_body = self.private_key_pem.splitlines()[1]
        page.get_by_role("dialog", name="Preview Certificate").get_by_role("link", name="Close").click()
        expect(page).to_have_url(self.certs_url)
        expect(page.locator("[data-preview]")).to_have_count(0)
        expect(page.locator("tr[data-certificate-id]")).to_have_count(1)

        def key_absent(where: str) -> None:
            html = page.content()
            assert "PRIVATE KEY" not in html and key_body not in html, where

        key_absent("after closing")
        self.screen("after-closing-the-preview")
        page.reload()
        key_absent("after a reload")
        page.go_back()  # the preview's history entry was replaced: Back is the Create form
        expect(page.get_by_role("heading", level=1)).to_have_text("Create Certificate")
        key_absent("after Back")
        page.go_forward()
        expect(page).to_have_url(self.certs_url)
        key_absent("after Forward")

    def bind_hostname(self, hostname: str) -> None:
        """ "In the Domain Names section, click Configure and set Domain Name. Click OK.\""""
        page = self.page
        page.get_by_role("region", name="Domain Names").get_by_role("link", name="Configure").click()
        expect(page.get_by_text("You can enter up to 50 domain names at a time.")).to_be_visible()
        page.get_by_label(hostname, exact=True).check()
        expect(page.locator("[data-hostname-count]")).to_have_text("1 of 50 domain names.")
        self.screen("domain-names")
        page.get_by_role("button", name="OK").click()
        expect(page.get_by_role("status")).to_have_text("The domain names were saved.")
        expect(page.get_by_role("list", name="Bound domain names")).to_have_text(hostname)

    def create_mtls_rule(self, hostname: str) -> None:
        """ "Click Create mTLS Rule. Client Certificate Verified: retain the default. Hostname:
        enter the name of the domain. Set Action to Block. Click OK.\""""
        page = self.page
        page.get_by_role("link", name="Create mTLS Rule").click()
        warning = page.locator("#no-hostname-warning")
        expression = page.locator("output[data-expression]")
        expect(page.locator("#verified_off")).to_be_checked()
        expect(page.get_by_label("Action")).to_have_value("deny")
        expect(warning).to_be_visible()
        expect(warning).to_contain_text(NO_HOSTNAME_WARNING)
        expect(expression).to_have_text("(not tls.client_auth.cert_verified)")
        self.screen("mtls-rule-without-hostname")
        page.get_by_label("Hostname").fill(hostname)
        expect(warning).to_be_hidden()
        expect(expression).to_have_text(SEED_RULE)
        self.screen("mtls-rule")
        page.get_by_role("button", name="OK").click()
        expect(page.get_by_role("status")).to_have_text("The rule was created.")
        row = page.locator("tr[data-rule-id]")
        expect(row).to_contain_text(SEED_RULE)
        expect(row).to_contain_text("Block")
        self.screen("waf-rules")
        [rule], _ = rules.list_waf_rules(
            self.plane.ctx, self.tenant.account_id, self.tenant.site_id, phase="http_custom"
        )
        assert (rule.expression, rule.action) == (SEED_RULE, RuleAction.DENY)

    def revoke_certificate(self) -> None:
        """ "In the Actions column, click Revoke. Select I confirm that the certificate is no
        longer required and click OK." Done with the keyboard."""
        page = self.page
        self.nav_to_client_certificates()
        row = page.locator("tr[data-certificate-id]")
        row.get_by_role("link", name="Revoke").focus()
        page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name="Revoke Certificate")
        expect(dialog).to_be_visible()
        box = dialog.get_by_label(CONFIRM_REVOKE)
        expect(box).to_be_focused()
        expect(box).not_to_be_checked()
        dialog.get_by_role("button", name="OK").click()  # refused by the browser: box not ticked
        expect(dialog).to_be_visible()
        assert self._status() is CertificateStatus.ACTIVE
        box.focus()
        page.keyboard.press("Space")
        expect(box).to_be_checked()
        self.screen("revoke")
        page.keyboard.press("Enter")
        expect(page.get_by_role("status")).to_have_text("The certificate was revoked.")
        expect(row.locator(".status")).to_have_text("Revoked")
        expect(row.get_by_role("button", name="Activate")).to_be_visible()
        self.screen("revoked")
        assert self._status() is CertificateStatus.REVOKED

    def escape_also_closes_a_preview_for_good(self) -> None:
        page = self.page
        page.get_by_role("link", name="Create Certificate").click()
        page.get_by_role("button", name="OK").click()  # the defaults: RSA, one year
        dialog = page.get_by_role("dialog", name="Preview Certificate")
        expect(dialog.get_by_label("Private Key", exact=True)).to_have_value(re.compile("BEGIN PRIVATE KEY"))
        page.keyboard.press("Escape")
        expect(page).to_have_url(self.certs_url)
        expect(page.locator("tr[data-certificate-id]")).to_have_count(2)
        assert "PRIVATE KEY" not in page.content()

    def check_a_narrow_screen(self) -> None:
        page = self.page
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        expect(page.get_by_role("link", name="Create Certificate")).to_be_in_viewport()
        self.screen("narrow-screen")

    def _status(self) -> CertificateStatus:
        _, certs, _ = certificates.list_client_certificates(
            self.plane.ctx, self.tenant.account_id, self.tenant.site_id
        )
        [cert] = [c for c in certs if c.cert.certificate_pem == self.certificate_pem]
        return cert.status


@pytest.fixture
def walk(chromium: Browser, control_plane: ControlPlane, tmp_path: Path) -> Iterator[SeedWalk]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=control_plane.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    log = BrowserLog(control_plane.url)
    page.on("console", log.on_console)
    page.on("pageerror", lambda error: log.errors.append(str(error)))
    page.on("request", log.on_request)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    try:
        yield SeedWalk(page, control_plane, downloads)
    finally:
        context.close()
    assert log.errors == []
    assert log.foreign_requests == []


def test_the_seed_page_in_a_browser(walk: SeedWalk) -> None:
    walk.log_in()
    walk.open_client_certificates()
    walk.create_ecdsa_certificate()
    walk.close_preview_and_prove_the_key_is_gone()
    walk.bind_hostname("api.example.com")
    walk.create_mtls_rule("api.example.com")
    plane, crt, key = walk.plane, walk.certificate_file, walk.key_file
    plane.expect_edge(403, "api.example.com")  # without the certificate: blocked by the rule
    plane.expect_edge(200, "api.example.com", crt, key)  # with the downloaded one: the origin
    assert plane.edge_status("www.example.com") == 200  # the rule names api.example.com only
    walk.revoke_certificate()
    plane.expect_edge(403, "api.example.com", crt, key)  # revoked: blocked
    walk.escape_also_closes_a_preview_for_good()
    walk.check_a_narrow_screen()
    assert walk.screens == 14
