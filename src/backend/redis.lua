-- seatgate's seat table in Redis: every operation that reads and changes seats, as one
-- atomic script (`main` at the end: FCALL of this file loaded as a Redis 7 function,
-- or EVALSHA), so a bundle is checked and taken in one round trip and no count can
-- drift from the holder records it is kept with.
--
-- Keys (P = "{prefix}", or "{prefix}:tenant:<name>" for a tenant's pool: the braces make
-- every key of an installation, tenants included, one hash slot):
--   P:epoch         this data set's identity; gone or different = the server lost data
--   P:seq           handle-id sequence (ids only, never a seat count), kept below 2^47:
--                   seat ids stay below 2^48 (the engine keeps the top 16 bits for its
--                   tenant tag) and ids at and above 2^47 are a node's local handles
--   P:handles       zset: every live handle, scored by lease deadline (us; +inf: none)
--   P:h:<seat>      hash: user, ut / st (user- and session-counted type names), ext,
--                   ses, since (unix ms), lease (us), node
--   P:u:<user>      hash: u:<type> handles holding a user-counted type, s:<type>
--                   session seats, l:<type> linger deadline (us), h:<seat> its types
--   P:linger        zset: "<type>\n<user>" scored by linger deadline (us)
--   P:t:<type>      hash: used (seats counted), peak, psr (peak since reset), acq, den
--   P:gone:<seat>   why a handle went without its holder asking (expires in a day)
--   P:dropped:<node> handles of that node released by another node (for its mirror)
--
-- The invariant every op keeps: P:t:<type>.used = number of users with u:<type> > 0 or
-- a live l:<type>, plus the sum of s:<type> over users. Only these scripts write it.
--
-- ARGV: op, P, epoch, node, now (cluster us), type table, op arguments...
-- Type table: "name mode limit linger_us req1,req2;..." in slot order ("-": no
-- requirement); limits come from the caller's configuration.
-- Reply: { status, changes {type, before, after, ...}, released {{...}, ...}, detail {...} }

-- Per-call values, set by `main` at the start of every call: under EVAL they are
-- this run's, and in a Redis 7 function library (loaded once, see the end of the
-- file) the same locals are reused by every FCALL, so `main` sets each one anew.
local OP, P, EPOCH, NODE, NOW
local K_EPOCH, K_SEQ, K_HANDLES, K_LINGER
local CHANGES, RELEASED, USED, BILLING
-- The caller's license types, read-only once parsed, and the text they were parsed
-- from: kept from one FCALL to the next while the text is the same (`parse_types`).
local T, ORDER, DEPENDENT, TYPES_TEXT
-- The highest id P:seq may hand out: 2^47 - 1 (exact in Lua's doubles).
local MAX_SEQ = 140737488355327

-- Lua 5.1 prints large numbers as 1.8e+15: every number sent to Redis goes through here.
local function num(x)
  return string.format('%.0f', x)
end

local function pos(t)
  local info = T[t]
  return info and info.pos or 1000
end

local function by_slot(a, b)
  local pa, pb = pos(a), pos(b)
  if pa ~= pb then
    return pa < pb
  end
  return a < b
end

local function seat_less(a, b)
  if #a ~= #b then
    return #a < #b
  end
  return a < b
end

local function split(csv)
  local out = {}
  if csv and csv ~= '' then
    for x in string.gmatch(csv, '[^,]+') do
      out[#out + 1] = x
    end
  end
  return out
end

-- ---- counts ----

-- What this call read or wrote of each type's counters: every write goes through
-- give_back and take, so the cache stays exact for the whole script.

local function load_stat(t)
  local f = redis.call('HMGET', P .. ':t:' .. t, 'used', 'peak', 'psr', 'acq')
  USED[t] = tonumber(f[1] or '0') or 0
  BILLING[t] = { tonumber(f[2] or '0') or 0, tonumber(f[3] or '0') or 0, tonumber(f[4] or '0') or 0 }
end

local function used_of(t)
  if USED[t] == nil then
    USED[t] = tonumber(redis.call('HGET', P .. ':t:' .. t, 'used') or '0') or 0
  end
  return USED[t]
end

local function change(t, before, after)
  CHANGES[#CHANGES + 1] = t
  CHANGES[#CHANGES + 1] = before
  CHANGES[#CHANGES + 1] = after
end

local function give_back(t)
  local k = P .. ':t:' .. t
  if USED[t] == nil then
    local after = redis.call('HINCRBY', k, 'used', -1)
    if after < 0 then
      redis.call('HSET', k, 'used', '0')
      USED[t] = 0
    else
      USED[t] = after
      change(t, after + 1, after)
    end
  elseif USED[t] > 0 then
    USED[t] = USED[t] - 1
    redis.call('HSET', k, 'used', num(USED[t]))
    change(t, USED[t] + 1, USED[t])
  end
end

local function take(t)
  if BILLING[t] == nil then
    load_stat(t)
  end
  local before, b = USED[t], BILLING[t]
  local after = before + 1
  b[1], b[2], b[3] = math.max(b[1], after), math.max(b[2], after), b[3] + 1
  USED[t] = after
  redis.call('HSET', P .. ':t:' .. t, 'used', num(after), 'peak', num(b[1]), 'psr', num(b[2]), 'acq', num(b[3]))
  change(t, before, after)
end

-- ---- handles ----

-- The lease deadline of a live handle (math.huge: none), or nil when it is not held.
local function deadline_of(seat)
  local s = redis.call('ZSCORE', K_HANDLES, seat)
  if not s then
    return nil
  end
  if s == 'inf' or s == '+inf' then
    return math.huge
  end
  return tonumber(s) or math.huge
end

local function expired(deadline)
  return deadline ~= math.huge and deadline <= NOW
end

local function load_handle(seat)
  local raw = redis.call('HGETALL', P .. ':h:' .. seat)
  if #raw == 0 then
    return nil
  end
  local r = {}
  for i = 1, #raw, 2 do
    r[raw[i]] = raw[i + 1]
  end
  r.seat = seat
  return r
end

local GONE_REMEMBERED = {
  expired = true, dependency = true, admin = true, reconciled = true,
  emergency_expired = true, license_expired = true,
}
local LINGERS = { normal = true, expired = true, dependency = true }

-- Takes a handle out of the table and gives back its seats, or keeps its user-counted
-- seats lingering for the type's window when `lingers`.
local function drop_handle(rec, why, lingers)
  local seat, user = rec.seat, rec.user
  local uk = P .. ':u:' .. user
  redis.call('DEL', P .. ':h:' .. seat)
  redis.call('ZREM', K_HANDLES, seat)
  local ut, st = split(rec.ut), split(rec.st)
  local fields = {}
  for _, t in ipairs(st) do
    fields[#fields + 1] = 's:' .. t
  end
  for _, t in ipairs(ut) do
    fields[#fields + 1] = 'u:' .. t
  end
  local refs = {}
  if #fields > 0 then
    refs = redis.call('HMGET', uk, unpack(fields))
  end
  local del, set = { 'h:' .. seat }, {}
  for i, t in ipairs(st) do
    give_back(t)
    local n = (tonumber(refs[i]) or 0) - 1
    if n > 0 then
      set[#set + 1] = fields[i]
      set[#set + 1] = n
    else
      del[#del + 1] = fields[i]
    end
  end
  for j, t in ipairs(ut) do
    local i = #st + j
    local n = (tonumber(refs[i]) or 0) - 1
    if n > 0 then
      set[#set + 1] = fields[i]
      set[#set + 1] = n
    else
      del[#del + 1] = fields[i]
      local window = 0
      if lingers and T[t] then
        window = T[t].linger
      end
      if window > 0 then
        local deadline = NOW + window
        set[#set + 1] = 'l:' .. t
        set[#set + 1] = num(deadline)
        redis.call('ZADD', K_LINGER, num(deadline), t .. '\n' .. user)
      else
        give_back(t)
      end
    end
  end
  redis.call('HDEL', uk, unpack(del))
  if #set > 0 then
    redis.call('HSET', uk, unpack(set))
  end
  if GONE_REMEMBERED[why] then
    redis.call('SET', P .. ':gone:' .. seat, why, 'EX', 86400)
  end
  local owner = rec.node or ''
  if owner ~= NODE and owner ~= '' then
    local k = P .. ':dropped:' .. owner
    redis.call('SADD', k, seat)
    redis.call('EXPIRE', k, 86400)
  end
  local types = {}
  for _, t in ipairs(ut) do
    types[#types + 1] = t
  end
  for _, t in ipairs(st) do
    types[#types + 1] = t
  end
  local entry = { seat, user, why, owner, rec.ext or '', rec.ses or '', rec.ut or '', rec.st or '', rec.since or '0' }
  for _, t in ipairs(types) do
    entry[#entry + 1] = t
    entry[#entry + 1] = used_of(t)
  end
  RELEASED[#RELEASED + 1] = entry
end

local function holds_all(reqs, held)
  for _, r in ipairs(reqs) do
    if not held[r] then
      return false
    end
  end
  return true
end

-- Releases every handle of `user` that holds a type whose requirement the user no
-- longer holds, until none is left.
local function cascade(user, lingers)
  if not DEPENDENT then
    return
  end
  local uk = P .. ':u:' .. user
  while true do
    local raw = redis.call('HGETALL', uk)
    local held, handles = {}, {}
    for i = 1, #raw, 2 do
      local kind, rest = string.sub(raw[i], 1, 2), string.sub(raw[i], 3)
      if kind == 'u:' or kind == 's:' then
        if (tonumber(raw[i + 1]) or 0) > 0 then
          held[rest] = true
        end
      elseif kind == 'h:' then
        handles[#handles + 1] = { rest, raw[i + 1] }
      end
    end
    local victims = {}
    for _, h in ipairs(handles) do
      for _, t in ipairs(split(h[2])) do
        local info = T[t]
        if info and #info.req > 0 and not holds_all(info.req, held) then
          victims[#victims + 1] = h[1]
          break
        end
      end
    end
    if #victims == 0 then
      return
    end
    table.sort(victims, seat_less)
    local progressed = false
    for _, seat in ipairs(victims) do
      local deadline = deadline_of(seat)
      local rec = deadline and load_handle(seat)
      if rec then
        drop_handle(rec, expired(deadline) and 'expired' or 'dependency', lingers)
        progressed = true
      else
        redis.call('HDEL', uk, 'h:' .. seat)
      end
    end
    if not progressed then
      return
    end
  end
end

local function settle(rec, why)
  drop_handle(rec, why, LINGERS[why])
  cascade(rec.user, LINGERS[why])
end

-- Reclaims every expired lease and ended linger window; returns how many seats.
local function reap_all()
  local n = 0
  for _, seat in ipairs(redis.call('ZRANGEBYSCORE', K_HANDLES, '-inf', num(NOW))) do
    local deadline = deadline_of(seat)
    if deadline and expired(deadline) then
      local rec = load_handle(seat)
      if rec then
        settle(rec, 'expired')
        n = n + 1
      else
        redis.call('ZREM', K_HANDLES, seat)
      end
    end
  end
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', K_LINGER, '-inf', num(NOW))) do
    redis.call('ZREM', K_LINGER, member)
    local t, user = string.match(member, '^([^\n]+)\n(.*)$')
    if t then
      local uk = P .. ':u:' .. user
      local deadline = tonumber(redis.call('HGET', uk, 'l:' .. t) or '')
      if deadline and deadline <= NOW then
        redis.call('HDEL', uk, 'l:' .. t)
        give_back(t)
        n = n + 1
      end
    end
  end
  return n
end

-- Checks and takes one handle's seats, all or nothing. `a`: user, ut, st (type lists),
-- seat (nil: a new id), deadline (us; 0: none), lease, since, ext, ses, node.
local function take_handle(a)
  local uk = P .. ':u:' .. a.user
  local raw = redis.call('HGETALL', uk)
  local urefs, srefs, held, lingering = {}, {}, {}, {}
  for i = 1, #raw, 2 do
    local kind, rest, v = string.sub(raw[i], 1, 2), string.sub(raw[i], 3), raw[i + 1]
    if kind == 'u:' then
      urefs[rest] = tonumber(v) or 0
      if urefs[rest] > 0 then
        held[rest] = true
      end
    elseif kind == 's:' then
      srefs[rest] = tonumber(v) or 0
      if srefs[rest] > 0 then
        held[rest] = true
      end
    elseif kind == 'l:' then
      lingering[#lingering + 1] = { rest, tonumber(v) or 0 }
    end
  end
  local all, want, is_user = {}, {}, {}
  for _, t in ipairs(a.ut) do
    all[#all + 1] = t
    want[t] = true
    is_user[t] = true
  end
  for _, t in ipairs(a.st) do
    all[#all + 1] = t
    want[t] = true
  end
  table.sort(all, by_slot)

  -- Dependent licenses: each required type must be held already or come along.
  for _, t in ipairs(all) do
    local info = T[t]
    if info then
      for _, r in ipairs(info.req) do
        if not want[r] and not held[r] then
          return { 'missing', t, used_of(t), info.limit, r }
        end
      end
    end
  end

  -- Seats lingering for this user: an ended window is freed now, a live one is
  -- handed back below without counting again.
  table.sort(lingering, function(x, y)
    return by_slot(x[1], y[1])
  end)
  local reuse = {}
  for _, l in ipairs(lingering) do
    local t, deadline = l[1], l[2]
    if deadline <= NOW then
      redis.call('HDEL', uk, 'l:' .. t)
      redis.call('ZREM', K_LINGER, t .. '\n' .. a.user)
      give_back(t)
    elseif is_user[t] then
      reuse[t] = true
    end
  end

  local needed = {}
  for _, t in ipairs(all) do
    if not is_user[t] or ((urefs[t] or 0) <= 0 and not reuse[t]) then
      needed[#needed + 1] = t
    end
  end
  -- A type with no seats at all can never be had: name it first.
  for _, t in ipairs(needed) do
    local limit = T[t] and T[t].limit or 0
    if limit == 0 then
      return { 'noseats', t, used_of(t), 0 }
    end
  end
  for _, t in ipairs(needed) do
    load_stat(t)
    if USED[t] >= T[t].limit then
      return { 'full', t, USED[t], T[t].limit }
    end
  end

  -- A new id last of all checks, before anything is taken: a sequence at its end
  -- (2^47 - 1) refuses the login and is left as it was.
  local seat = a.seat
  if not seat then
    local seq = redis.call('INCR', K_SEQ)
    if seq > MAX_SEQ then
      redis.call('DECR', K_SEQ)
      return { 'idspace', num(seq - 1) }
    end
    seat = num(seq)
  end
  for _, t in ipairs(needed) do
    take(t)
  end
  for t, _ in pairs(reuse) do
    redis.call('HDEL', uk, 'l:' .. t)
    redis.call('ZREM', K_LINGER, t .. '\n' .. a.user)
  end
  local set = { 'h:' .. seat, table.concat(all, ',') }
  for _, t in ipairs(a.ut) do
    set[#set + 1] = 'u:' .. t
    set[#set + 1] = (urefs[t] or 0) + 1
  end
  for _, t in ipairs(a.st) do
    set[#set + 1] = 's:' .. t
    set[#set + 1] = (srefs[t] or 0) + 1
  end
  redis.call('HSET', uk, unpack(set))
  local record = { 'user', a.user, 'ut', table.concat(a.ut, ','), 'st', table.concat(a.st, ','),
    'since', a.since, 'lease', num(a.lease), 'node', a.node }
  if a.ext ~= '' then
    record[#record + 1] = 'ext'
    record[#record + 1] = a.ext
  end
  if a.ses ~= '' then
    record[#record + 1] = 'ses'
    record[#record + 1] = a.ses
  end
  redis.call('HSET', P .. ':h:' .. seat, unpack(record))
  local score = '+inf'
  if a.deadline > 0 then
    score = num(a.deadline)
  end
  redis.call('ZADD', K_HANDLES, score, seat)
  return { 'ok', seat, score }
end

local function gone(seat)
  local why = redis.call('GET', P .. ':gone:' .. seat)
  return { 'gone', why or '' }
end

-- Renews one lease; an expired handle is reclaimed instead.
local function touch_one(seat)
  local deadline = deadline_of(seat)
  if not deadline then
    return gone(seat)
  end
  if expired(deadline) then
    local rec = load_handle(seat)
    if rec then
      settle(rec, 'expired')
    end
    return { 'expired' }
  end
  local lease = tonumber(redis.call('HGET', P .. ':h:' .. seat, 'lease') or '0') or 0
  if lease > 0 then
    local score = num(NOW + lease)
    redis.call('ZADD', K_HANDLES, 'XX', score, seat)
    return { 'ok', score }
  end
  return { 'ok', '+inf' }
end

-- The names after `kind` ('h:', 'l:', ...) of the fields in a user hash's HGETALL reply.
local function fields_of(raw, kind)
  local out = {}
  for i = 1, #raw, 2 do
    if string.sub(raw[i], 1, 2) == kind then
      out[#out + 1] = string.sub(raw[i], 3)
    end
  end
  return out
end

local function user_handles(user)
  local raw = redis.call('HGETALL', P .. ':u:' .. user)
  local handles = fields_of(raw, 'h:')
  table.sort(handles, seat_less)
  return handles, raw
end

-- ---- operations ----

-- Parses the caller's type table into T, ORDER and DEPENDENT (read-only afterwards).
-- Under FCALL the parsed table is kept between calls and parsed again only when the
-- text differs (a reload, another node's config, a tenant's pool): the parse was
-- about 17,000 of the 210,000 instructions a call cost Redis.
local function parse_types(text)
  T, ORDER, DEPENDENT = {}, {}, false
  for entry in string.gmatch(text, '[^;]+') do
    local name, mode, limit, linger, req = string.match(entry, '^(%S+) (%a) (%d+) (%d+) (%S+)$')
    if name then
      local reqs = {}
      if req ~= '-' then
        for r in string.gmatch(req, '[^,]+') do
          reqs[#reqs + 1] = r
        end
      end
      ORDER[#ORDER + 1] = name
      T[name] = { mode = mode, limit = tonumber(limit), linger = tonumber(linger), req = reqs, pos = #ORDER }
      if #reqs > 0 then
        DEPENDENT = true
      end
    end
  end
  TYPES_TEXT = text
end

-- ---- one call ----

-- ARGV: op, P, epoch, node, now, type table, op arguments (see the top).
local function main(ARGV)
  OP, P, EPOCH, NODE = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
  NOW = tonumber(ARGV[5]) or 0
  K_EPOCH, K_SEQ, K_HANDLES, K_LINGER = P .. ':epoch', P .. ':seq', P .. ':handles', P .. ':linger'
  CHANGES, RELEASED, USED, BILLING = {}, {}, {}, {}

  if OP == 'hello' then
    local t = redis.call('TIME')
    if redis.call('SET', K_EPOCH, EPOCH, 'NX') then
      -- A new data set: ids start above anything an earlier one could have issued
      -- (64 per millisecond of its life, counted from 2024), so no handle a host still
      -- holds is reissued; and below 2^47 until the year 2093.
      local ms = (tonumber(t[1]) - 1704067200) * 1000 + math.floor(tonumber(t[2]) / 1000)
      local base = math.max(ms, 0) * 64
      local seq = tonumber(redis.call('GET', K_SEQ) or '0') or 0
      if seq < base then
        redis.call('SET', K_SEQ, num(base))
      end
    end
    return { redis.call('GET', K_EPOCH), t[1], t[2] }
  end

  if OP == 'holders' then
    local out = {}
    local all = redis.call('ZRANGE', K_HANDLES, 0, -1, 'WITHSCORES')
    for i = 1, #all, 2 do
      local seat = all[i]
      local f = redis.call('HMGET', P .. ':h:' .. seat, 'user', 'ut', 'st', 'ext', 'ses', 'since', 'node')
      if f[1] then
        out[#out + 1] = { seat, all[i + 1], f[1], f[2] or '', f[3] or '', f[4] or '', f[5] or '', f[6] or '0', f[7] or '' }
      end
    end
    return out
  end

  if redis.call('GET', K_EPOCH) ~= EPOCH then
    return { 'epoch', {}, {}, {} }
  end

  -- ---- the caller's license types ----

  if ARGV[6] ~= TYPES_TEXT then
    parse_types(ARGV[6])
  end

  local detail
  if OP == 'acquire' then
    -- user, ut, st, lease (us), since (unix ms), ext, ses
    local a = {
      user = ARGV[7], ut = split(ARGV[8]), st = split(ARGV[9]), lease = tonumber(ARGV[10]) or 0,
      since = ARGV[11], ext = ARGV[12], ses = ARGV[13], node = NODE,
    }
    a.deadline = 0
    if a.lease > 0 then
      a.deadline = NOW + a.lease
    end
    detail = take_handle(a)
    -- A full type first reclaims expired leases and ended linger windows.
    if detail[1] == 'full' and reap_all() > 0 then
      detail = take_handle(a)
    end
  elseif OP == 'retake' then
    -- Handles taken while Redis was unreachable (or lost with its data), keeping their
    -- ids. Per handle: seat, user, ut, st, lease, deadline, since, ext, ses.
    detail = {}
    local i = 7
    while ARGV[i + 8] do
      local a = {
        seat = ARGV[i], user = ARGV[i + 1], ut = split(ARGV[i + 2]), st = split(ARGV[i + 3]),
        lease = tonumber(ARGV[i + 4]) or 0, deadline = tonumber(ARGV[i + 5]) or 0,
        since = ARGV[i + 6], ext = ARGV[i + 7], ses = ARGV[i + 8], node = NODE,
      }
      local outcome
      if deadline_of(a.seat) then
        outcome = { 'present' }
      elseif a.deadline > 0 and a.deadline <= NOW then
        redis.call('SET', P .. ':gone:' .. a.seat, 'expired', 'EX', 86400)
        outcome = { 'expired' }
      else
        outcome = take_handle(a)
        if outcome[1] ~= 'ok' then
          redis.call('SET', P .. ':gone:' .. a.seat, 'reconciled', 'EX', 86400)
          local types = {}
          for _, t in ipairs(a.ut) do
            types[#types + 1] = t
          end
          for _, t in ipairs(a.st) do
            types[#types + 1] = t
          end
          outcome = { 'refused' }
          for _, t in ipairs(types) do
            outcome[#outcome + 1] = t
            outcome[#outcome + 1] = used_of(t)
          end
        end
      end
      detail[#detail + 1] = outcome
      i = i + 9
    end
    detail = { 'ok', detail }
  elseif OP == 'release' then
    -- seat, why
    local seat, why = ARGV[7], ARGV[8]
    local deadline = deadline_of(seat)
    local rec = deadline and load_handle(seat)
    if not rec then
      if deadline then
        redis.call('ZREM', K_HANDLES, seat)
      end
      detail = gone(seat)
    elseif why == 'shutdown' and (rec.node or '') ~= NODE then
      -- A node that shuts down gives back its own seats, never another node's.
      detail = { 'othernode', rec.node or '' }
    elseif expired(deadline) then
      settle(rec, 'expired')
      detail = { 'expired' }
    else
      settle(rec, why)
      detail = { 'ok' }
    end
  elseif OP == 'release_user' then
    -- user, why
    local user, why = ARGV[7], ARGV[8]
    local uk = P .. ':u:' .. user
    local handles, raw = user_handles(user)
    local freed = false
    if not LINGERS[why] then
      local ended = fields_of(raw, 'l:')
      table.sort(ended, by_slot)
      for _, t in ipairs(ended) do
        redis.call('HDEL', uk, 'l:' .. t)
        redis.call('ZREM', K_LINGER, t .. '\n' .. user)
        give_back(t)
        freed = true
      end
    end
    local n = 0
    for _, seat in ipairs(handles) do
      local deadline = deadline_of(seat)
      local rec = deadline and load_handle(seat)
      if rec then
        local w = why
        if expired(deadline) then
          w = 'expired'
        end
        drop_handle(rec, w, LINGERS[w])
        n = n + 1
      else
        redis.call('HDEL', uk, 'h:' .. seat)
      end
    end
    if n > 0 or freed then
      detail = { 'count', n }
    else
      detail = { 'nouser' }
    end
  elseif OP == 'touch' then
    detail = touch_one(ARGV[7])
  elseif OP == 'touch_user' then
    -- user; detail: count, then seat and new deadline of each renewed handle
    local handles = user_handles(ARGV[7])
    detail = { 'count', 0 }
    for _, seat in ipairs(handles) do
      local r = touch_one(seat)
      if r[1] == 'ok' then
        detail[2] = detail[2] + 1
        detail[#detail + 1] = seat
        detail[#detail + 1] = r[2]
      end
    end
  elseif OP == 'reap' then
    local n = reap_all()
    local dropped = redis.call('SPOP', P .. ':dropped:' .. NODE, 1000)
    detail = { 'count', n, dropped }
  elseif OP == 'reset_peaks' then
    for _, t in ipairs(ORDER) do
      redis.call('HSET', P .. ':t:' .. t, 'psr', num(used_of(t)))
    end
    detail = { 'ok' }
  else
    return redis.error_reply('seatgate: unknown op ' .. tostring(OP))
  end

  return { detail[1], CHANGES, RELEASED, detail }
end

-- The caller (src/backend/redis.rs) appends `return main(ARGV)` to run this file
-- with EVALSHA, or registers `main` as a Redis 7 function.
