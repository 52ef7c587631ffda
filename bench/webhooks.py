"""Webhook benchmark: a burst of signed WhatsApp and SMS webhooks, PostgreSQL restarted mid-way.

Set-up: a PostgreSQL cluster the benchmark owns (initdb in a temporary folder, pg_ctl on a free
loopback port, fsync on: what was acknowledged must survive a crash), migrated; the real
webhook handlers (centralino.web.webhooks over centralino.adapters.pg_messages, the same
objects `centralino serve` builds) in their own process on uvloop.

Burst: MESSAGES distinct messages, half WhatsApp Cloud API notifications (X-Hub-Signature-256),
half Twilio SMS forms (X-Twilio-Signature), from SENDER_POOL distinct numbers (first messages
create customers, later ones find them), plus RETRY_SHARE of them delivered a second time with
the same message id, as providers retry. SENDERS concurrent keep-alive connections from a
separate process post them over loopback; like providers, a sender re-sends a delivery on a
5xx or a broken connection (after a back-off) until it gets a 2xx. When RESTART_AT of the
messages have been accepted, PostgreSQL is stopped the hard way (`pg_ctl stop -m immediate`,
as a crash) and started again.

Counted afterwards in the database: lost = messages accepted (2xx) but not stored; duplicates
= rows beyond one per message id (messages, timeline interactions) plus customers created
twice for one sender. messages_per_s = distinct messages accepted / time from the first send
to the last 2xx, the outage included.

Peer (same run, same cluster and concurrency): a plain asyncpg INSERT loop of the same rows
into a bare table, no HTTP, no signature, no dedupe, no customer resolution: the database's
ceiling for one row per transaction. The ratio says what share of it the webhooks reach.

Knobs: BENCH_WEBHOOK_MESSAGES (20000), BENCH_WEBHOOK_SENDERS (32), BENCH_WEBHOOK_SERVERS (1
server process; more share one port, as several Centralino processes would). Run:
`.venv/bin/python bench/webhooks.py`. The last line is the JSON summary.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import random
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from urllib.parse import urlencode

import asyncpg
import uvloop
from aiohttp import web

from centralino.adapters.pg_messages import PgMessageStore
from centralino.app import bound_port
from centralino.channels import twilio_sms, whatsapp
from centralino.demo.providers import body, whatsapp_text
from centralino.demo.providers import twilio_sms as sms_params
from centralino.storage.connections import release_as_is
from centralino.storage.migrate import apply_migrations
from centralino.storage.scratch_cluster import ScratchCluster, free_port
from centralino.web.webhooks import WebhookSecrets, add_webhooks
from context.identity import PhoneNormaliser
from context.inbox import MessageInbox

MESSAGES = int(os.environ.get("BENCH_WEBHOOK_MESSAGES", "20000"))
SENDERS = int(os.environ.get("BENCH_WEBHOOK_SENDERS", "32"))
# Centralino scales by running several processes against one PostgreSQL; here they share one
# port (SO_REUSEPORT), the kernel spreading the senders' connections across them.
SERVERS = int(os.environ.get("BENCH_WEBHOOK_SERVERS", "1"))
SENDER_POOL = 2000  # distinct customers' numbers
RETRY_SHARE = 0.05
RESTART_AT = 0.4
POOL_MAX = 20
# A provider backs off before re-sending; Meta and Twilio wait longer, a benchmark cannot.
BACKOFF_S = (0.05, 0.1, 0.2, 0.4, 0.8)
APP_SECRET = "bench-wa-secret"
AUTH_TOKEN = "bench-twilio-token"
PUBLIC_URL = "https://centralino.bench.example"
SMS_PATH = "/webhooks/twilio/sms"


# --- the server (its own process) -----------------------------------------------------------


def serve(dsn: str, port: int, pipe: Connection) -> None:
    async def main() -> None:
        # As centralino.storage.connections.postgres_pool opens it (migrations already applied).
        pool = await asyncpg.create_pool(
            dsn, min_size=POOL_MAX // SERVERS, max_size=POOL_MAX // SERVERS, timeout=10,
            reset=release_as_is,
        )  # fmt: skip
        assert pool is not None
        app = web.Application()
        add_webhooks(
            app,
            inbox=MessageInbox(store=PgMessageStore(pool=pool), phones=PhoneNormaliser()),
            secrets=WebhookSecrets(
                whatsapp_app_secret=APP_SECRET,
                whatsapp_verify_token="unused",
                twilio_auth_token=AUTH_TOKEN,
                public_url=PUBLIC_URL,
            ),
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=1024, reuse_port=True)
        await site.start()
        pipe.send(bound_port(site))
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # until told to stop
        await runner.cleanup()
        await pool.close()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        pipe.send(usage.ru_utime + usage.ru_stime)

    uvloop.run(main())


# --- the providers (their own process) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    msg_id: str
    request: bytes


def deliveries(port: int, rng: random.Random) -> tuple[list[Delivery], int]:
    """Every HTTP request of the burst, retries included (same id, same bytes), shuffled."""
    host = f"127.0.0.1:{port}"
    numbers = [f"39333{n:07d}" for n in rng.sample(range(10**7), SENDER_POOL)]
    out: list[Delivery] = []
    for i in range(MESSAGES):
        number = rng.choice(numbers)
        if i % 2 == 0:
            msg_id = f"wamid.bench{i:07d}"
            raw = body(whatsapp_text(msg_id, number, f"message {i}", timestamp=1_765_000_000 + i))
            head = (
                f"POST /webhooks/whatsapp HTTP/1.1\r\nHost: {host}\r\n"
                "Content-Type: application/json\r\n"
                f"{whatsapp.SIGNATURE_HEADER}: {whatsapp.sign(raw, APP_SECRET)}\r\n"
            )
        else:
            msg_id = f"SM{i:032d}"
            params = sms_params(msg_id, "+" + number, f"message {i}")
            raw = urlencode(params).encode()
            sig = twilio_sms.signature(PUBLIC_URL + SMS_PATH, params, AUTH_TOKEN)
            head = (
                f"POST {SMS_PATH} HTTP/1.1\r\nHost: {host}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"{twilio_sms.SIGNATURE_HEADER}: {sig}\r\n"
            )
        request = (head + f"Content-Length: {len(raw)}\r\n\r\n").encode() + raw
        out.append(Delivery(msg_id, request))
    retries = rng.sample(out, int(MESSAGES * RETRY_SHARE))
    out.extend(retries)
    rng.shuffle(out)
    return out, len(retries)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


def send_all(port: int, accepted: Synchronized[int], pipe: Connection) -> None:
    async def main() -> None:
        todo, retries = deliveries(port, random.Random(11))
        queue: asyncio.Queue[Delivery] = asyncio.Queue()
        for d in todo:
            queue.put_nowait(d)
        accepted_ids: set[str] = set()
        tallies = {"5xx": 0, "conn_errors": 0, "4xx": 0, "2xx": 0}
        last_ok = 0.0

        async def sender() -> None:
            nonlocal last_ok
            conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
            while not queue.empty():
                d = queue.get_nowait()
                for attempt in range(10_000):
                    try:
                        if conn is None:
                            conn = await asyncio.open_connection("127.0.0.1", port)
                        status = await _exchange(*conn, d.request)
                    except (OSError, asyncio.IncompleteReadError, ValueError):
                        tallies["conn_errors"] += 1
                        if conn is not None:
                            conn[1].close()
                        conn = None
                        status = 0
                    if 200 <= status < 300:
                        tallies["2xx"] += 1
                        if d.msg_id not in accepted_ids:
                            accepted_ids.add(d.msg_id)
                            with accepted.get_lock():
                                accepted.value += 1
                        last_ok = time.perf_counter()
                        break
                    if 400 <= status < 500:
                        tallies["4xx"] += 1
                        break
                    if status >= 500:
                        tallies["5xx"] += 1
                    await asyncio.sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
            if conn is not None:
                conn[1].close()

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(SENDERS)))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        pipe.send(
            {
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "sent_ids": sorted({d.msg_id for d in todo}),
                "accepted_ids": sorted(accepted_ids),
                "requests": len(todo),
                "retries": retries,
                "elapsed_s": last_ok - started,
                **tallies,
            }
        )

    uvloop.run(main())


# --- the peer: a plain INSERT loop ----------------------------------------------------------


async def plain_insert_ceiling(dsn: str, rows: int) -> float:
    """Rows per second of one INSERT per transaction at the same concurrency, no HTTP."""
    pool = await asyncpg.create_pool(dsn, min_size=POOL_MAX, max_size=POOL_MAX, reset=release_as_is)
    assert pool is not None
    await pool.execute(
        "CREATE TABLE bench_plain (id bigserial PRIMARY KEY, channel text, provider_id text,"
        " sender text, body text, raw jsonb)"
    )
    payload = json.dumps({"k": "v" * 200})
    counter = iter(range(rows))

    async def worker() -> None:
        for i in counter:
            await pool.execute(
                "INSERT INTO bench_plain (channel, provider_id, sender, body, raw)"
                " VALUES ($1, $2, $3, $4, $5::jsonb)",
                "whatsapp",
                f"wamid.plain{i}",
                "393331234567",
                f"message {i}",
                payload,
            )

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(SENDERS)))
    elapsed = time.perf_counter() - started
    await pool.execute("DROP TABLE bench_plain")
    await pool.close()
    return rows / elapsed


# --- the run --------------------------------------------------------------------------------


async def count_stored(dsn: str, accepted: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetchval(
            "SELECT count(DISTINCT provider_message_id) FROM messages"
            " WHERE provider_message_id = ANY($1::text[])",
            accepted,
        )
        message_dups = await conn.fetchval(
            "SELECT count(*) - count(DISTINCT (channel, provider_message_id)) FROM messages"
        )
        interaction_dups = await conn.fetchval(
            "SELECT count(*) - count(DISTINCT record_key) FROM interactions"
            " WHERE record_key LIKE 'message:%'"
        )
        orphans = await conn.fetchval("SELECT count(*) FROM messages WHERE interaction_id IS NULL")
        customer_dups = await conn.fetchval(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM customer_identities"
            " GROUP BY kind, value) AS per_identity"
        )
        customers = await conn.fetchval("SELECT count(*) FROM customers")
    finally:
        await conn.close()
    return {
        "stored": int(stored),
        "message_dups": int(message_dups),
        "interaction_dups": int(interaction_dups),
        "orphans": int(orphans),
        "customer_dups": int(customer_dups),
        "customers": int(customers),
    }


def main() -> None:
    if not ScratchCluster.available():
        raise SystemExit(
            "bench/webhooks.py restarts a PostgreSQL cluster of its own: it needs initdb and"
            " pg_ctl in /usr/lib/postgresql/15/bin (Debian's postgresql-15)"
        )
    ctx = mp.get_context("spawn")
    cluster = ScratchCluster.create()
    try:
        cluster.start()

        async def migrate() -> None:
            conn = await asyncpg.connect(cluster.dsn)
            try:
                await apply_migrations(conn)
            finally:
                await conn.close()

        asyncio.run(migrate())
        ceiling = asyncio.run(plain_insert_ceiling(cluster.dsn, MESSAGES // 2))

        port = free_port()
        servers = []
        for _ in range(SERVERS):
            end, pipe = ctx.Pipe()
            process = ctx.Process(target=serve, args=(cluster.dsn, port, pipe), daemon=True)
            process.start()
            servers.append((process, end))
        for _, end in servers:
            end.recv()  # listening

        accepted = ctx.Value("q", 0)
        senders_end, senders_pipe = ctx.Pipe()
        senders = ctx.Process(target=send_all, args=(port, accepted, senders_pipe), daemon=True)
        senders.start()
        restart_s = 0.0
        while not senders_end.poll(0.01):
            if restart_s == 0.0 and accepted.value >= MESSAGES * RESTART_AT:
                t = time.perf_counter()
                cluster.stop("immediate")
                cluster.start()
                restart_s = time.perf_counter() - t
                print(f"  PostgreSQL stopped (immediate) and restarted in {restart_s:.2f} s")
        result = senders_end.recv()
        senders.join()
        server_cpu_s = 0.0
        for process, end in servers:
            end.send("stop")
            server_cpu_s += end.recv()
            process.join(timeout=30)

        counts = asyncio.run(count_stored(cluster.dsn, result["accepted_ids"]))
    finally:
        cluster.destroy()

    sent = len(result["sent_ids"])
    accepted_n = len(result["accepted_ids"])
    lost = accepted_n - counts["stored"] + (sent - accepted_n)
    duplicates = counts["message_dups"] + counts["interaction_dups"] + counts["customer_dups"]
    rate = accepted_n / result["elapsed_s"]
    print(
        f"  {sent} messages ({sent // 2 + sent % 2} WhatsApp, {sent // 2} SMS) from "
        f"{SENDER_POOL} numbers, {result['retries']} provider retries, {SENDERS} senders"
    )
    print(
        f"  {result['requests']} deliveries; answers: {result['2xx']} 2xx, {result['5xx']} 5xx,"
        f" {result['4xx']} 4xx; {result['conn_errors']} broken connections (re-sent)"
    )
    print(
        f"  accepted {accepted_n} in {result['elapsed_s']:.2f} s (restart included):"
        f" {rate:.0f} messages/s"
    )
    print(
        f"  CPU: {SERVERS} webhook server process(es) {server_cpu_s:.1f} s"
        f" ({server_cpu_s / accepted_n * 1e6:.0f} µs a message), senders"
        f" {result['cpu_s']:.1f} s; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  stored {counts['stored']}; {counts['customers']} customers; duplicates: messages"
        f" {counts['message_dups']}, interactions {counts['interaction_dups']}, customers"
        f" {counts['customer_dups']}; messages without their interaction {counts['orphans']}"
    )
    print(
        f"  peer: plain asyncpg INSERT loop (no HTTP, dedupe or resolution), same concurrency:"
        f" {ceiling:.0f} rows/s; webhooks/peer = {rate / ceiling:.2f}"
    )
    print(
        json.dumps(
            {
                "bench": "webhooks",
                "messages_per_s": round(rate, 1),
                "lost": lost,
                "duplicates": duplicates,
                "peer_plain_insert_per_s": round(ceiling, 1),
                "ratio_to_peer": round(rate / ceiling, 3),
                "restart_s": round(restart_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
