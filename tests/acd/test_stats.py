"""Wallboard figures rebuilt from queue-log rows alone."""

from __future__ import annotations

import queueing_models
from acd.models import QueueEvent, QueueLogRow
from acd.stats import wallboard_from_log

E = QueueEvent


def row(
    ts: float,
    item: str,
    event: QueueEvent,
    *,
    queue: str = "billing",
    agent_id: str = "",
    team: str = "",
    wait_s: float | None = None,
    talk_s: float | None = None,
    data: str = "",
) -> QueueLogRow:
    return QueueLogRow(ts, queue, item, event, agent_id, team, wait_s, talk_s, data)


ROWS = [
    row(0.0, "c1", E.ENTER),
    row(1.0, "c2", E.ENTER),
    row(2.0, "c3", E.ENTER),
    row(3.0, "c4", E.ENTER),
    row(4.0, "x1", E.ENTER, queue="sales"),
    row(5.0, "c1", E.OFFER, agent_id="joe"),
    row(10.0, "c1", E.CONNECT, agent_id="joe", team="red", wait_s=10.0),
    row(31.0, "c2", E.CONNECT, agent_id="sue", team="blue", wait_s=30.0),
    row(40.0, "c3", E.ABANDON, wait_s=38.0),
    row(70.0, "c1", E.COMPLETE, agent_id="joe", talk_s=60.0),
    row(91.0, "c2", E.COMPLETE, agent_id="sue", talk_s=60.0),
    row(92.0, "c4", E.RONA, agent_id="joe"),
    row(0.5, "", E.AGENT, queue="", agent_id="joe", data="ready"),
    row(0.6, "", E.AGENT, queue="", agent_id="sue", data="ready"),
    row(92.0, "", E.AGENT, queue="", agent_id="joe", data="not_ready:rona"),
    row(93.0, "x1", E.OVERFLOW, queue="sales", data="billing"),
    row(93.0, "x1", E.ENTER, queue="billing"),
]


def test_wallboard_figures_follow_the_documented_definitions() -> None:
    snap = wallboard_from_log(
        ROWS, queue="billing", now=100.0, sl_t_s=20.0, sl_goal=0.8, rate_window_s=100.0
    )
    assert (snap.offered, snap.answered, snap.abandoned) == (3, 2, 1)
    assert snap.service_level == 1 / 3  # c1 within 20 s; c2 late; c3 abandoned
    assert snap.asa_s == 20.0
    assert snap.abandon_rate == 1 / 3
    assert snap.waiting == 2  # c4 (back after RONA) and x1 (overflowed in)
    assert snap.longest_wait_s == 97.0
    assert snap.agents_by_state == {"ready": 1, "not_ready": 1}
    assert snap.aht_s == 60.0
    assert snap.arrival_rate_per_h == 5 * 36.0  # 5 entries in the last 100 s
    assert snap.agents_needed == queueing_models.agents_for_service_level(
        5 / 100.0, 60.0, 0.8, 20.0
    )
    assert snap.teams["red"].service_level == 1.0
    assert snap.teams["blue"].asa_s == 30.0


def test_an_empty_log_gives_a_quiet_board() -> None:
    snap = wallboard_from_log([], queue="billing", now=0.0)
    assert (snap.offered, snap.waiting, snap.service_level, snap.agents_needed) == (0, 0, 1.0, 0)


def _transferred(
    item: str, at: float, *, wait_s: float, talk_s: float, to: str, queue: str = "support"
) -> list[QueueLogRow]:
    """A call answered in `queue` after `wait_s`, then transferred by the agent after `talk_s`
    to the queue `to` (`Router.transferred` + `rejoin`), where it enters again."""
    return [
        row(at, item, E.ENTER, queue=queue),
        row(at + wait_s, item, E.CONNECT, queue=queue, agent_id="amy", team="red", wait_s=wait_s),
        row(
            at + wait_s + talk_s,
            item,
            E.TRANSFER,
            queue=queue,
            agent_id="amy",
            talk_s=talk_s,
            data=f"{to}@centralino-transfer",
        ),
        row(at + wait_s + talk_s, item, E.ENTER, queue=to),
    ]


TRANSFERS = [
    # t1: support → billing, answered there late and completed
    *_transferred("t1", 0.0, wait_s=5.0, talk_s=40.0, to="billing"),
    row(75.0, "t1", E.CONNECT, queue="billing", agent_id="bob", team="blue", wait_s=30.0),
    row(175.0, "t1", E.COMPLETE, queue="billing", agent_id="bob", talk_s=100.0),
    # t2: support → support, answered again (late) and completed
    *_transferred("t2", 10.0, wait_s=10.0, talk_s=20.0, to="support"),
    row(90.0, "t2", E.CONNECT, queue="support", agent_id="sue", team="blue", wait_s=50.0),
    row(150.0, "t2", E.COMPLETE, queue="support", agent_id="sue", talk_s=60.0),
    # t3: support → support, then the caller hangs up waiting the second time
    *_transferred("t3", 20.0, wait_s=1.0, talk_s=30.0, to="support"),
    row(63.0, "t3", E.ABANDON, queue="support", wait_s=12.0),
    # t4: a plain abandon; t5: a plain answered call
    row(30.0, "t4", E.ENTER, queue="support"),
    row(70.0, "t4", E.ABANDON, queue="support", wait_s=40.0),
    row(40.0, "t5", E.ENTER, queue="support"),
    row(48.0, "t5", E.CONNECT, queue="support", agent_id="joe", team="red", wait_s=8.0),
    row(138.0, "t5", E.COMPLETE, queue="support", agent_id="joe", talk_s=90.0),
]


def test_talk_before_a_transfer_is_handled_time() -> None:
    snap = wallboard_from_log(TRANSFERS, queue="support", now=200.0)
    # conversations that ended in support: transfers after 40, 20, 30 s; completions 60, 90 s
    assert snap.aht_s == (40.0 + 20.0 + 30.0 + 60.0 + 90.0) / 5
    billing = wallboard_from_log(TRANSFERS, queue="billing", now=200.0)
    assert billing.aht_s == 100.0


def test_a_transferred_call_is_answered_once_per_queue_and_never_an_abandon() -> None:
    snap = wallboard_from_log(TRANSFERS, queue="support", now=200.0, sl_t_s=20.0)
    # t1, t2, t3, t5 answered (their first waits: 5, 10, 1, 8 s); only t4 abandoned
    assert (snap.offered, snap.answered, snap.abandoned) == (5, 4, 1)
    assert snap.service_level == 4 / 5  # t2's second, late answer is not a second call
    assert snap.asa_s == (5.0 + 10.0 + 1.0 + 8.0) / 4
    assert snap.abandon_rate == 1 / 5
    assert snap.teams["red"].answered == 4 and "blue" not in snap.teams
    assert snap.waiting == 0
    # The target queue counts the call it was offered, with the wait it had there.
    billing = wallboard_from_log(TRANSFERS, queue="billing", now=200.0, sl_t_s=20.0)
    assert (billing.offered, billing.answered, billing.abandoned) == (1, 1, 0)
    assert billing.service_level == 0.0 and billing.asa_s == 30.0
    assert billing.teams["blue"].answered == 1


def test_a_transferred_call_waits_in_the_target_queue_until_answered_there() -> None:
    until_rejoined = [r for r in TRANSFERS if r.item_id == "t1" and r.ts <= 45.0]
    support = wallboard_from_log(until_rejoined, queue="support", now=50.0)
    billing = wallboard_from_log(until_rejoined, queue="billing", now=50.0)
    assert (support.waiting, support.answered, support.abandoned) == (0, 1, 0)
    assert (billing.waiting, billing.longest_wait_s, billing.offered) == (1, 5.0, 0)
