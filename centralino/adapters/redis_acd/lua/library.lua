-- Per call: the key prefix and the maintained strategies (args 1 and 2 of every function).
-- Functions run one at a time, so these library locals are safe to reuse across calls.
local P = ''
local STRATS = {}
local strats_text = nil
-- What the current `route` call has read: ZCARD and first candidates of availability sets
-- (until an agent is taken, which changes them), agents' skills (fixed during a call). An item
-- that fits no one free costs no further reads of the same sets and agents.
local CARDS, HEADS, SKILLS = {}, {}, {}

local function split(s, sep)
  local out = {}
  if s == nil or s == '' or s == false then return out end
  for part in string.gmatch(s, '[^' .. sep .. ']+') do out[#out + 1] = part end
  return out
end

local function enter(args)
  P = args[1]
  if args[2] ~= strats_text then
    STRATS = split(args[2], ',')
    strats_text = args[2]
  end
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end

local function num(x) return tonumber(x or '0') or 0 end

-- Seconds as whole milliseconds, as text: the reservation expiry index keeps integral scores
-- (Redis then stores them as integers and parses none while inserting).
local function ms(t) return string.format('%d', math.floor(t * 1000)) end

-- What `route` needs of a waiting item, as one string: its queue's hash `P qd:{queue}` holds
-- one per item, so a routing call reads a whole window in one HMGET. DESC caches the parsed
-- form by the string itself (a pure function of it, so never stale); it is emptied when full.
local DESC, DESC_N, DESC_MAX = {}, 0, 2000

local function describe(ch, ent, req, pref, steps)
  return ch .. '\t' .. ent .. '\t' .. req .. '\t' .. pref .. '\t' .. steps
end

local function parse_desc(d)
  if not d then return nil end
  local x = DESC[d]
  if x then return x end
  local ch, ent, req, pref, steps = string.match(d, '^(.-)\t(.-)\t(.-)\t(.-)\t(.*)$')
  x = {ch = ch, ent = num(ent), prefs = split(pref, ','), reqs = {}, steps = {}, eff = {}}
  for s, lv, rx in string.gmatch(req, '([^,]+)=(%d)=(%d)') do
    x.reqs[#x.reqs + 1] = {s, tonumber(lv), rx == '1'}
  end
  for after, p, lv in string.gmatch(steps, '([^:;]+):([^:;]+):([^:;]+)') do
    x.steps[#x.steps + 1] = {tonumber(after), p == 'P', tonumber(lv)}
  end
  if DESC_N >= DESC_MAX then DESC, DESC_N = {}, 0 end
  DESC[d] = x
  DESC_N = DESC_N + 1
  return x
end

-- The descriptor of an item added by an older version of this library (which kept these fields
-- in the item's hash and wrote no `qd` entry); nil if the hash is gone.
local function stored_desc(id)
  local it = redis.call('HMGET', P .. 'it:' .. id, 'ch', 'ent', 'req', 'pref', 'steps')
  if not it[1] then return nil end
  return describe(it[1], it[2] or '0', it[3] or '', it[4] or '', it[5] or '')
end

-- The channel of item `id` of queue `q`: its routing descriptor's first field.
local function item_channel(id, q)
  local d = redis.call('HGET', P .. 'qd:' .. q, id) or stored_desc(id)
  return (d and string.match(d, '^([^\t]*)')) or 'voice'
end

-- The item's requirements after `waited` seconds (the last step reached sets the relaxed
-- level), and whether only its preferred agents may take it then.
local function effective(x, waited)
  local pref_only, level = false, 0
  for _, s in ipairs(x.steps) do
    if s[1] <= waited then pref_only = s[2]; level = s[3] end
  end
  if #x.prefs == 0 then pref_only = false end
  local reqs = x.eff[level]
  if reqs == nil then
    reqs = {}
    for i, r in ipairs(x.reqs) do
      local lv = r[2]
      if r[3] and level > 0 then lv = level end
      reqs[i] = {r[1], lv}
    end
    x.eff[level] = reqs
  end
  return reqs, pref_only
end

local function trans(st, ev)
  local edges = TRANS[st]
  return edges and edges[ev]
end

-- Apply a state-machine event to agent table `a` in memory (`save` writes it); nil if illegal.
local function step(a, ev, now, reason)
  local new = trans(a.st, ev)
  if not new then return nil end
  if new ~= a.st then
    a.since = now
    if new == 'ready' then a.idle = now end
  end
  if a.st == 'wrap_up' and new ~= 'wrap_up' then a.unwrap = true end
  a.st = new
  if new == 'not_ready' then a.reason = reason else a.reason = '' end
  if new == 'logged_out' then a['ld:chat'] = '0'; a['ld:email'] = '0' end
  return new
end

-- Write the agent's state fields (and `extra` field/value pairs) in one HSET.
local function save(id, a, extra)
  local f = {'st', a.st, 'since', a.since, 'idle', a.idle, 'reason', a.reason}
  if a.st == 'logged_out' then
    f[9] = 'ld:chat'; f[10] = '0'; f[11] = 'ld:email'; f[12] = '0'
  end
  if extra then
    for i = 1, #extra do f[#f + 1] = extra[i] end
  end
  redis.call('HSET', P .. 'ag:' .. id, unpack(f))
  if a.unwrap then
    redis.call('ZREM', P .. 'wrap', id)
    a.unwrap = nil
  end
end

local function apply(id, a, ev, now, reason, extra)
  local new = step(a, ev, now, reason)
  if new then save(id, a, extra) end
  return new
end

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
-- `sk`: the agent's skills as HGETALL returned them, when the caller already has them.
local function refresh(id, a, sk)
  sk = sk or redis.call('HGETALL', P .. 'sk:' .. id)
  for _, ch in ipairs(CHANNELS) do
    if num(a['cap:' .. ch]) > 0 then
      local on = available(a, ch)
      for _, st in ipairs(STRATS) do
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

local function status(id, a)
  return {id, a.st, a.since, a.reason or '', a['ld:chat'] or '0', a['ld:email'] or '0',
          a.teams or ''}
end

local function resv_reply(rid, r)
  return {rid, r.item, r.agent, r.q, r.ch, r.own, r.cr, r.exp, r.waited}
end

local function illegal(st, ev)
  return redis.error_reply('ILLEGAL ' .. tostring(st) .. ' ' .. ev)
end

-- A reservation's hash exists exactly while its id is in `P rvx` (both are written and removed
-- together), so reading the hash is the whole liveness check.
-- Every check comes before the first write: Redis does not roll a function back when it
-- returns an error, so an error after a write would leave half an operation behind.
local function release(rid, now, ev, reason)
  local rkey = P .. 'rv:' .. rid
  local r = hgetall(rkey)
  if r.item == nil then
    redis.call('ZREM', P .. 'rvx', rid)  -- (an index entry whose hash expired: nothing held)
    return nil
  end
  local akey = P .. 'ag:' .. r.agent
  local a = hgetall(akey)
  local moves = a.st ~= nil and r.ch == 'voice' and (a.st == 'reserved' or a.st == 'ringing')
  if moves and trans(a.st, ev) == nil then return illegal(a.st, ev) end
  redis.call('ZREM', P .. 'rvx', rid)
  if a.st ~= nil then
    if r.ch == 'voice' then
      if moves then
        apply(r.agent, a, ev, now, reason, {'rv', ''})
      else
        redis.call('HSET', akey, 'rv', '')
      end
    else
      local ld = 'ld:' .. r.ch
      a[ld] = tostring(math.max(0, num(a[ld]) - 1))
      if ev ~= 'expire' and a.st == 'ready' then
        apply(r.agent, a, 'not_ready', now, reason, {ld, a[ld]})
      else
        redis.call('HSET', akey, ld, a[ld])
      end
    end
    refresh(r.agent, a)
  end
  local ikey = P .. 'it:' .. r.item
  local it = redis.call('HMGET', ikey, 'q', 'fs', 'pr', 'arr')
  if it[1] then
    redis.call('HSET', ikey, 'st', 'w', 'front', '1', 'rv', '')
    -- (an item added by an older version of this library has no `fs`)
    local front = it[2]
    if not front then
      front = string.format('%d', -num(it[3]) * PRIORITY_BAND + math.floor(num(it[4]) * 1000))
    end
    redis.call('ZADD', P .. 'q:' .. it[1], front, r.item)
  end
  redis.call('DEL', rkey)
  return resv_reply(rid, r)
end

redis.register_function('@F@put_agent', function(_, args)
  enter(args)
  local id, skills, caps, teams, now = args[3], args[4], args[5], args[6], args[7]
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
  local sk = {}
  for _, pair in ipairs(split(skills, ',')) do
    local s, lv = string.match(pair, '^(.*)=(%d)$')
    sk[#sk + 1] = s
    sk[#sk + 1] = lv
  end
  if #sk > 0 then redis.call('HSET', P .. 'sk:' .. id, unpack(sk)) end
  local f = {'teams', teams}
  for _, pair in ipairs(split(caps, ',')) do
    local ch, n = string.match(pair, '^(.*)=(%d+)$')
    a['cap:' .. ch] = n
    f[#f + 1] = 'cap:' .. ch
    f[#f + 1] = n
  end
  a.teams = teams
  redis.call('HSET', akey, unpack(f))
  redis.call('SADD', P .. 'agents', id)
  refresh(id, a)
  return 1
end)

redis.register_function('@F@agent_event', function(_, args)
  enter(args)
  local id, ev, now, reason = args[3], args[4], args[5], args[6]
  local a = hgetall(P .. 'ag:' .. id)
  if a.st == nil then return redis.error_reply('UNKNOWN_AGENT ' .. id) end
  local was = a.st
  if apply(id, a, ev, now, reason) == nil then return illegal(was, ev) end
  refresh(id, a)
  return status(id, a)
end)

local route_queue  -- (defined with `route` below)

-- Every field is written, so a finished item's old hash needs no DEL first. Args 17 on
-- (optional): owner, strategy, window, offer ttl: then the queue is routed in the same call, as
-- `route` at the item's entry time would (nothing more when no agent is free); the reply is
-- then {position, reservations}.
redis.register_function('@F@add_item', function(_, args)
  enter(args)
  local id, q, qscore = args[3], args[4], args[5]
  local ikey = P .. 'it:' .. id
  if redis.call('HGET', ikey, 'st') == 'w' then return redis.error_reply('DUPLICATE ' .. id) end
  redis.call('HSET', ikey, 'q', q, 'pr', args[7], 'arr', args[8], 'own', args[13],
             'cb', args[14], 'front', args[15], 'fs', args[16], 'st', 'w', 'rv', '')
  redis.call('ZADD', P .. 'q:' .. q, qscore, id)
  redis.call('HSET', P .. 'qd:' .. q, id, describe(args[6], args[9], args[10], args[11], args[12]))
  local rank = redis.call('ZRANK', P .. 'q:' .. q, id) + 1
  if #args < 20 then return rank end
  return {rank, route_queue(q, args[9], args[17], args[18], tonumber(args[19]), tonumber(args[20]))}
end)

redis.register_function('@F@remove_item', function(_, args)
  enter(args)
  local id = args[3]
  local ikey = P .. 'it:' .. id
  local it = redis.call('HMGET', ikey, 'st', 'q', 'pr', 'arr', 'own', 'cb')
  if it[1] ~= 'w' then return nil end
  local ch = item_channel(id, it[2])
  redis.call('ZREM', P .. 'q:' .. it[2], id)
  redis.call('HDEL', P .. 'qd:' .. it[2], id)
  redis.call('DEL', ikey)
  return {id, it[2], it[3], it[4], it[5], it[6], ch}
end)

redis.register_function('@F@position', function(_, args)
  enter(args)
  local id = args[3]
  local it = redis.call('HMGET', P .. 'it:' .. id, 'st', 'q')
  if it[1] ~= 'w' then return 0 end
  local rank = redis.call('ZRANK', P .. 'q:' .. it[2], id)
  if not rank then return 0 end
  return rank + 1
end)

local function card(k)
  local n = CARDS[k]
  if n == nil then
    n = redis.call('ZCARD', k)
    CARDS[k] = n
  end
  return n
end

-- The first candidates of an availability set, as the first ZRANGE of `find` fetches them.
local function head(k)
  local batch = HEADS[k]
  if batch == nil then
    batch = redis.call('ZRANGE', k, 0, BATCH - 1, 'WITHSCORES')
    HEADS[k] = batch
  end
  return batch
end

-- Whether any agent is available on any channel: one EXISTS over the channels' sets (an empty
-- sorted set does not exist), the common answer when calls outnumber agents.
local function anyone(strat)
  local keys = {}
  for i, ch in ipairs(CHANNELS) do keys[i] = P .. 'av:' .. ch .. ':*:' .. strat end
  return redis.call('EXISTS', unpack(keys)) > 0
end

-- Whether agent `id` has every required skill at its level; also its skills (for `refresh`).
local function meets(id, reqs)
  if #reqs == 0 then return true, nil end
  local sk = SKILLS[id]
  if sk == nil then
    sk = redis.call('HGETALL', P .. 'sk:' .. id)
    SKILLS[id] = sk
  end
  for _, r in ipairs(reqs) do
    local lv = 0
    for i = 1, #sk, 2 do
      if sk[i] == r[1] then
        lv = tonumber(sk[i + 1])
        break
      end
    end
    if lv < r[2] then return false, sk end
  end
  return true, sk
end

-- The first available agent fitting the item, in strategy order, and its skills if known.
local function find(ch, strat, reqs, prefs, pref_only)
  local all = P .. 'av:' .. ch .. ':*:' .. strat
  -- Every skill set is a subset of the channel's set: when it is empty, no one can take this.
  if card(all) == 0 then return nil end
  for _, p in ipairs(prefs) do
    if redis.call('ZSCORE', all, p) then
      local ok, sk = meets(p, reqs)
      if ok then return p, sk end
    end
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
        local n = card(k)
        if best == nil or n < best then best = n; key = k end
      end
      if best == 0 then return nil end
    end
  end
  local start, size = 0, BATCH
  while true do
    local batch
    if start == 0 then batch = head(key)
    else batch = redis.call('ZRANGE', key, start, start + size - 1, 'WITHSCORES') end
    if #batch == 0 then return nil end
    for i = 1, #batch, 2 do
      local cand = batch[i]
      if cutoff and tonumber(batch[i + 1]) >= cutoff then return nil end
      local ok, sk = meets(cand, reqs)
      if ok then return cand, sk end
    end
    start = start + size
    size = math.min(size * 2, BATCH_MAX)
  end
end

-- Reserve agent `agent` (table `a`, changed in memory) for waiting item `id` of queue `q`:
-- the item leaves its queue, the reservation is written. Returns the reply entry and the agent
-- fields to write with its state (the caller writes the agent hash once). The item's own
-- process rings the agent; items of a process whose heartbeat lapsed are adopted by `owner`.
local function book(agent, a, id, q, ch, ttl, now, now_s, owner)
  local ikey = P .. 'it:' .. id
  local it = redis.call('HMGET', ikey, 'arr', 'own')
  local holder = it[2]
  local foreign = holder ~= owner and redis.call('EXISTS', P .. 'own:' .. holder) == 1
  if not foreign then holder = owner end
  local rid = holder .. '-' .. redis.call('INCR', P .. 'seq')
  local fields
  if ch == 'voice' then
    step(a, 'reserve', now_s, '')
    fields = {'rv', rid}
  else
    local ld = 'ld:' .. ch
    a[ld] = tostring(num(a[ld]) + 1)
    fields = {ld, a[ld]}
  end
  redis.call('ZREM', P .. 'q:' .. q, id)
  redis.call('HSET', ikey, 'st', 'r', 'rv', rid, 'own', holder)
  local exp, waited_s = tostring(now + ttl), tostring(now - num(it[1]))
  local rkey = P .. 'rv:' .. rid
  redis.call('HSET', rkey, 'item', id, 'agent', agent, 'q', q, 'ch', ch, 'own', holder,
             'cr', now_s, 'exp', exp, 'waited', waited_s)
  redis.call('PEXPIRE', rkey, math.floor((ttl + GRACE) * 1000))
  redis.call('ZADD', P .. 'rvx', ms(now + ttl), rid)
  if foreign then redis.call('RPUSH', P .. 'inbox:' .. holder, rid) end
  return {rid, id, agent, q, ch, holder, now_s, exp, waited_s}, fields
end

-- Whether the agent is in any availability set (free on some channel it serves).
local function listed(a)
  for _, ch in ipairs(CHANNELS) do
    if num(a['cap:' .. ch]) > 0 and available(a, ch) then return true end
  end
  return false
end

-- Whether agent `id` may take an item needing `reqs` (only if preferred, when `pref_only`).
local function fits(id, reqs, prefs, pref_only)
  if pref_only then
    local mine = false
    for _, p in ipairs(prefs) do
      if p == id then mine = true; break end
    end
    if not mine then return false end
  end
  return (meets(id, reqs))
end

-- Agent-driven routing: the waiting item agent `id` (table `a`, skills `sk` as HGETALL gives
-- them) takes next from queues `qs` (flat queue, offer ttl pairs): in each queue the first of
-- its first `window` items the agent may take; of those, the best queue score (the earlier
-- queue on a tie). Queues are read a few items at a time (most agents fit an early one), later
-- queues only below the best score found so far.
local function pick(id, a, sk, qs, window, now)
  SKILLS = {[id] = sk}  -- what `meets` reads: this agent's skills, fresh
  local free = {}
  for _, ch in ipairs(CHANNELS) do free[ch] = available(a, ch) end
  local best, best_q, best_ttl, best_ch, bound = nil, nil, nil, nil, '+inf'
  for k = 1, #qs - 1, 2 do
    local q = qs[k]
    local start, size, found = 0, BATCH, false
    while not found and start < window do
      size = math.min(size, window - start)
      local ids = redis.call('ZRANGEBYSCORE', P .. 'q:' .. q, '-inf', bound, 'LIMIT', start, size)
      if #ids == 0 then break end
      local descs = redis.call('HMGET', P .. 'qd:' .. q, unpack(ids))
      for j, iid in ipairs(ids) do
        local x = parse_desc(descs[j] or stored_desc(iid))
        if x and free[x.ch] then
          local reqs, pref_only = effective(x, now - x.ent)
          if fits(id, reqs, x.prefs, pref_only) then
            best, best_q, best_ttl, best_ch = iid, q, tonumber(qs[k + 1]), x.ch
            if k + 1 < #qs then bound = '(' .. redis.call('ZSCORE', P .. 'q:' .. q, iid) end
            found = true
            break
          end
        end
      end
      if #ids < size then break end
      start = start + size
      size = math.min(size * 2, BATCH_MAX)
    end
  end
  return best, best_q, best_ttl, best_ch
end

-- Match the first `window` items of queue `q`, in order, to available agents (`find`).
route_queue = function(q, now_s, owner, strat, window, ttl)
  local now = tonumber(now_s)
  CARDS, HEADS, SKILLS = {}, {}, {}
  local out = {}
  -- No agent available on any channel (all busy): nothing in this queue can be matched.
  if not anyone(strat) then return out end
  local ids = redis.call('ZRANGE', P .. 'q:' .. q, 0, window - 1)
  if #ids == 0 then return out end
  local descs = redis.call('HMGET', P .. 'qd:' .. q, unpack(ids))
  for i, id in ipairs(ids) do
    local x = parse_desc(descs[i] or stored_desc(id))
    if x and card(P .. 'av:' .. x.ch .. ':*:' .. strat) > 0 then
      local reqs, pref_only = effective(x, now - x.ent)
      local agent, sk = find(x.ch, strat, reqs, x.prefs, pref_only)
      local a = agent and hgetall(P .. 'ag:' .. agent)
      if agent and not available(a, x.ch) then
        -- The index says free, the agent's hash does not (an index an older library version
        -- left, or a hand edit): reserving would write a reservation whose state change is
        -- illegal. Mend the index instead; the item waits for the next match.
        if a.st ~= nil then refresh(agent, a, sk) end
        CARDS, HEADS = {}, {}
      elseif agent then
        local entry, fields = book(agent, a, id, q, x.ch, ttl, now, now_s, owner)
        if x.ch == 'voice' then save(agent, a, fields)
        else redis.call('HSET', P .. 'ag:' .. agent, unpack(fields)) end
        refresh(agent, a, sk)
        CARDS, HEADS = {}, {}
        out[#out + 1] = entry
        if not anyone(strat) then return out end
      end
    end
  end
  return out
end

redis.register_function('@F@route', function(_, args)
  enter(args)
  return route_queue(args[3], args[4], args[5], args[6], tonumber(args[7]), tonumber(args[8]))
end)

redis.register_function('@F@take_offers', function(_, args)
  enter(args)
  local owner, limit = args[3], tonumber(args[4])
  local out = {}
  local rids = redis.call('LPOP', P .. 'inbox:' .. owner, limit) or {}
  for _, rid in ipairs(rids) do
    local r = hgetall(P .. 'rv:' .. rid)
    if r.item ~= nil then out[#out + 1] = resv_reply(rid, r) end
  end
  return out
end)

redis.register_function('@F@accept', function(_, args)
  enter(args)
  local rid, now, ttl = args[3], tonumber(args[4]), tonumber(args[5])
  local rkey = P .. 'rv:' .. rid
  local r = hgetall(rkey)
  if r.item == nil then return redis.error_reply('STALE ' .. rid) end
  if r.ch == 'voice' then
    local f = redis.call('HMGET', P .. 'ag:' .. r.agent, 'st', 'since', 'idle')
    local a = {st = f[1], since = f[2], idle = f[3]}
    if not a.st then return redis.error_reply('UNKNOWN_AGENT ' .. r.agent) end
    if apply(r.agent, a, 'accept', args[4], '') == nil then return illegal(f[1], 'accept') end
  end
  r.exp = tostring(now + ttl)
  redis.call('HSET', rkey, 'exp', r.exp)
  redis.call('PEXPIRE', rkey, math.floor((ttl + GRACE) * 1000))
  redis.call('ZADD', P .. 'rvx', ms(now + ttl), rid)
  return resv_reply(rid, r)
end)

redis.register_function('@F@connect', function(_, args)
  enter(args)
  local rid = args[3]
  local rkey = P .. 'rv:' .. rid
  local r = hgetall(rkey)
  if r.item == nil then return redis.error_reply('STALE ' .. rid) end
  if r.ch == 'voice' then
    local f = redis.call('HMGET', P .. 'ag:' .. r.agent, 'st', 'since', 'idle')
    local a = {st = f[1], since = f[2], idle = f[3]}
    if not a.st then return redis.error_reply('UNKNOWN_AGENT ' .. r.agent) end
    if apply(r.agent, a, 'answer', args[4], '', {'rv', ''}) == nil then
      return illegal(f[1], 'answer')
    end
  end
  redis.call('DEL', rkey, P .. 'it:' .. r.item)
  redis.call('HDEL', P .. 'qd:' .. r.q, r.item)
  redis.call('ZREM', P .. 'rvx', rid)
  return resv_reply(rid, r)
end)

redis.register_function('@F@release', function(_, args)
  enter(args)
  return release(args[3], args[4], args[5], args[6])
end)

-- args 8 on (optional): owner, window, then queue, offer ttl pairs: a voice agent freed with no
-- wrap-up (or an agent with a free slot) takes its next item in the same call (`pick`), never
-- entering the availability sets in between.
redis.register_function('@F@finish', function(_, args)
  enter(args)
  local id, ch, now_s = args[3], args[4], args[5]
  local worked, wrap = tonumber(args[6]), tonumber(args[7])
  local now = tonumber(now_s)
  local a = hgetall(P .. 'ag:' .. id)
  if a.st == nil then return redis.error_reply('UNKNOWN_AGENT ' .. id) end
  if ch == 'voice' and trans(a.st, 'hangup') == nil then return illegal(a.st, 'hangup') end
  local was_listed = listed(a)
  local bs = num(a.bs)
  local decayed = 0
  if bs > 0 then decayed = bs * math.exp(-(now - num(a.ba)) / TAU) end
  a.bs = tostring(decayed + worked)
  a.ba = now_s
  local extra = {'bs', a.bs, 'ba', a.ba}
  if ch == 'voice' then
    step(a, 'hangup', now_s, '')
    if wrap <= 0 then
      step(a, 'wrap_done', now_s, '')
      -- The wrap-up began in this call (hang-up is legal only from BUSY), so the agent is in no
      -- timed wrap-up to remove.
      a.unwrap = nil
    else
      redis.call('ZADD', P .. 'wrap', now + wrap, id)
    end
  else
    local ld = 'ld:' .. ch
    a[ld] = tostring(math.max(0, num(a[ld]) - 1))
    extra[5] = ld
    extra[6] = a[ld]
  end
  local booked, sk = nil, nil
  if #args >= 9 and listed(a) then
    sk = redis.call('HGETALL', P .. 'sk:' .. id)
    local qs = {}
    for k = 10, #args do qs[#qs + 1] = args[k] end
    local item, q, ttl, ich = pick(id, a, sk, qs, tonumber(args[9]), now)
    if item then
      local fields
      booked, fields = book(id, a, item, q, ich, ttl, now, now_s, args[8])
      for _, f in ipairs(fields) do extra[#extra + 1] = f end
    end
  end
  if ch == 'voice' or booked then save(id, a, extra)
  else redis.call('HSET', P .. 'ag:' .. id, unpack(extra)) end
  -- An agent that was in no availability set and is in none now (reserved straight from BUSY)
  -- needs no index update.
  if was_listed or listed(a) then refresh(id, a, sk) end
  local out = status(id, a)
  if booked then out[8] = booked end
  return out
end)

redis.register_function('@F@sweep', function(_, args)
  enter(args)
  local now_s = args[3]
  local now = tonumber(now_s)
  local expired = {}
  for _, rid in ipairs(redis.call('ZRANGEBYSCORE', P .. 'rvx', '-inf', ms(now))) do
    local r = release(rid, now_s, 'expire', '')
    if type(r) == 'table' and r[1] ~= nil then expired[#expired + 1] = r end
  end
  local wrapped = {}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'wrap', '-inf', now)) do
    redis.call('ZREM', P .. 'wrap', id)
    local a = hgetall(P .. 'ag:' .. id)
    if a.st == 'wrap_up' then
      step(a, 'wrap_done', now_s, '')
      a.unwrap = nil  -- just removed above
      save(id, a)
      refresh(id, a)
      wrapped[#wrapped + 1] = id
    end
  end
  return {expired, wrapped}
end)


redis.register_function('@F@waiting', function(_, args)
  enter(args)
  local q = args[3]
  local out = {}
  for _, id in ipairs(redis.call('ZRANGE', P .. 'q:' .. q, 0, -1)) do
    local it = redis.call('HMGET', P .. 'it:' .. id, 'pr', 'arr', 'own', 'cb')
    out[#out + 1] = {id, it[1] or '0', it[2] or '0', it[3] or '', it[4] or '',
                     item_channel(id, q)}
  end
  return out
end)

local function agent_rows()
  local out = {}
  for _, id in ipairs(redis.call('SMEMBERS', P .. 'agents')) do
    local f = redis.call('HMGET', P .. 'ag:' .. id, 'st', 'since', 'reason', 'ld:chat',
                         'ld:email', 'teams')
    out[#out + 1] = {id, f[1], f[2], f[3] or '', f[4] or '0', f[5] or '0', f[6] or ''}
  end
  return out
end

redis.register_function('@F@agents', function(_, args)
  enter(args)
  return agent_rows()
end)

-- args 3 on: the queues whose waiting items to list. Reply: {agents, reservations, reserved
-- callback items, waiting items (id, queue, priority, arrival, owner, callback, channel)}.
redis.register_function('@F@snapshot', function(_, args)
  enter(args)
  local resv, cbs = {}, {}
  for _, rid in ipairs(redis.call('ZRANGE', P .. 'rvx', 0, -1)) do
    local r = hgetall(P .. 'rv:' .. rid)
    if r.item ~= nil then
      resv[#resv + 1] = resv_reply(rid, r)
      local cb = redis.call('HGET', P .. 'it:' .. r.item, 'cb')
      if cb and cb ~= '' then cbs[#cbs + 1] = r.item end
    end
  end
  local waiting = {}
  for k = 3, #args do
    local q = args[k]
    for _, id in ipairs(redis.call('ZRANGE', P .. 'q:' .. q, 0, -1)) do
      local it = redis.call('HMGET', P .. 'it:' .. id, 'pr', 'arr', 'own', 'cb')
      waiting[#waiting + 1] = {id, q, it[1] or '0', it[2] or '0', it[3] or '', it[4] or '',
                               item_channel(id, q)}
    end
  end
  return {agent_rows(), resv, cbs, waiting}
end)

-- Take item args[3] out whatever it is doing (the reconciling sweep: its caller is gone).
-- Reply: {the item as remove_item replies it, the reservation released or nil}; nil if the
-- store has no such item.
redis.register_function('@F@discard_item', function(_, args)
  enter(args)
  local id, now = args[3], args[4]
  local ikey = P .. 'it:' .. id
  local it = redis.call('HMGET', ikey, 'st', 'q', 'pr', 'arr', 'own', 'cb', 'rv')
  if not it[1] then return nil end
  local item = {id, it[2], it[3], it[4], it[5], it[6] or '', item_channel(id, it[2])}
  local res = false
  -- `expire` is legal from every state `release` moves (RESERVED, RINGING): no error here.
  if it[1] == 'r' and it[7] and it[7] ~= '' then
    res = release(it[7], now, 'expire', '') or false
  end
  redis.call('ZREM', P .. 'q:' .. it[2], id)
  redis.call('HDEL', P .. 'qd:' .. it[2], id)
  redis.call('DEL', ikey)
  return {item, res}
end)

-- Free agent args[3] if it is still in state args[4] since args[5] (else nil): BUSY ends with
-- no wrap-up; RESERVED or RINGING release the voice reservation holding the agent (its item
-- back in front) or, when none is held any more, expire.
redis.register_function('@F@reset_agent', function(_, args)
  enter(args)
  local id, want, since, now = args[3], args[4], args[5], args[6]
  local akey = P .. 'ag:' .. id
  local a = hgetall(akey)
  if a.st ~= want or tonumber(a.since) ~= tonumber(since) then return nil end
  if a.st == 'busy' then
    step(a, 'hangup', now, '')
    step(a, 'wrap_done', now, '')
    a.unwrap = nil  -- the wrap-up began and ended in this call: no timed wrap-up to remove
    save(id, a)
  elseif a.st == 'reserved' or a.st == 'ringing' then
    local rv = a.rv
    if rv and rv ~= '' and redis.call('EXISTS', P .. 'rv:' .. rv) == 1 then
      release(rv, now, 'expire', '')  -- legal from both states; frees the agent and the sets
      a = hgetall(akey)
      return status(id, a)
    end
    step(a, 'expire', now, '')
    save(id, a, {'rv', ''})
  else
    return nil
  end
  refresh(id, a)
  return status(id, a)
end)
