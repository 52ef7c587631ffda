"""The pages in real headless Chromium against a real aiohttp server.

The agent desktop receives its screen-pop through the real desktop hub
(`centralino.web.desktop_ws.DesktopHub`) and acknowledges it; the other ports are the web
layer's test doubles from `test_pages`. Every page is behind the real login (accounts in
PostgreSQL, counters in Redis): each test logs in through the form as the person who would use
the page. One browser for the module.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Locator, Page

from acd.models import AgentDefinition, AgentState
from centralino.access.models import Role
from centralino.adapters.pg_context import PgCustomerStore, PgTicketStore, PgTimelineStore
from centralino.adapters.pg_desk import PgDeskRecords
from centralino.desk_transfer import AmiDeskTransfer
from centralino.simulator.ami_server import AmiServer
from centralino.supervision import Supervision
from centralino.web.app import READINESS
from centralino.web.desktop_api import ContextDeskTickets, DeskConfig, add_desktop_api
from centralino.web.desktop_ws import DesktopHub
from centralino.web.supervision import add_supervision
from context.clock import SystemClock
from context.models import (
    ChannelKind,
    Customer,
    Direction,
    ExternalLink,
    Fact,
    Identity,
    IdentityKind,
    Interaction,
    Resolution,
    ResolutionStatus,
    Ticket,
)
from context.screen_pop import (
    IvrSummary,
    ScreenPop,
    SourceRecord,
    assemble,
    caller_view,
    fact_record,
    interaction_view,
    ivr_view,
    ticket_view,
)
from context.service import ContextService
from tests.helpers import eventually, sim_ami_client
from tests.web.auth_helpers import PASSWORD, add_user, make_access
from tests.web.browser import Watched, launch_browser, open_page, until
from tests.web.test_pages import FakeAgents, Site, build_site

pytestmark = pytest.mark.asyncio(loop_scope="module")

XSS_NOTE = "<script>alert(1)</script><img src=x onerror=alert(2)> prefers email"
DESK_OUTCOMES = ("resolved", "follow_up")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with launch_browser() as b:
        yield b


@dataclass
class Served:
    site: Site
    hub: DesktopHub
    server: TestServer
    asterisk: AmiServer
    pool: asyncpg.Pool

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest_asyncio.fixture(loop_scope="module")
async def served(pg_dsn: str, redis_url: str) -> AsyncIterator[Served]:
    # The pool and client are opened on the module's loop (the shared fixtures use each
    # test's own loop), and the account tables emptied as `pg_pool` would.
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    redis = aioredis.Redis.from_url(redis_url)
    await redis.flushdb()
    await pool.execute("TRUNCATE accounts, sessions, api_tokens, audit_log RESTART IDENTITY")
    teams = {a: v["teams"] for a, v in FakeAgents("a1", "a2").views.items()}
    access = make_access(pool, redis, agent_teams=teams, ws_recheck_s=0.2)
    site = build_site(pool, redis, interval_s=0.05, access=access)
    await add_user(access, "root", Role.ADMIN)
    await add_user(access, "sup", Role.SUPERVISOR, teams={"blue"})
    await add_user(access, "ann", Role.AGENT, agent_id="a1", teams={"blue"})
    await add_user(access, "bea", Role.AGENT, agent_id="a2", teams={"blue"})
    hub = DesktopHub(clock=SystemClock(), agents=site.agents.views.keys())
    site.app.router.add_get("/ws/agent/{agent_id}", hub.handle)
    # Supervision over a simulated Asterisk's AMI: "lead" supervises blue from phone PJSIP/lead.
    asterisk = AmiServer(auth_failure_delay_s=0.05)
    await asterisk.start()
    ami = sim_ami_client(asterisk.port, seed=5)
    await ami.connect()
    phones = {
        a: AgentDefinition(a, {"support": 3}, endpoint=f"PJSIP/{a}") for a in ("a1", "a2", "lead")
    }

    async def state(agent_id: str) -> AgentState | None:
        view = site.agents.views.get(agent_id)
        return AgentState(view["state"]) if view is not None else None

    add_supervision(site.app, Supervision(ami=ami, agents=phones, agent_state=state))
    add_desktop_api(
        site.app,
        config=DeskConfig(not_ready_reasons=("Break", "Lunch"), outcomes=DESK_OUTCOMES),
        records=PgDeskRecords(pool=pool),
        now=lambda: datetime.now(UTC),
        tickets=ContextDeskTickets(
            context=ContextService(
                customers=PgCustomerStore(pool=pool),
                timeline=PgTimelineStore(pool=pool),
                tickets=PgTicketStore(pool=pool),
                clock=SystemClock(),
            )
        ),
        transfer=AmiDeskTransfer(ami=ami, agents=phones, queues=["billing", "support"]),
    )
    await add_user(access, "lead", Role.SUPERVISOR, agent_id="lead", teams={"blue"})

    async def close_desktops(app: web.Application) -> None:
        await hub.close()

    site.app.on_shutdown.append(close_desktops)
    server = TestServer(site.app, host="127.0.0.1", port=0)
    await server.start_server()
    access.allow_local(server.port or 0)
    try:
        yield Served(site, hub, server, asterisk, pool)
    finally:
        await server.close()
        await ami.close()
        await asterisk.stop()
        await pool.close()
        await redis.aclose()


async def log_in(w: Watched, served: Served, path: str, username: str) -> None:
    """Open `path`, land on the login form (the page needs a login), log in, come back."""
    page = w.page
    await page.goto(served.url(path))
    await page.wait_for_url(re.compile(r"/login\?next="), timeout=5000)
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(served.url(path), timeout=5000)
    await page.locator("#account-name", has_text=username).wait_for(timeout=5000)


# --- a pop with every section, built with the context package's own helpers -----------------


def source(name: str, status: str, facts: list[Fact], *, error: str = "") -> SourceRecord:
    return {
        "name": name,
        "status": status,
        "elapsed_ms": 80.0 if status == "ok" else None,
        "error": error,
        "facts": [fact_record(f) for f in facts],
    }


def known_caller_pop(*, crm_late: bool) -> ScreenPop:
    now = datetime.now(UTC)
    customer = Customer(id=42, display_name="Rossi Costruzioni S.r.l.", created_at=now)
    resolution = Resolution(
        status=ResolutionStatus.FOUND,
        identity=Identity(IdentityKind.PHONE, "+390212345678"),
        customers=(customer,),
        links=(ExternalLink("erp", "C-1001"), ExternalLink("crm", "77")),
        raw="0212345678",
    )
    erp = [
        Fact(
            "erp",
            "invoice",
            {"number": "2026/118", "amount": 1250.5, "due": "2026-11-01", "overdue": True},
            now - timedelta(milliseconds=200),
        ),
        Fact("erp", "shipment", {"order": "SO-555", "status": "in transit"}, now),
    ]
    crm_facts = [
        Fact("crm", "note", {"text": XSS_NOTE}, now),
        Fact("crm", "owner", {"name": "Giulia Bianchi"}, now),
    ]
    sources = [
        source("erp", "ok", erp),
        source("billing", "failed", [], error="HTTP 500 from billing"),
        source("crm", "ok", crm_facts) if crm_late else source("crm", "pending", []),
    ]
    ticket = Ticket(
        id=9,
        customer_id=42,
        title="Invoice 2026/118 disputed <b>urgent</b>",
        pipeline="billing",
        phase="waiting_customer",
        opened_at=now - timedelta(days=3),
        updated_at=now - timedelta(hours=5),
    )
    timeline = [
        Interaction(
            id=n,
            customer_id=42,
            channel=channel,
            direction=Direction.INBOUND,
            started_at=now - timedelta(days=n),
            agent_id="a2",
            intent="invoice_status",
            outcome="answered",
            summary=f"{channel.value} about the invoice",
        )
        for n, channel in enumerate(
            [ChannelKind.EMAIL, ChannelKind.WHATSAPP, ChannelKind.VOICE, ChannelKind.CHAT], 1
        )
    ]
    return assemble(
        linkedid="1732352400.17",
        now=now,
        caller=caller_view(resolution),
        sources=sources,
        open_tickets=[ticket_view(ticket)],
        last_interactions=[interaction_view(i) for i in timeline],
        ivr=ivr_view(
            IvrSummary(
                predicted_intent="invoice_dispute",
                confidence=0.87,
                transcript="vorrei parlare della fattura di ottobre",
                steps=("menu: 2 (billing)", "said: invoice"),
            )
        ),
    )


def unknown_caller_pop() -> ScreenPop:
    resolution = Resolution(
        status=ResolutionStatus.NOT_FOUND,
        identity=Identity(IdentityKind.PHONE, "+390299999999"),
        raw="02 9999 9999",
    )
    return assemble(
        linkedid="1732352499.3",
        now=datetime.now(UTC),
        caller=caller_view(resolution),
        sources=[source("erp", "skipped", []), source("crm", "timed_out", [], error="after 2 s")],
        open_tickets=[],
        last_interactions=[],
        ivr=None,
    )


async def desktop_connected(served: Served, agent_id: str) -> None:
    def connected() -> None:
        assert served.hub.is_connected(agent_id)

    await eventually(connected, timeout=5)


async def text_of(page: Page, selector: str) -> str:
    return (await page.locator(selector).inner_text()).strip()


# --- (a) the desktop shows a pop pushed through the hub and acknowledges it -----------------


async def test_desktop_shows_the_pop_acks_it_and_shows_markup_as_text(
    browser: Browser, served: Served
) -> None:
    async with open_page(browser, width=1360, height=900) as w:
        page = w.page
        await log_in(w, served, "/desktop/a1", "ann")
        await desktop_connected(served, "a1")

        acked = await served.hub.push_screen_pop("a1", known_caller_pop(crm_late=False), 5.0)

        assert acked, "the desktop must acknowledge the pop (the hub rings the phone after)"
        delivery = served.hub.last_delivery("1732352400.17")
        assert delivery is not None and delivery.acked_at is not None
        assert await text_of(page, "[data-testid=caller-name]") == "Rossi Costruzioni S.r.l."
        assert await text_of(page, "[data-testid=caller-status]") == "Known customer"
        erp = page.locator("[data-source=erp] .source-head")
        await until(lambda: _text_matches(erp, r"^ERP · \d+(\.\d)? s ago · "), timeout=3)
        # The systems' raw fields are folded: closed until the agent opens one.
        assert await page.locator("[data-source=erp]").get_attribute("open") is None
        await page.locator("[data-source=erp] summary").click()
        facts = await text_of(page, "[data-testid=facts]")
        assert "2026/118" in facts and "In transit".lower() in facts.lower()
        assert "Billing: missing (failed)" in facts and "HTTP 500 from billing" in facts
        assert "Still fetching: CRM" in await text_of(page, ".call-meta")
        assert await text_of(page, "[data-source=crm]") == "CRM\nFetching…"
        tickets = await text_of(page, "[data-testid=tickets]")
        assert "#9 Invoice 2026/118 disputed <b>urgent</b>" in tickets  # markup shown as text
        assert "Waiting customer" in tickets
        channels = await page.locator("[data-testid=interactions] li").evaluate_all(
            "els => els.map(e => e.dataset.channel)"
        )
        assert channels == ["email", "whatsapp", "voice", "chat"]
        interactions = await text_of(page, "[data-testid=interactions]")
        for name in ["Email", "WhatsApp", "Voice", "Chat"]:
            assert name in interactions
        ivr = await text_of(page, "[data-testid=ivr]")
        assert "Invoice dispute" in ivr and "confidence 87 %" in ivr
        assert "vorrei parlare della fattura di ottobre" in ivr and "menu: 2 (billing)" in ivr

        await w.screenshot("desktop-pop-pending")

        # The age ticks while the card is on screen.
        first = await erp.inner_text()
        await until(lambda: _text_differs(erp, first), timeout=3)

        # A late CRM result for the same call updates the card in place; no ack expected.
        sent = await served.hub.push_update("a1", "1732352400.17", known_caller_pop(crm_late=True))
        assert sent == 1
        crm = page.locator("[data-source=crm]")
        await crm.wait_for(timeout=3000)
        # What the agent unfolded stays open across the late update.
        assert await page.locator("[data-source=erp]").get_attribute("open") is not None
        await page.locator("[data-source=crm] summary").click()
        assert XSS_NOTE in await crm.inner_text()  # the CRM note, as text
        assert "Giulia Bianchi" in await crm.inner_text()
        assert "All sources answered" in await text_of(page, ".call-meta")
        assert await page.locator("[data-testid=pop]").count() == 1
        assert await page.locator("img[src=x]").count() == 0
        assert await page.evaluate("document.querySelectorAll('main script').length") == 0
        await w.screenshot("desktop-pop")

        assert w.dialogs == [], "markup from the CRM must never execute"
        assert w.errors == []


async def _text_matches(locator: Locator, pattern: str) -> bool:
    text = (await locator.text_content() or "").strip()
    assert re.match(pattern, text), text
    return True


async def _text_differs(locator: Locator, before: str) -> bool:
    assert (await locator.inner_text()) != before
    return True


async def test_an_agent_works_a_call_from_the_desktop_with_the_keyboard(
    browser: Browser, served: Served
) -> None:
    """Ready, a pop with its queue, a note, the wrap-up timer and outcome, the shortcuts (not
    while typing); at desktop and phone widths."""
    pool = served.pool
    linkedid = "1732352400.17"
    await pool.execute(
        "INSERT INTO customers (id, display_name) VALUES (42, 'Rossi Costruzioni S.r.l.')"
        " ON CONFLICT (id) DO NOTHING"
    )
    await pool.execute("DELETE FROM interactions WHERE linkedid = $1", linkedid)
    await pool.execute(
        "INSERT INTO interactions (channel, direction, linkedid, agent_id, started_at)"
        " VALUES ('voice', 'inbound', $1, 'a1', now())",
        linkedid,
    )
    agents = served.site.agents
    for width, height, shot in [(1280, 900, "desk-1280"), (390, 844, "desk-390")]:
        agents.views["a1"]["state"] = "not_ready"
        agents.requests.clear()
        async with open_page(browser, width=width, height=height) as w:
            page = w.page
            await log_in(w, served, "/desktop/a1", "ann")
            await desktop_connected(served, "a1")
            # The configured reasons and the documented keys.
            reasons = await page.locator("#reason option").all_inner_texts()
            assert reasons == ["Break", "Lunch"]
            assert "R" in await text_of(page, "[data-testid=shortcuts]")
            # Ready with the key (the page, not a field, has the focus).
            await page.locator("body").click(position={"x": 5, "y": 5})
            await page.keyboard.press("r")
            await eventually(lambda: _equal(agents.requests, [("a1", "ready", "")]), timeout=3)
            await page.locator("#state-now", has_text="Ready").wait_for(timeout=3000)

            payload = {**known_caller_pop(crm_late=True), "queue": "billing"}
            assert await served.hub.push_screen_pop("a1", payload, 5.0)
            agents.views["a1"]["state"] = "busy"
            agents.views["a1"]["since_epoch_s"] = datetime.now(UTC).timestamp() - 65
            call = page.locator("[data-testid=current-call]")
            await call.wait_for(timeout=3000)
            assert "Rossi Costruzioni" in await call.inner_text()
            assert await text_of(page, "[data-testid=cc-queue]") == "Queue billing"
            await page.locator("[data-testid=cc-time]", has_text="on call 1:").wait_for(
                timeout=5000
            )

            # A note (markup stays text); typing "r" and "n" in it changes no state.
            note = f"{XSS_NOTE} ({width})"
            await page.get_by_label("Note on this call and customer").fill("")
            await page.get_by_label("Note on this call and customer").type(note)
            await page.get_by_role("button", name="Save note").click()
            await page.locator("[data-testid=notes] li", has_text=f"({width})").wait_for(
                timeout=3000
            )
            assert agents.requests == [("a1", "ready", "")]
            stored = await pool.fetchval(
                "SELECT body FROM desk_notes WHERE linkedid = $1 ORDER BY id DESC LIMIT 1",
                linkedid,
            )
            assert stored == note

            # A ticket for the caller, moved off the usual path: the desk asks for a reason.
            title = f"Refund <i>now</i> ({width})"
            await page.get_by_label("New ticket title").fill(title)
            await page.get_by_role("button", name="Open ticket").click()
            row = page.locator("[data-testid=tickets] li", has_text=title)
            await row.wait_for(timeout=3000)
            ticket_id = await row.get_attribute("data-ticket")
            await row.get_by_label(f"Move ticket #{ticket_id} to").select_option("resolved")
            await row.get_by_role("button", name="Move").click()
            await row.get_by_text("not the usual path").wait_for(timeout=3000)
            await row.get_by_label(f"Reason for moving ticket #{ticket_id}").fill(
                "paid on the call"
            )
            await row.get_by_role("button", name="Move").click()
            await row.get_by_text("Resolved ·").wait_for(timeout=3000)
            phase = await pool.fetchval(
                "SELECT phase FROM tickets WHERE id = $1", int(ticket_id or 0)
            )
            assert phase == "resolved"

            # Transfer the caller to a queue: AMI BlindTransfer of the agent's bridged channel.
            served.asterisk.add_channel(f"PJSIP/trunk-{width}", bridge_id=f"b{width}", state=6)
            served.asterisk.add_channel(f"PJSIP/a1-{width}", bridge_id=f"b{width}", state=6)
            await page.get_by_label("Transfer to queue").select_option("support")
            await page.get_by_role("button", name="Transfer").click()
            await page.get_by_text("Transferred to support.").wait_for(timeout=3000)
            sent = [a for a in served.asterisk.actions_received if a.name == "BlindTransfer"]
            assert (sent[-1].get("Channel"), sent[-1].get("Exten")) == (
                f"PJSIP/a1-{width}",
                "support",
            )
            served.asterisk.hangup_channel(f"PJSIP/a1-{width}")
            served.asterisk.hangup_channel(f"PJSIP/trunk-{width}")

            # The call ends: wrap-up with its timer; the outcome chosen, "w" finishes it.
            agents.views["a1"]["state"] = "wrap_up"
            agents.views["a1"]["since_epoch_s"] = datetime.now(UTC).timestamp() - 12
            await page.locator("[data-testid=wrapup]").wait_for(state="visible", timeout=5000)
            timer = await text_of(page, "[data-testid=wrapup-timer]")
            assert re.match(r"^0:1\d$", timer), timer
            await page.locator("#outcome").select_option("follow_up")
            await w.screenshot(shot)
            await page.locator("body").click(position={"x": 5, "y": 5})
            await page.keyboard.press("w")
            await eventually(lambda: _equal(agents.requests, [("a1", "ready", "")] * 2), timeout=3)
            code = await pool.fetchval(
                "SELECT wrap_up_code FROM interactions WHERE linkedid = $1", linkedid
            )
            assert code == "follow_up", await text_of(page, "#wrapup-status")
            assert await page.locator("img[src=x]").count() == 0
            # Nothing wider than the screen (the phone width included).
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{overflow}px wider than the {width}px screen"
            assert w.dialogs == [] and w.errors == []
        served.hub.forget(linkedid)


async def test_unknown_number_pop_offers_to_link_it(browser: Browser, served: Served) -> None:
    async with open_page(browser) as w:
        page = w.page
        await log_in(w, served, "/desktop/a2", "bea")
        await desktop_connected(served, "a2")
        assert await served.hub.push_screen_pop("a2", unknown_caller_pop(), 5.0)

        assert await text_of(page, "[data-testid=caller-name]") == "unknown number"
        assert await text_of(page, "[data-testid=caller-status]") == "Not in our records"
        facts = await text_of(page, "[data-testid=facts]")
        assert (
            "CRM: missing (timed out)" in facts
            and "ERP: missing (nothing to look it up by)" in facts
        )
        await page.get_by_label("Customer number").fill("42")
        await page.get_by_role("button", name="Link number").click()
        await eventually(
            lambda: _equal(served.site.linker.links, [("phone", "+390299999999", 42)]), timeout=3
        )
        await page.get_by_text("Linked to customer #42.").wait_for(timeout=3000)
        await w.screenshot("desktop-unknown")

        # The next call replaces the card; the previous one is listed as earlier.
        assert await served.hub.push_screen_pop("a2", known_caller_pop(crm_late=True), 5.0)
        await page.locator("[data-testid=pop][data-linkedid='1732352400.17']").wait_for()
        assert await page.locator("[data-testid=pop]").count() == 1
        assert "unknown number · call 1732352499.3" in await text_of(page, "#history")
        assert w.errors == []


def _equal(a: object, b: object) -> None:
    assert a == b


# --- (b) state buttons -------------------------------------------------------------------


async def test_state_buttons_post_to_agent_control(browser: Browser, served: Served) -> None:
    agents = served.site.agents
    async with open_page(browser) as w:
        page = w.page
        await log_in(w, served, "/desktop/a1", "ann")
        await page.locator("#state-now", has_text="Not ready").wait_for(timeout=3000)

        await page.get_by_role("button", name="Ready", exact=True).click()
        await page.locator("#state-now", has_text="Ready").wait_for(timeout=3000)
        await page.get_by_label("Not ready reason").select_option("Lunch")
        await page.get_by_role("button", name="Not ready").click()
        await page.locator("#state-reason", has_text="Reason: Lunch").wait_for(timeout=3000)
        await page.get_by_role("button", name="Log out").click()
        await page.locator("#state-now", has_text="Logged out").wait_for(timeout=3000)
        assert agents.requests == [
            ("a1", "ready", ""),
            ("a1", "not_ready", "Lunch"),
            ("a1", "logged_out", ""),
        ]

        # The ACD refuses (a call in progress): the agent sees why.
        agents.on_call.add("a1")
        await page.get_by_role("button", name="Ready", exact=True).click()
        await page.locator("#state-error", has_text="409").wait_for(timeout=3000)

        # A supervisor set the state: the agent reads who and why (as text).
        notice = {"kind": "state_forced", "by": "sup", "state": "not_ready"}
        sent = await served.hub.push_notice("a1", {**notice, "reason": "<b>Coaching</b>"})
        assert sent == 1
        shown = page.locator("#state-notice")
        await shown.filter(has_text="Not ready, set by sup: <b>Coaching</b>").wait_for(timeout=3000)
        await w.screenshot("desktop-state")
        assert w.errors == []


# --- (c) the wallboard -------------------------------------------------------------------


async def test_wallboard_shows_the_feed_and_follows_it(browser: Browser, served: Served) -> None:
    async with open_page(browser, width=1600, height=900) as w:
        page = w.page
        await log_in(w, served, "/wallboard", "sup")
        sales = page.locator("[data-queue=sales]")
        support = page.locator("[data-queue=support]")
        await sales.wait_for(timeout=3000)

        assert await text_of(page, "[data-queue=sales] [data-testid=waiting] .value") == "3"
        assert await text_of(page, "[data-queue=sales] [data-testid=service-level] .value") == (
            "86 %"
        )
        assert await text_of(page, "[data-queue=sales] [data-testid=sl-state]") == "On target"
        assert await text_of(page, "[data-queue=support] [data-testid=sl-state]") == (
            "Below target"
        )
        assert "tile sl-bad" in (await support.get_attribute("class") or "")
        assert await text_of(page, "[data-queue=sales] [data-testid=longest-wait] .value") == "1:15"
        assert await text_of(page, "[data-queue=sales] [data-testid=asa] .value") == "14 s"
        assert await text_of(page, "[data-queue=sales] [data-testid=abandon] .value") == "4 %"
        staffing = await text_of(page, "[data-queue=support] [data-testid=staffing]")
        assert "12 needed now" in staffing and "9 logged in" in staffing and "(3 short)" in staffing
        chips = await text_of(page, "[data-queue=sales] .agents")
        assert "Ready" in chips and "Wrap-up" in chips
        team = await text_of(page, "[data-team=blue]")
        assert "91 %" in team and "78 %" in team and "4.4 / 5" in team
        await w.screenshot("wallboard")

        view = served.site.wallboard.view
        view["queues"][0]["waiting"] = 14  # type: ignore[index]
        view["queues"][0]["service_level"] = 0.74  # type: ignore[index]

        async def updated() -> bool:
            assert await text_of(page, "[data-queue=sales] [data-testid=waiting] .value") == "14"
            assert await text_of(page, "[data-queue=sales] [data-testid=sl-state]") == "At risk"
            return True

        await until(updated, timeout=5)
        assert w.errors == []


# --- the index ---------------------------------------------------------------------------


async def test_index_links_everything_and_lists_recent_calls(
    browser: Browser, served: Served
) -> None:
    async with open_page(browser) as w:
        page = w.page
        await log_in(w, served, "/", "root")
        await page.wait_for_selector("body[data-loaded=true]", timeout=5000)
        hrefs = await page.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
        for href in ["/wallboard", "/desktop/a1", "/desktop/a2", "/healthz", "/readyz", "/metrics"]:
            assert href in hrefs
        rows = page.locator("#calls tr")
        assert await rows.count() == 5
        assert "Rossi Costruzioni" in await rows.nth(1).inner_text()
        assert "127.0.0.1:4573" in await text_of(page, "#about")
        assert await text_of(page, "#health-pill") == "Ready"
        await w.screenshot("index")
        assert w.errors == []


async def test_index_says_degraded_when_only_an_optional_source_is_down(
    browser: Browser, served: Served
) -> None:
    """A CRM whose circuit is open: calls are still taken (200), but the page must not say
    everything is fine."""
    readiness = served.site.app[READINESS]

    async def crm() -> str:
        raise ConnectionError("crm: circuit open (backend keeps failing)")

    readiness.add("backend:crm", crm, required=False)
    try:
        async with open_page(browser) as w:
            await log_in(w, served, "/", "root")
            await w.page.wait_for_selector("body[data-loaded=true]", timeout=5000)
            assert await text_of(w.page, "#health-pill") == "Degraded"
            await w.screenshot("index-degraded")
            assert "down" in await text_of(w.page, "#checks")
            assert w.errors == []
    finally:
        del readiness.probes["backend:crm"]


# --- logging in and out ------------------------------------------------------------------


async def test_agent_logs_in_gets_a_pop_and_signs_out(browser: Browser, served: Served) -> None:
    """The whole day in small: the login form, the desktop, a pop, signing out. After that the
    session is gone: the desktop's socket is closed and the pages ask for a login again."""
    async with open_page(browser) as w:
        page = w.page
        await page.goto(served.url("/login"))  # no next: an agent lands on their own desktop
        await page.get_by_label("Username").fill("ann")
        await page.get_by_label("Password").fill("not the password at all")
        await page.get_by_role("button", name="Log in").click()
        await page.get_by_role("alert").wait_for(timeout=5000)
        assert await text_of(page, "[role=alert]") == "Wrong username or password."
        await w.screenshot("login-failed")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(served.url("/desktop/a1"), timeout=5000)
        await desktop_connected(served, "a1")
        assert await served.hub.push_screen_pop("a1", known_caller_pop(crm_late=True), 5.0)
        assert await text_of(page, "[data-testid=caller-name]") == "Rossi Costruzioni S.r.l."
        await w.screenshot("desktop-logged-in")

        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(re.compile(r"/login$"), timeout=5000)

        def desktop_closed() -> None:
            assert not served.hub.is_connected("a1")

        await eventually(desktop_closed, timeout=5)
        assert not await served.hub.push_screen_pop("a1", unknown_caller_pop(), 1.0)
        await page.goto(served.url("/desktop/a1"))
        await page.wait_for_url(
            re.compile(r"/login\?next=%2Fdesktop%2Fa1|/login\?next=/desktop/a1")
        )
        assert w.errors == []


async def test_a_supervisor_listens_to_a_busy_agent_from_the_index(
    browser: Browser, served: Served
) -> None:
    served.site.agents.views["a1"]["state"] = "busy"
    try:
        async with open_page(browser) as w:
            page = w.page
            await log_in(w, served, "/", "lead")
            await page.wait_for_selector("body[data-loaded=true]", timeout=5000)
            # Only the agent on a call can be supervised.
            assert await page.get_by_test_id("supervise-listen-a2").count() == 0
            await page.get_by_test_id("supervise-listen-a1").click()
            await page.get_by_text("Listen: your phone (PJSIP/lead) rings").wait_for(timeout=5000)
            await w.screenshot("index-supervisor")
            assert w.errors == []
        (originate,) = [a for a in served.asterisk.actions_received if a.name == "Originate"]
        assert (originate.get("Channel"), originate.get("Exten")) == ("PJSIP/lead", "listen")
    finally:
        served.site.agents.views["a1"]["state"] = "not_ready"
