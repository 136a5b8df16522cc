"""The Lua scripts of the Redis room store (``signaling/redis_rooms.py``): one per change, so
each change is atomic across nodes: a join checks the capacity and
adds the participant in the same step, a claim sets the owner only if there is none, a sweep
hands each expired room to exactly one node. The keys (under ``prefix``):

- ``rooms``: a set of room ids (its size is checked against ``max_rooms``);
- ``empty``: a sorted set, room id -> when it became empty (what ``sweep`` reads);
- ``room:{id}``: a hash with ``capacity``, ``created_at``, ``empty_since`` ('' while anyone is
  in), ``owner``, ``seq`` (the join counter that orders participants), and for hosted rooms
  ``title``, ``host_key`` (its hash), ``locked`` and ``ended`` ('1' when set);
- ``room:{id}:order``: a sorted set, participant id -> join sequence;
- ``room:{id}:people``: a hash, participant id -> the participant as JSON;
- ``room:{id}:seats``: a set of the seats (rejoin key hashes) of everyone admitted and not
  removed, whom a lock does not keep out.

The scripts touch keys of several rooms' sets, so this is for a single Redis (or a primary with
replicas), not Redis Cluster.
"""

#: The room hash's fields a snapshot reads, in order.
HEAD_FIELDS = (
    "capacity",
    "created_at",
    "empty_since",
    "owner",
    "title",
    "locked",
    "ended",
    "host_key",
)

# Returns the room as a flat list: the HEAD_FIELDS ('' for unset), then the participants'
# JSON in join order; an empty list for an unknown room.
_SNAPSHOT = """
local function snapshot(room, order, people)
  local head = redis.call('HMGET', room, 'capacity', 'created_at', 'empty_since', 'owner',
                          'title', 'locked', 'ended', 'host_key')
  if not head[1] then return {} end
  local out = {}
  for i = 1, 8 do out[i] = head[i] or '' end
  local ids = redis.call('ZRANGE', order, 0, -1)
  if #ids > 0 then
    local records = redis.call('HMGET', people, unpack(ids))
    for i = 1, #records do out[#out + 1] = records[i] end
  end
  return out
end
"""

# KEYS: rooms, empty, room, order, people. ARGV: id, capacity, max_rooms, now, title,
# host key hash ('' for none). Creates the room unless it exists; 'exhausted' at the limit.
_CREATE = """
local function create(keys, id, capacity, max_rooms, now, title, host_key)
  if redis.call('EXISTS', keys[3]) == 1 then return 'exists' end
  if redis.call('SCARD', keys[1]) >= tonumber(max_rooms) then return 'exhausted' end
  redis.call('HSET', keys[3], 'capacity', capacity, 'created_at', now, 'empty_since', now,
             'seq', 0)
  if title ~= '' then redis.call('HSET', keys[3], 'title', title) end
  if host_key ~= '' then redis.call('HSET', keys[3], 'host_key', host_key) end
  redis.call('SADD', keys[1], id)
  redis.call('ZADD', keys[2], now, id)
  return 'created'
end
"""

CREATE_SCRIPT = (
    _SNAPSHOT
    + _CREATE
    + """
local made = create(KEYS, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
if made == 'exhausted' then return {'exhausted'} end
return {made, snapshot(KEYS[3], KEYS[4], KEYS[5])}
"""
)

# KEYS: rooms, empty, room, order, people, seats. ARGV: id, default capacity, max_rooms, now,
# participant id, participant JSON, host ('1'), seat ('' for none).
JOIN_SCRIPT = (
    _SNAPSHOT
    + _CREATE
    + """
if create(KEYS, ARGV[1], ARGV[2], ARGV[3], ARGV[4], '', '') == 'exhausted' then
  return {'exhausted'}
end
if redis.call('HGET', KEYS[3], 'ended') == '1' then return {'ended'} end
if redis.call('HGET', KEYS[3], 'locked') == '1' and ARGV[7] ~= '1'
   and (ARGV[8] == '' or redis.call('SISMEMBER', KEYS[6], ARGV[8]) == 0) then
  return {'locked'}
end
local capacity = tonumber(redis.call('HGET', KEYS[3], 'capacity'))
if redis.call('ZCARD', KEYS[4]) >= capacity then return {'full', tostring(capacity)} end
local seq = redis.call('HINCRBY', KEYS[3], 'seq', 1)
redis.call('ZADD', KEYS[4], seq, ARGV[5])
redis.call('HSET', KEYS[5], ARGV[5], ARGV[6])
if ARGV[8] ~= '' then redis.call('SADD', KEYS[6], ARGV[8]) end
redis.call('HSET', KEYS[3], 'empty_since', '')
redis.call('ZREM', KEYS[2], ARGV[1])
return {'ok', snapshot(KEYS[3], KEYS[4], KEYS[5])}
"""
)

# KEYS: empty, room, order, people, seats. ARGV: id, participant id, now, revoke ('1').
LEAVE_SCRIPT = """
local record = redis.call('HGET', KEYS[4], ARGV[2])
if not record then return false end
if ARGV[4] == '1' then
  local seat = cjson.decode(record)['seat']
  if type(seat) == 'string' then redis.call('SREM', KEYS[5], seat) end
end
redis.call('HDEL', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if redis.call('ZCARD', KEYS[3]) == 0 then
  redis.call('HSET', KEYS[2], 'empty_since', ARGV[3])
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return record
"""

# KEYS: people. ARGV: participant id, JSON object of the fields to change.
CHANGE_SCRIPT = """
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return false end
local participant = cjson.decode(record)
for key, value in pairs(cjson.decode(ARGV[2])) do participant[key] = value end
record = cjson.encode(participant)
redis.call('HSET', KEYS[1], ARGV[1], record)
return record
"""

# KEYS: room, order, people. ARGV: locked ('1' or '0').
LOCK_SCRIPT = (
    _SNAPSHOT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
redis.call('HSET', KEYS[1], 'locked', ARGV[1])
return snapshot(KEYS[1], KEYS[2], KEYS[3])
"""
)

# KEYS: empty, room, order, people, seats. ARGV: id, now. Returns the room as it was before.
END_SCRIPT = (
    _SNAPSHOT
    + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {} end
local before = snapshot(KEYS[2], KEYS[3], KEYS[4])
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
redis.call('HSET', KEYS[2], 'ended', '1')
if (redis.call('HGET', KEYS[2], 'empty_since') or '') == '' then
  redis.call('HSET', KEYS[2], 'empty_since', ARGV[2])
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
end
return before
"""
)

# KEYS: room. ARGV: node.
CLAIM_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSETNX', KEYS[1], 'owner', ARGV[1])
return redis.call('HGET', KEYS[1], 'owner')
"""

# KEYS: empty, room, order, people. ARGV: id, expected owner ('' for none), node, now.
REASSIGN_SCRIPT = """
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
local owner = redis.call('HGET', KEYS[2], 'owner') or ''
if owner ~= ARGV[2] then return owner end
redis.call('HSET', KEYS[2], 'owner', ARGV[3])
if owner ~= '' and redis.call('ZCARD', KEYS[3]) > 0 then
  redis.call('DEL', KEYS[3], KEYS[4])
  redis.call('HSET', KEYS[2], 'empty_since', ARGV[4])
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
end
return ARGV[3]
"""

# KEYS: rooms, empty. ARGV: cutoff, prefix.
SWEEP_SCRIPT = """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, id in ipairs(expired) do
  local room = ARGV[2] .. 'room:' .. id
  redis.call('DEL', room, room .. ':order', room .. ':people', room .. ':seats')
  redis.call('SREM', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
return expired
"""
