"""Commands and their deliveries in Redis.

Keys (``ar:`` prefix): ``cmd:{id}`` hash (the command and ``open``, its count of deliveries
not yet final); ``cmd:{id}:d`` hash agent id -> delivery JSON; ``agent-cmds:{agent}``
sorted set of command ids by creation time; ``cmd-expiries`` and ``cmd-purges`` sorted
sets scored by deadline, so the sweeps read only what is due. A rollout's progress has
keys of its own (``rollout_scripts.py``).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import redis
from redis.typing import EncodableT

from ..core.acknowledgement import AckOutcome, AckVerdict
from ..core.models import (
    AckResult,
    AckStatus,
    Command,
    CommandSnapshot,
    CommandState,
    CommandType,
    Delivery,
    DeliveryStatus,
    RolloutStep,
    Target,
    TargetKind,
)
from ..core.rollout import RolloutPlan
from .client import ReportsOutages, compact_json, guard_public_methods, num, text_hash, texts
from .group_commit import GroupCommit, group_commit_if, held_connection_if, send_one
from .rollout_scripts import (
    ACKNOWLEDGE,
    CANCEL,
    CLAIM,
    DELIVERY_JSON,
    EXPIRY_DONE,
    REPLACE_DELIVERIES,
)

P = "ar:"
EXPIRIES = P + "cmd-expiries"
PURGES = P + "cmd-purges"
ROLLOUTS_DUE = P + "rollouts-due"

# KEYS: deliveries hash. ARGV: delivered-at (its exact text), then agent ids. PENDING ->
# DELIVERED in bulk, read and written as text (cjson cost a decode and an encode per
# delivery). A PENDING delivery has no result, so its first "status" is its own.
_MARK_DELIVERED = (
    DELIVERY_JSON
    + """
local marked = 0
for i = 2, #ARGV do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if current and string.match(current, '"status":"(%u+)"') == 'PENDING' then
    redis.call('HSET', KEYS[1], ARGV[i],
               delivery_json('DELIVERED', ARGV[1], 'null', 'null', sent_of(current)))
    marked = marked + 1
  end
end
return marked
"""
)
_MARK_BATCH = 1000

# KEYS: each target's agent-cmds sorted set. ARGV: command id, its index score. One call
# indexes a command under all its targets (redis-py's work per ZADD was a fan-out's largest
# cost).
_INDEX_FOR_AGENTS = """
for i = 1, #KEYS do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1]) end
"""
# Index scores below this were written in seconds, by versions before index_score: read
# apart, so that an upgrade loses none of the commands indexed before it.
_SECONDS_SCORES_BELOW = 10**11


def index_score(created_at: float) -> int:
    """A command's score in an agent's index: its creation time in whole microseconds.

    An agent's index is small, so Redis keeps it as a listpack and, to insert, compares the
    new score with each one it holds; a score with a fraction is stored as text and parsed
    at each comparison, an integer is not. Adding 60 commands to 2 000 agents one after
    the other (so 0 to 59 commands per agent), a ZADD cost redis-server 4.0-4.2 µs with
    scores in seconds and 1.5 µs in microseconds (scratch, one process).
    """
    return round(created_at * 1_000_000)


def command_key(command_id: str) -> str:
    return f"{P}cmd:{command_id}"


def deliveries_key(command_id: str) -> str:
    return f"{P}cmd:{command_id}:d"


def agent_commands_key(agent_id: str) -> str:
    return f"{P}agent-cmds:{agent_id}"


def in_flight_key(command_id: str) -> str:
    return f"{P}cmd:{command_id}:f"


def unsent_key(command_id: str) -> str:
    return f"{P}cmd:{command_id}:u"


def cooling_key(command_id: str) -> str:
    return f"{P}cmd:{command_id}:w"


def _result_fields(result: AckResult | None) -> dict[str, object] | None:
    if result is None:
        return None
    return {"status": result.status.value, "message": result.message, "details": result.details}


def _encode_delivery(delivery: Delivery) -> str:
    data = {
        "status": delivery.status.value,
        "deliveredAt": delivery.delivered_at,
        "acknowledgedAt": delivery.acknowledged_at,
        "result": _result_fields(delivery.result),
    }
    if delivery.sent_at is not None:  # a rollout's, once sent: text, read back exactly
        data["sentAt"] = num(delivery.sent_at)
    return compact_json(data)


def _encode_deliveries(deliveries: Sequence[Delivery]) -> dict[EncodableT, EncodableT]:
    """Agent id -> JSON. A new command's deliveries are alike but for the agent id (which is
    not in the JSON), so each distinct one is encoded once."""
    encoded: dict[tuple[object, ...], str] = {}
    by_agent: dict[EncodableT, EncodableT] = {}
    for d in deliveries:
        if d.result is not None:  # its details are a dict: no key; never so in a new command
            by_agent[d.agent_id] = _encode_delivery(d)
            continue
        alike = (d.status, d.delivered_at, d.acknowledged_at, d.sent_at)
        text = encoded.get(alike)
        if text is None:
            text = encoded[alike] = _encode_delivery(d)
        by_agent[d.agent_id] = text
    return by_agent


def _decode_delivery(agent_id: str, text: str) -> Delivery:
    data = json.loads(text)
    result = data["result"]
    sent_at = data.get("sentAt")
    return Delivery(
        agent_id=agent_id,
        status=DeliveryStatus(data["status"]),
        delivered_at=data["deliveredAt"],
        acknowledged_at=data["acknowledgedAt"],
        result=None
        if result is None
        else AckResult(AckStatus(result["status"]), result["message"], result["details"]),
        sent_at=None if sent_at is None else float(sent_at),
    )


def _encode_command(command: Command, open_count: int) -> dict[EncodableT, EncodableT]:
    fields: dict[EncodableT, EncodableT] = {
        "id": command.id,
        "type": command.type.value,
        "payload": compact_json(command.payload),
        "targetKind": command.target.kind.value,
        "targetValue": command.target.value or "",
        "createdAt": num(command.created_at),
        "expiresAt": "" if command.expires_at is None else num(command.expires_at),
        "createdBy": command.created_by or "",
        "deliverOnConnect": int(command.deliver_on_connect),
        "open": open_count,
    }
    if command.halted is not None:
        fields["halted"] = command.halted.value
    plan = command.rollout
    if plan is not None:
        fields["window"] = plan.window
        fields["maxFailures"] = -1 if plan.max_failures is None else plan.max_failures
        fields["interval"] = num(plan.interval)
        fields["expiry"] = num(plan.expiry)
    return fields


def _decode_command(fields: dict[str, str]) -> Command | None:
    if not fields:
        return None
    rollout = None
    if "window" in fields:
        limit = int(fields["maxFailures"])
        rollout = RolloutPlan(
            window=int(fields["window"]),
            max_failures=None if limit < 0 else limit,
            interval=float(fields["interval"]),
            expiry=float(fields["expiry"]),
        )
    halted = fields.get("halted")
    return Command(
        id=fields["id"],
        type=CommandType(fields["type"]),
        payload=json.loads(fields["payload"]),
        target=Target(TargetKind(fields["targetKind"]), fields["targetValue"] or None),
        created_at=float(fields["createdAt"]),
        expires_at=float(fields["expiresAt"]) if fields["expiresAt"] else None,
        created_by=fields.get("createdBy") or None,
        deliver_on_connect=fields.get("deliverOnConnect") == "1",
        rollout=rollout,
        halted=CommandState(halted) if halted else None,
    )


@dataclass(frozen=True, slots=True)
class _Ack:
    """One ack: what the script takes (its command's 3 keys, and a row of the batch), and
    what its outcome is built from."""

    command_id: str
    agent_id: str
    result: AckResult
    now: float
    retain_until: float

    def script_keys(self) -> list[str]:
        cid = self.command_id
        return [command_key(cid), deliveries_key(cid), in_flight_key(cid)]

    def recorded(self, delivered_at: str, sent_at: str) -> Delivery:
        """The delivery as this ack recorded it (``acknowledged()`` of the one it found),
        from the JSON values of the times it kept, which is what the script answers."""
        return Delivery(
            agent_id=self.agent_id,
            status=self.result.status.delivery_status,
            delivered_at=None if delivered_at == "null" else float(delivered_at),
            acknowledged_at=self.now,
            result=self.result,
            sent_at=None if sent_at == "null" else float(sent_at.strip('"')),
        )

    def script_row(self, place: int) -> list[object]:
        # ``num(now)`` is also its JSON text (a float's repr), stored as acknowledgedAt.
        return [
            place,
            self.command_id,
            self.agent_id,
            self.result.status.delivery_status.value,
            num(self.now),
            compact_json(_result_fields(self.result)),
            num(self.retain_until),
        ]


@guard_public_methods
class RedisCommandStore(ReportsOutages):
    def __init__(self, client: redis.Redis, group_commit: bool = False) -> None:
        """``group_commit``: concurrent acks share one call of the ack script
        (``group_commit.py``); for a gevent worker, where every request is a greenlet.
        A fan-out's acks arrive together."""
        self._redis = client
        self._acknowledge = client.register_script(ACKNOWLEDGE)
        self._replace = client.register_script(REPLACE_DELIVERIES)
        self._index_for_agents = client.register_script(_INDEX_FOR_AGENTS)
        self.ack_batches: GroupCommit[_Ack, AckOutcome | None] | None = group_commit_if(
            group_commit, self._acknowledge_all
        )
        self._ack_connection = held_connection_if(group_commit, client)
        self._mark_delivered = client.register_script(_MARK_DELIVERED)
        self._cancel = client.register_script(CANCEL)
        self._claim = client.register_script(CLAIM)
        self._expiry_done = client.register_script(EXPIRY_DONE)

    def add(self, command: Command, deliveries: Sequence[Delivery]) -> None:
        pipe = self._redis.pipeline(transaction=True)
        open_count = sum(1 for delivery in deliveries if not delivery.status.is_final)
        pipe.hset(command_key(command.id), mapping=_encode_command(command, open_count))
        pipe.hset(deliveries_key(command.id), mapping=_encode_deliveries(deliveries))
        self._index_for_agents(
            keys=[agent_commands_key(delivery.agent_id) for delivery in deliveries],
            args=[command.id, index_score(command.created_at)],
            client=pipe,
        )
        if command.expires_at is not None:
            pipe.zadd(EXPIRIES, {command.id: command.expires_at})
        if command.rollout is not None:
            unsent = [d.agent_id for d in deliveries if d.sent_at is None]
            for start in range(0, len(unsent), _MARK_BATCH):
                pipe.rpush(unsent_key(command.id), *unsent[start : start + _MARK_BATCH])
            pipe.zadd(ROLLOUTS_DUE, {command.id: 0})  # started by whichever process claims
        pipe.execute()

    def get(self, command_id: str) -> CommandSnapshot | None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(command_key(command_id))
        pipe.hgetall(deliveries_key(command_id))
        fields, deliveries = pipe.execute()
        command = _decode_command(fields)
        if command is None:
            return None
        return CommandSnapshot(
            command,
            [_decode_delivery(agent_id, deliveries[agent_id]) for agent_id in sorted(deliveries)],
        )

    def get_command(self, command_id: str) -> Command | None:
        return _decode_command(text_hash(self._redis.hgetall(command_key(command_id))))

    def get_delivery(self, command_id: str, agent_id: str) -> tuple[Command, Delivery] | None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(command_key(command_id))
        pipe.hget(deliveries_key(command_id), agent_id)
        fields, text = pipe.execute()
        command = _decode_command(fields)
        if command is None or text is None:
            return None
        return command, _decode_delivery(agent_id, text)

    def acknowledge(
        self, command_id: str, agent_id: str, result: AckResult, now: float, retain_until: float
    ) -> AckOutcome | None:
        ack = _Ack(command_id, agent_id, result, now, retain_until)
        return send_one(self.ack_batches, self._acknowledge_all, ack)

    def _acknowledge_all(self, acks: builtins.list[_Ack]) -> builtins.list[AckOutcome | None]:
        """All of them in one call of the script, which reads each command once."""
        places: dict[str, int] = {}
        keys: builtins.list[str] = []
        rows = []
        for ack in acks:
            place = places.get(ack.command_id)
            if place is None:
                place = places[ack.command_id] = len(places) + 1
                keys += ack.script_keys()
            rows.append(ack.script_row(place))
        answers, flat_commands = self._acknowledge(
            keys, [compact_json(rows)], self._ack_connection()
        )
        commands = [
            _decode_command(dict(zip(flat[::2], flat[1::2], strict=True))) for flat in flat_commands
        ]
        outcomes: builtins.list[AckOutcome | None] = []
        for i, ack in enumerate(acks):
            verdict, text, place = answers[3 * i : 3 * i + 3]
            command = commands[place - 1] if place else None
            if command is None:
                outcomes.append(None)
                continue
            if verdict == AckVerdict.RECORDED:
                delivery = ack.recorded(*text.split(" "))
            else:
                delivery = _decode_delivery(ack.agent_id, text)
            outcomes.append(AckOutcome(AckVerdict(verdict), command, delivery))
        return outcomes

    def mark_delivered(self, command_id: str, agent_ids: Sequence[str], at: float) -> int:
        marked = 0
        for start in range(0, len(agent_ids), _MARK_BATCH):
            marked += self._mark_delivered(
                keys=[deliveries_key(command_id)],
                args=[num(at), *agent_ids[start : start + _MARK_BATCH]],
            )
        return marked

    def replace_delivery(
        self,
        command_id: str,
        expected: DeliveryStatus,
        delivery: Delivery,
        retain_until: float,
    ) -> bool:
        becomes_final = delivery.status.is_final and not expected.is_final
        keys = [command_key(command_id), deliveries_key(command_id), in_flight_key(command_id)]
        args: list[EncodableT] = [
            command_id,
            delivery.agent_id,
            expected.value,
            _encode_delivery(delivery),
            "1" if becomes_final else "0",
            num(retain_until),
            delivery.status.value,
        ]
        return bool(self._replace(keys=keys, args=args)[0])

    def cancel_deliveries(
        self,
        command_id: str,
        agent_ids: Sequence[str],
        retain_until: float,
        halt: bool = False,
    ) -> list[Delivery]:
        cancelled: list[Delivery] = []
        keys = [
            command_key(command_id),
            deliveries_key(command_id),
            in_flight_key(command_id),
            unsent_key(command_id),
        ]
        for start in range(0, len(agent_ids), _MARK_BATCH):
            changed = self._cancel(
                keys=keys,
                args=[
                    command_id,
                    num(retain_until),
                    "1" if halt else "0",
                    *agent_ids[start : start + _MARK_BATCH],
                ],
            )
            cancelled.extend(_changed(changed))
        return cancelled

    def claim(self, command_id: str, now: float, retain_until: float) -> RolloutStep:
        answer = self._claim(
            keys=[
                command_key(command_id),
                deliveries_key(command_id),
                in_flight_key(command_id),
                unsent_key(command_id),
                cooling_key(command_id),
            ],
            args=[command_id, num(now), num(retain_until)],
        )
        kind, rest = answer[0], answer[1:]
        if kind == "gone":
            return RolloutStep(None)
        command = self.get_command(command_id)
        if kind == "stopped":
            return RolloutStep(command, cancelled=_changed(rest))
        return RolloutStep(command, list(rest), now if rest else None)

    def due_rollouts(self, now: float, limit: int) -> list[str]:
        return texts(self._redis.zrangebyscore(ROLLOUTS_DUE, "-inf", num(now), 0, limit))

    def for_agent(
        self,
        agent_id: str,
        statuses: Collection[DeliveryStatus] | None = None,
        since: float | None = None,
    ) -> list[tuple[Command, Delivery]]:
        command_ids = self._indexed(agent_commands_key(agent_id), since)
        pipe = self._redis.pipeline(transaction=False)
        for command_id in command_ids:
            pipe.hgetall(command_key(command_id))
            pipe.hget(deliveries_key(command_id), agent_id)
        replies = pipe.execute()
        found = []
        for fields, text in zip(replies[::2], replies[1::2], strict=True):
            command = _decode_command(fields)
            if command is None or text is None:
                continue
            if since is not None and command.created_at < since:
                continue  # within the index score's rounding of ``since``
            delivery = _decode_delivery(agent_id, text)
            if not statuses or delivery.status in statuses:
                found.append((command, delivery))
        return found

    def _indexed(self, key: str, since: float | None) -> builtins.list[str]:
        """Command ids in an agent's index, newest first (``since``: created about then or
        later; ``for_agent`` drops those created before it).

        Until every worker runs a version with ``index_score``, older ones still write
        scores in seconds: both kinds are read, and ordered together by time."""
        pipe = self._redis.pipeline(transaction=False)
        if since is None:
            pipe.zrevrange(key, 0, -1, withscores=True)
        else:
            oldest = max(index_score(since), _SECONDS_SCORES_BELOW)
            pipe.zrevrangebyscore(key, "+inf", oldest, withscores=True)
            pipe.zrevrangebyscore(key, f"({_SECONDS_SCORES_BELOW}", num(since), withscores=True)
        entries = [entry for reply in pipe.execute() for entry in reply]
        entries.sort(key=_by_time, reverse=True)
        return [member for member, _ in entries]

    def due_expiries(self, now: float, limit: int) -> list[Command]:
        command_ids = texts(
            self._redis.zrangebyscore(EXPIRIES, "-inf", num(now), start=0, num=limit)
        )
        return self._commands(command_ids)

    def pending_to(
        self, command_id: str, agent_ids: Sequence[str]
    ) -> tuple[Command, builtins.list[str]] | None:
        """The command, and those of ``agent_ids`` whose delivery of it is still PENDING
        (in their order), reading no other delivery; None: no such command."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(command_key(command_id))
        pipe.hmget(deliveries_key(command_id), agent_ids)
        fields, found = pipe.execute()
        command = _decode_command(fields)
        if command is None:
            return None
        pending = [
            agent_id
            for agent_id, text in zip(agent_ids, found, strict=True)
            if text is not None and json.loads(text)["status"] == DeliveryStatus.PENDING
        ]
        return command, pending

    def unexpired_ids(self, now: float, limit: int) -> list[str]:
        """Ids of the commands still inside their expiry window, oldest first (catch-up
        after a bus reconnect reads each one, so that one it cannot read skips only that)."""
        return texts(self._redis.zrangebyscore(EXPIRIES, f"({num(now)}", "+inf", 0, limit))

    def _commands(self, command_ids: Sequence[str]) -> list[Command]:
        pipe = self._redis.pipeline(transaction=False)
        for command_id in command_ids:
            pipe.hgetall(command_key(command_id))
        decoded = (_decode_command(fields) for fields in pipe.execute())
        return [command for command in decoded if command is not None]

    def expiry_done(self, command_id: str) -> None:
        self._expiry_done(keys=[in_flight_key(command_id)], args=[command_id])

    def due_purges(self, now: float, limit: int) -> list[str]:
        return texts(self._redis.zrangebyscore(PURGES, "-inf", num(now), start=0, num=limit))

    def purge(self, command_id: str) -> None:
        agent_ids = texts(self._redis.hkeys(deliveries_key(command_id)))
        pipe = self._redis.pipeline(transaction=True)
        for agent_id in agent_ids:
            pipe.zrem(agent_commands_key(agent_id), command_id)
        pipe.delete(
            command_key(command_id),
            deliveries_key(command_id),
            in_flight_key(command_id),
            unsent_key(command_id),
            cooling_key(command_id),
        )
        pipe.zrem(EXPIRIES, command_id)
        pipe.zrem(PURGES, command_id)
        pipe.zrem(ROLLOUTS_DUE, command_id)
        pipe.execute()


def _by_time(entry: tuple[str, float]) -> tuple[float, str]:
    """An index entry's place in time: its score in microseconds (one written in seconds,
    by a version before ``index_score``, scaled), ties broken by id as Redis breaks them."""
    member, score = entry
    return (score if score >= _SECONDS_SCORES_BELOW else score * 1_000_000, member)


def _changed(reply: Sequence[str]) -> list[Delivery]:
    """A script's ``agent id, delivery JSON, ...`` as deliveries."""
    return [
        _decode_delivery(agent_id, text)
        for agent_id, text in zip(reply[::2], reply[1::2], strict=True)
    ]
