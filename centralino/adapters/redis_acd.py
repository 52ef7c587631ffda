"""Redis implementation of `acd.ports.LiveStore`: every operation is one Lua script, so each is
atomic across any number of processes sharing the Redis (standalone or a primary; the scripts
build key names from the prefix, so this is not Redis Cluster compatible).

Layout (P = prefix, e.g. "acd:"):
- `P agents`                    set of agent ids
- `P ag:{id}`                   hash: st, since, reason, idle, bs, ba (decayed busy time and its
                                time), cap:{channel}, ld:{channel}, teams, rv (voice reservation)
- `P sk:{id}`                   hash: skill -> level (languages as lang:xx)
- `P av:{ch}:{skill}:{strat}`   sorted set of agents available for channel `ch` having `skill`
                                (`*`: any skill), scored for strategy `strat`; a decision walks
                                the smallest set of a required skill in strategy order and stops
                                at the first agent that fits, so it never scans every agent
- `P q:{queue}`                 sorted set of waiting items by `acd.models.queue_score`
- `P it:{id}`                   hash: the item (q, ch, pr, arr, ent, req, pref, steps, own, cb,
                                front, st = w(aiting)/r(eserved), rv)
- `P rv:{rid}`                  hash: a reservation; `P rvx` its expiry times (sorted set).
                                The hash itself expires `RESERVATION_GRACE_S` after its expiry,
                                after any live process has swept it.
- `P own:{owner}`               a process's heartbeat (PX); items of a lapsed owner are adopted
- `P inbox:{owner}`             reservations made by another process for `owner`'s items
- `P wrap`                      sorted set: agent -> end of timed wrap-up
- `P seq`                       reservation counter
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from acd.errors import (
    DuplicateItem,
    IllegalTransition,
    StaleReservation,
    UnknownAgent,
)
from acd.models import (
    AgentDefinition,
    AgentState,
    AgentStatus,
    Channel,
    Reservation,
    Strategy,
    WaitingItem,
    WorkItem,
    queue_score,
)
from acd.policies import LEVEL_WEIGHT, NO_OCCUPANCY_SCORE, OCCUPANCY_TAU_S
from acd.states import TRANSITIONS, AgentEvent

# A reservation's hash outlives its expiry by this much so that a process restarting after a
# crash of every router can still sweep it (free the agent, requeue the item).
RESERVATION_GRACE_S = 3600.0
# Candidates fetched by the first ZRANGE while walking a sorted set (most decisions stop there);
# each further fetch doubles, up to CANDIDATE_BATCH_MAX.
CANDIDATE_BATCH = 8
CANDIDATE_BATCH_MAX = 256

# Transitions as one constant string searched by `trans()`: building a table on every call
# would cost more than the lookups it saves.
_TRANSITIONS_LUA = (
    "".join(f"|{s.value}/{e.value}>{n.value}" for (s, e), n in TRANSITIONS.items()) + "|"
)

_BASE = f"""
local P = ARGV[1]
local LEVEL_WEIGHT = {LEVEL_WEIGHT!r}
local TAU = {OCCUPANCY_TAU_S!r}
local NO_OCC = {NO_OCCUPANCY_SCORE!r}
local MAX_LEVEL = 5
local GRACE = {RESERVATION_GRACE_S!r}

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local t = {{}}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function split(s, sep)
  local out = {{}}
  if s == nil or s == '' then return out end
  for part in string.gmatch(s, '[^' .. sep .. ']+') do out[#out + 1] = part end
  return out
end

local function num(x) return tonumber(x or '0') or 0 end
"""

_REFRESH = """
local function available(a, ch)
  if a.st ~= 'ready' then return false end
  local cap = num(a['cap:' .. ch])
  if ch == 'voice' then
    return cap > 0 and num(a['ld:chat']) == 0 and num(a['ld:email']) == 0
  end
  return num(a['ld:' .. ch]) < cap
end

local function score(strat, a, level)
  if strat == 'longest_idle' then return num(a.idle) end
  if strat == 'most_skilled' then return (MAX_LEVEL - level) * LEVEL_WEIGHT + num(a.idle) end
  local bs = num(a.bs)
  if bs <= 0 then return NO_OCC end
  return math.log(bs) + num(a.ba) / TAU
end

-- Put the agent in (or take it out of) every availability set, per its state and load.
local function refresh(id, a)
  local sk = redis.call('HGETALL', P .. 'sk:' .. id)
  local strats = split(ARGV[2], ',')
  for _, ch in ipairs({'voice', 'chat', 'email'}) do
    if num(a['cap:' .. ch]) > 0 then
      local on = available(a, ch)
      for _, st in ipairs(strats) do
        local k = P .. 'av:' .. ch .. ':*:' .. st
        if on then redis.call('ZADD', k, score(st, a, MAX_LEVEL), id)
        else redis.call('ZREM', k, id) end
        for i = 1, #sk, 2 do
          k = P .. 'av:' .. ch .. ':' .. sk[i] .. ':' .. st
          if on then redis.call('ZADD', k, score(st, a, tonumber(sk[i + 1])), id)
          else redis.call('ZREM', k, id) end
        end
      end
    end
  end
end
"""

_APPLY = f"""
local TRANS = '{_TRANSITIONS_LUA}'
local function trans(st, ev)
  return string.match(TRANS, '|' .. st .. '/' .. ev .. '>([%a_]+)|')
end

-- Apply a state-machine event to agent table `a` (and Redis); nil if illegal.
local function apply(id, a, ev, now, reason)
  local new = trans(a.st, ev)
  if not new then return nil end
  if new ~= a.st then
    a.since = now
    if new == 'ready' then a.idle = now end
  end
  local was = a.st
  a.st = new
  if new == 'not_ready' then a.reason = reason else a.reason = '' end
  redis.call('HSET', P .. 'ag:' .. id, 'st', a.st, 'since', a.since, 'idle', a.idle,
             'reason', a.reason)
  if was == 'wrap_up' and new ~= 'wrap_up' then redis.call('ZREM', P .. 'wrap', id) end
  if new == 'logged_out' then
    a['ld:chat'] = '0'; a['ld:email'] = '0'
    redis.call('HSET', P .. 'ag:' .. id, 'ld:chat', '0', 'ld:email', '0')
  end
  return new
end
"""

_REPLIES = """
local function status(id, a)
  return {id, a.st, a.since, a.reason or '', a['ld:chat'] or '0', a['ld:email'] or '0',
          a.teams or ''}
end

local function resv_reply(rid, r)
  return {rid, r.item, r.agent, r.q, r.ch, r.own, r.cr, r.exp, r.waited}
end
"""

_RELEASE_FN = """
local function release(rid, now, ev, reason)
  local rkey = P .. 'rv:' .. rid
  local r = hgetall(rkey)
  redis.call('ZREM', P .. 'rvx', rid)
  if r.item == nil then return nil end
  local akey = P .. 'ag:' .. r.agent
  local a = hgetall(akey)
  if a.st ~= nil then
    if r.ch == 'voice' then
      if a.st == 'reserved' or a.st == 'ringing' then
        if apply(r.agent, a, ev, now, reason) == nil then
          return redis.error_reply('ILLEGAL ' .. a.st .. ' ' .. ev)
        end
      end
      redis.call('HDEL', akey, 'rv')
    else
      local ld = math.max(0, num(a['ld:' .. r.ch]) - 1)
      a['ld:' .. r.ch] = tostring(ld)
      redis.call('HSET', akey, 'ld:' .. r.ch, a['ld:' .. r.ch])
      if ev ~= 'expire' and a.st == 'ready' then apply(r.agent, a, 'not_ready', now, reason) end
    end
    refresh(r.agent, a)
  end
  local ikey = P .. 'it:' .. r.item
  local it = hgetall(ikey)
  if it.q ~= nil then
    redis.call('HSET', ikey, 'st', 'w', 'front', '1', 'rv', '')
    redis.call('ZADD', P .. 'q:' .. it.q, -num(it.pr) * 1e10 + num(it.arr), r.item)
  end
  redis.call('DEL', rkey)
  return resv_reply(rid, r)
end
"""

# Each script carries only the helpers it calls: Redis re-creates them on every call.
_HELPERS = {
    "put_agent": _BASE + _REFRESH,
    "agent_event": _BASE + _REFRESH + _APPLY + _REPLIES,
    "add_item": _BASE,
    "remove_item": _BASE,
    "position": _BASE,
    "route": _BASE + _REFRESH + _APPLY + _REPLIES,
    "take_offers": _BASE + _REPLIES,
    "accept": _BASE + _APPLY + _REPLIES,
    "connect": _BASE + _APPLY + _REPLIES,
    "release": _BASE + _REFRESH + _APPLY + _REPLIES + _RELEASE_FN,
    "finish": _BASE + _REFRESH + _APPLY + _REPLIES,
    "sweep": _BASE + _REFRESH + _APPLY + _REPLIES + _RELEASE_FN,
    "agents": _BASE + _REPLIES,
    "waiting": _BASE,
}

_PUT_AGENT = """
local id, skills, caps, teams, now = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local akey = P .. 'ag:' .. id
local a = hgetall(akey)
if a.st == nil then
  a = {st = 'logged_out', since = now, idle = now, bs = '0', ba = '0', reason = '',
       ['ld:chat'] = '0', ['ld:email'] = '0'}
  redis.call('HSET', akey, 'st', a.st, 'since', now, 'idle', now, 'bs', '0', 'ba', '0',
             'reason', '', 'ld:chat', '0', 'ld:email', '0')
end
-- leave every set under the old skills before they change
local was = a.st
a.st = 'gone'
refresh(id, a)
a.st = was
redis.call('DEL', P .. 'sk:' .. id)
for _, pair in ipairs(split(skills, ',')) do
  local s, lv = string.match(pair, '^(.*)=(%d)$')
  redis.call('HSET', P .. 'sk:' .. id, s, lv)
end
for _, pair in ipairs(split(caps, ',')) do
  local ch, n = string.match(pair, '^(.*)=(%d+)$')
  a['cap:' .. ch] = n
  redis.call('HSET', akey, 'cap:' .. ch, n)
end
a.teams = teams
redis.call('HSET', akey, 'teams', teams)
redis.call('SADD', P .. 'agents', id)
refresh(id, a)
return 1
"""

_AGENT_EVENT = """
local id, ev, now, reason = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local a = hgetall(P .. 'ag:' .. id)
if a.st == nil then return redis.error_reply('UNKNOWN_AGENT ' .. id) end
if apply(id, a, ev, now, reason) == nil then
  return redis.error_reply('ILLEGAL ' .. a.st .. ' ' .. ev)
end
refresh(id, a)
return status(id, a)
"""

_ADD_ITEM = """
local id, q, score = ARGV[3], ARGV[4], ARGV[5]
local ikey = P .. 'it:' .. id
if redis.call('HGET', ikey, 'st') == 'w' then return redis.error_reply('DUPLICATE ' .. id) end
redis.call('DEL', ikey)
redis.call('HSET', ikey, 'q', q, 'ch', ARGV[6], 'pr', ARGV[7], 'arr', ARGV[8], 'ent', ARGV[9],
           'req', ARGV[10], 'pref', ARGV[11], 'steps', ARGV[12], 'own', ARGV[13], 'cb', ARGV[14],
           'front', ARGV[15], 'st', 'w', 'rv', '')
redis.call('ZADD', P .. 'q:' .. q, score, id)
return redis.call('ZRANK', P .. 'q:' .. q, id) + 1
"""

_REMOVE_ITEM = """
local id = ARGV[3]
local ikey = P .. 'it:' .. id
local it = hgetall(ikey)
if it.st ~= 'w' then return nil end
redis.call('ZREM', P .. 'q:' .. it.q, id)
redis.call('DEL', ikey)
return {id, it.q, it.pr, it.arr, it.own, it.cb}
"""

_POSITION = """
local id = ARGV[3]
local it = redis.call('HMGET', P .. 'it:' .. id, 'st', 'q')
if it[1] ~= 'w' then return 0 end
local rank = redis.call('ZRANK', P .. 'q:' .. it[2], id)
if not rank then return 0 end
return rank + 1
"""

_ROUTE = """
local BATCH, BATCH_MAX = @BATCH@, @BATCH_MAX@
local q, now, owner, strat = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]
local window, ttl = tonumber(ARGV[7]), tonumber(ARGV[8])
local now_s = ARGV[4]

local function meets(id, reqs)
  if #reqs == 0 then return true end
  local names = {}
  for i, r in ipairs(reqs) do names[i] = r[1] end
  local levels = redis.call('HMGET', P .. 'sk:' .. id, unpack(names))
  for i, r in ipairs(reqs) do
    if (tonumber(levels[i]) or 0) < r[2] then return false end
  end
  return true
end

local function find(ch, reqs, prefs, pref_only)
  local all = P .. 'av:' .. ch .. ':*:' .. strat
  for _, p in ipairs(prefs) do
    if redis.call('ZSCORE', all, p) and meets(p, reqs) then return p end
  end
  if pref_only then return nil end
  local key = all
  local cutoff = nil
  if #reqs > 0 then
    if strat == 'most_skilled' then
      key = P .. 'av:' .. ch .. ':' .. reqs[1][1] .. ':' .. strat
      cutoff = (MAX_LEVEL - reqs[1][2] + 1) * LEVEL_WEIGHT
    else
      local best = nil
      for _, r in ipairs(reqs) do
        local k = P .. 'av:' .. ch .. ':' .. r[1] .. ':' .. strat
        local n = redis.call('ZCARD', k)
        if best == nil or n < best then best = n; key = k end
      end
    end
  end
  local start, size = 0, BATCH
  while true do
    local batch = redis.call('ZRANGE', key, start, start + size - 1, 'WITHSCORES')
    if #batch == 0 then return nil end
    for i = 1, #batch, 2 do
      local cand = batch[i]
      if cutoff and tonumber(batch[i + 1]) >= cutoff then return nil end
      if meets(cand, reqs) then return cand end
    end
    start = start + size
    size = math.min(size * 2, BATCH_MAX)
  end
end

local ids = redis.call('ZRANGE', P .. 'q:' .. q, 0, window - 1)
local out = {}
for _, id in ipairs(ids) do
  local ikey = P .. 'it:' .. id
  local it = hgetall(ikey)
  local waited = now - num(it.ent)
  local pref_only, level = false, 0
  for _, step in ipairs(split(it.steps, ';')) do
    local after, p, lv = string.match(step, '^([^:]+):([^:]+):([^:]+)$')
    if tonumber(after) <= waited then pref_only = (p == 'P'); level = tonumber(lv) end
  end
  local prefs = split(it.pref, ',')
  if #prefs == 0 then pref_only = false end
  local reqs = {}
  for _, r in ipairs(split(it.req, ',')) do
    local s, lv, rx = string.match(r, '^(.*)=(%d)=(%d)$')
    lv = tonumber(lv)
    if rx == '1' and level > 0 then lv = level end
    reqs[#reqs + 1] = {s, lv}
  end
  local agent = find(it.ch, reqs, prefs, pref_only)
  if agent then
    -- The item's own process rings the agent; items of a process whose heartbeat lapsed are
    -- adopted by the caller.
    local holder = it.own
    local foreign = holder ~= owner and redis.call('EXISTS', P .. 'own:' .. holder) == 1
    if not foreign then holder = owner end
    local akey = P .. 'ag:' .. agent
    local a = hgetall(akey)
    local rid = holder .. '-' .. redis.call('INCR', P .. 'seq')
    if it.ch == 'voice' then
      apply(agent, a, 'reserve', now_s, '')
      redis.call('HSET', akey, 'rv', rid)
    else
      a['ld:' .. it.ch] = tostring(num(a['ld:' .. it.ch]) + 1)
      redis.call('HSET', akey, 'ld:' .. it.ch, a['ld:' .. it.ch])
    end
    refresh(agent, a)
    redis.call('ZREM', P .. 'q:' .. q, id)
    redis.call('HSET', ikey, 'st', 'r', 'rv', rid, 'own', holder)
    local r = {item = id, agent = agent, q = q, ch = it.ch, own = holder, cr = now_s,
               exp = tostring(now + ttl), waited = tostring(now - num(it.arr))}
    local rkey = P .. 'rv:' .. rid
    redis.call('HSET', rkey, 'item', r.item, 'agent', r.agent, 'q', r.q, 'ch', r.ch,
               'own', r.own, 'cr', r.cr, 'exp', r.exp, 'waited', r.waited)
    redis.call('PEXPIRE', rkey, math.floor((ttl + GRACE) * 1000))
    redis.call('ZADD', P .. 'rvx', now + ttl, rid)
    if foreign then redis.call('RPUSH', P .. 'inbox:' .. holder, rid) end
    out[#out + 1] = resv_reply(rid, r)
  end
end
return out
"""

_ROUTE = _ROUTE.replace("@BATCH@", str(CANDIDATE_BATCH)).replace(
    "@BATCH_MAX@", str(CANDIDATE_BATCH_MAX)
)

_TAKE_OFFERS = """
local owner, limit = ARGV[3], tonumber(ARGV[4])
local out = {}
local rids = redis.call('LPOP', P .. 'inbox:' .. owner, limit) or {}
for _, rid in ipairs(rids) do
  local r = hgetall(P .. 'rv:' .. rid)
  if r.item ~= nil and redis.call('ZSCORE', P .. 'rvx', rid) then
    out[#out + 1] = resv_reply(rid, r)
  end
end
return out
"""

_ACCEPT = """
local rid, now, ttl = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local rkey = P .. 'rv:' .. rid
local r = hgetall(rkey)
if r.item == nil or not redis.call('ZSCORE', P .. 'rvx', rid) then
  return redis.error_reply('STALE ' .. rid)
end
if r.ch == 'voice' then
  local a = hgetall(P .. 'ag:' .. r.agent)
  if a.st == nil or apply(r.agent, a, 'accept', ARGV[4], '') == nil then
    return redis.error_reply('ILLEGAL ' .. tostring(a.st) .. ' accept')
  end
end
r.exp = tostring(now + ttl)
redis.call('HSET', rkey, 'exp', r.exp)
redis.call('PEXPIRE', rkey, math.floor((ttl + GRACE) * 1000))
redis.call('ZADD', P .. 'rvx', now + ttl, rid)
return resv_reply(rid, r)
"""

_CONNECT = """
local rid = ARGV[3]
local rkey = P .. 'rv:' .. rid
local r = hgetall(rkey)
if r.item == nil or not redis.call('ZSCORE', P .. 'rvx', rid) then
  return redis.error_reply('STALE ' .. rid)
end
local akey = P .. 'ag:' .. r.agent
if r.ch == 'voice' then
  local a = hgetall(akey)
  if a.st == nil or apply(r.agent, a, 'answer', ARGV[4], '') == nil then
    return redis.error_reply('ILLEGAL ' .. tostring(a.st) .. ' answer')
  end
  redis.call('HDEL', akey, 'rv')
end
redis.call('DEL', rkey)
redis.call('ZREM', P .. 'rvx', rid)
redis.call('DEL', P .. 'it:' .. r.item)
return resv_reply(rid, r)
"""

_RELEASE = """
return release(ARGV[3], ARGV[4], ARGV[5], ARGV[6])
"""

_FINISH = """
local id, ch, now_s, worked, wrap = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local now = tonumber(now_s)
local akey = P .. 'ag:' .. id
local a = hgetall(akey)
if a.st == nil then return redis.error_reply('UNKNOWN_AGENT ' .. id) end
if ch == 'voice' and trans(a.st, 'hangup') == nil then
  return redis.error_reply('ILLEGAL ' .. a.st .. ' hangup')
end
local bs = num(a.bs)
local decayed = 0
if bs > 0 then decayed = bs * math.exp(-(now - num(a.ba)) / TAU) end
a.bs = tostring(decayed + worked)
a.ba = now_s
redis.call('HSET', akey, 'bs', a.bs, 'ba', a.ba)
if ch == 'voice' then
  apply(id, a, 'hangup', now_s, '')
  if wrap <= 0 then
    apply(id, a, 'wrap_done', now_s, '')
  else
    redis.call('ZADD', P .. 'wrap', now + wrap, id)
  end
else
  a['ld:' .. ch] = tostring(math.max(0, num(a['ld:' .. ch]) - 1))
  redis.call('HSET', akey, 'ld:' .. ch, a['ld:' .. ch])
end
refresh(id, a)
return status(id, a)
"""

_SWEEP = """
local now_s = ARGV[3]
local now = tonumber(now_s)
local expired = {}
for _, rid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'rvx', '-inf', now)) do
  local r = release(rid, now_s, 'expire', '')
  if type(r) == 'table' and r[1] ~= nil then expired[#expired + 1] = r end
end
local wrapped = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'wrap', '-inf', now)) do
  redis.call('ZREM', P .. 'wrap', id)
  local a = hgetall(P .. 'ag:' .. id)
  if a.st == 'wrap_up' then
    apply(id, a, 'wrap_done', now_s, '')
    refresh(id, a)
    wrapped[#wrapped + 1] = id
  end
end
return {expired, wrapped}
"""

_AGENTS = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', P .. 'agents')) do
  local a = hgetall(P .. 'ag:' .. id)
  out[#out + 1] = status(id, a)
end
return out
"""

_WAITING = """
local q = ARGV[3]
local out = {}
for _, id in ipairs(redis.call('ZRANGE', P .. 'q:' .. q, 0, -1)) do
  local it = redis.call('HMGET', P .. 'it:' .. id, 'pr', 'arr', 'own', 'cb')
  out[#out + 1] = {id, it[1] or '0', it[2] or '0', it[3] or '', it[4] or ''}
end
return out
"""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _f(value: Any) -> float:
    return float(_s(value))


def _reservation(raw: Sequence[Any]) -> Reservation:
    rid, item, agent, queue, ch, owner, created, expires, waited = (_s(v) for v in raw)
    return Reservation(
        reservation_id=rid,
        item_id=item,
        agent_id=agent,
        queue=queue,
        channel=Channel(ch),
        owner=owner,
        created_at=float(created),
        expires_at=float(expires),
        waited_s=float(waited),
    )


def _status(raw: Sequence[Any]) -> AgentStatus:
    agent_id, state, since, reason, ld_chat, ld_email, teams = (_s(v) for v in raw)
    load = {k: int(v) for k, v in (("chat", ld_chat), ("email", ld_email)) if int(v)}
    return AgentStatus(
        agent_id=agent_id,
        state=AgentState(state),
        since=float(since),
        reason=reason,
        load=load,
        teams=frozenset(t for t in teams.split(",") if t),
    )


def _error(exc: ResponseError) -> Exception:
    """Turn the scripts' error replies into the domain's exceptions."""
    text = str(exc)
    for marker in ("ILLEGAL", "UNKNOWN_AGENT", "STALE", "DUPLICATE"):
        at = text.find(marker)
        if at >= 0:
            words = text[at:].split()
            if marker == "ILLEGAL":
                return IllegalTransition(AgentState(words[1]), words[2])
            if marker == "UNKNOWN_AGENT":
                return UnknownAgent(words[1])
            if marker == "STALE":
                return StaleReservation(words[1])
            return DuplicateItem(words[1])
    return exc


class RedisLiveStore:
    """`acd.ports.LiveStore` over one Redis database (see the module docstring)."""

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        prefix: str = "acd:",
        strategies: Sequence[Strategy] = tuple(Strategy),
    ) -> None:
        if not strategies:
            raise ValueError("at least one strategy must be maintained")
        self._client = client
        self._prefix = prefix
        self._strategies = tuple(strategies)
        self._head = [prefix, ",".join(s.value for s in self._strategies)]
        self._scripts = {
            name: client.register_script(_HELPERS[name] + body)
            for name, body in {
                "put_agent": _PUT_AGENT,
                "agent_event": _AGENT_EVENT,
                "add_item": _ADD_ITEM,
                "remove_item": _REMOVE_ITEM,
                "position": _POSITION,
                "route": _ROUTE,
                "take_offers": _TAKE_OFFERS,
                "accept": _ACCEPT,
                "connect": _CONNECT,
                "release": _RELEASE,
                "finish": _FINISH,
                "sweep": _SWEEP,
                "agents": _AGENTS,
                "waiting": _WAITING,
            }.items()
        }

    async def _run(self, name: str, *args: object) -> Any:
        try:
            return await self._scripts[name](keys=[], args=[*self._head, *map(_arg, args)])
        except ResponseError as exc:
            raise _error(exc) from None

    async def load_scripts(self) -> None:
        """Load every script into Redis (before `queue_in`, and after a Redis restart)."""
        for script in self._scripts.values():
            script.sha = await self._client.script_load(script.script)

    def queue_in(self, pipe: Pipeline, operation: str, *args: object) -> None:
        """Queue one operation's script (raw arguments, as the methods below pass them) in the
        caller's pipeline or MULTI block, for batched hot paths and audits (the routing
        benchmark frees an agent and reads the reservation counter atomically). The scripts
        must be loaded (`load_scripts`); replies are raw."""
        pipe.evalsha(self._scripts[operation].sha, 0, *self._head, *map(_arg, args))

    @property
    def sequence_key(self) -> str:
        """The counter whose INCR numbers reservations (`{owner}-{n}`)."""
        return f"{self._prefix}seq"

    async def put_agent(self, agent: AgentDefinition, now: float) -> None:
        skills = ",".join(f"{s}={lv}" for s, lv in sorted(agent.all_skills().items()))
        caps = ",".join(f"{c.value}={agent.capacity.of(c)}" for c in Channel)
        await self._run(
            "put_agent", agent.agent_id, skills, caps, ",".join(sorted(agent.teams)), now
        )

    async def agent_event(
        self, agent_id: str, event: AgentEvent, now: float, *, reason: str = ""
    ) -> AgentStatus:
        return _status(await self._run("agent_event", agent_id, event.value, now, reason))

    async def add_item(
        self, item: WorkItem, *, steps: str, owner: str, entered_at: float, front: bool = False
    ) -> int:
        reqs = ",".join(f"{r.skill}={r.min_level}={int(r.relaxable)}" for r in item.requirements())
        return int(
            await self._run(
                "add_item",
                item.item_id,
                item.queue,
                queue_score(item.priority, item.arrived_at, front=front),
                item.channel.value,
                item.priority,
                item.arrived_at,
                entered_at,
                reqs,
                ",".join(item.preferred_agents),
                steps,
                owner,
                item.callback_number or "",
                int(front),
            )
        )

    async def remove_item(self, item_id: str) -> WaitingItem | None:
        raw = await self._run("remove_item", item_id)
        if raw is None:
            return None
        iid, queue, pr, arr, own, cb = (_s(v) for v in raw)
        return WaitingItem(iid, queue, int(pr), float(arr), own, cb or None)

    async def route(
        self, queue: str, now: float, owner: str, *, strategy: Strategy, window: int, ttl_s: float
    ) -> list[Reservation]:
        if strategy not in self._strategies:
            raise ValueError(f"strategy {strategy} is not maintained by this store")
        raw = await self._run("route", queue, now, owner, strategy.value, window, ttl_s)
        return [_reservation(r) for r in raw]

    async def take_offers(self, owner: str, *, limit: int = 1000) -> list[Reservation]:
        raw = await self._run("take_offers", owner, limit)
        return [_reservation(r) for r in raw]

    async def accept(self, reservation_id: str, now: float, *, ttl_s: float) -> Reservation:
        return _reservation(await self._run("accept", reservation_id, now, ttl_s))

    async def connect(self, reservation_id: str, now: float) -> Reservation:
        return _reservation(await self._run("connect", reservation_id, now))

    async def release(
        self, reservation_id: str, now: float, *, event: AgentEvent, reason: str = ""
    ) -> Reservation | None:
        raw = await self._run("release", reservation_id, now, event.value, reason)
        return None if raw is None else _reservation(raw)

    async def finish(
        self, agent_id: str, channel: Channel, now: float, *, worked_s: float, wrap_up_s: float
    ) -> AgentStatus:
        raw = await self._run("finish", agent_id, channel.value, now, worked_s, wrap_up_s)
        return _status(raw)

    async def sweep(self, now: float) -> tuple[list[Reservation], list[str]]:
        expired, wrapped = await self._run("sweep", now)
        return [_reservation(r) for r in expired], [_s(a) for a in wrapped]

    async def heartbeat(self, owner: str, now: float, *, ttl_s: float) -> None:
        await self._client.set(f"{self._prefix}own:{owner}", "1", px=max(1, int(ttl_s * 1000)))

    async def waiting(self, queue: str) -> list[WaitingItem]:
        raw = await self._run("waiting", queue)
        return [
            WaitingItem(_s(i), queue, int(_s(pr)), _f(arr), _s(own), _s(cb) or None)
            for i, pr, arr, own, cb in raw
        ]

    async def position(self, item_id: str) -> int:
        return int(await self._run("position", item_id))

    async def agents(self) -> list[AgentStatus]:
        return [_status(r) for r in await self._run("agents")]


def _arg(value: object) -> str | int:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | str):
        return value
    return json.dumps(value)
