"""marshmallow schemas for every request body and query string, and for every answer.

Request schemas validate and load: unknown fields are rejected (marshmallow's default
``RAISE``), so a typo in an ops script fails loudly instead of being ignored. Answer
schemas are never used to dump (``representation.py`` builds the JSON, which is cheaper
for 10 000 agents): they describe the answers in the OpenAPI document, and the tests
validate every answer against that document.
"""

from __future__ import annotations

import re
from enum import StrEnum
from fractions import Fraction
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate

from ..core.models import (
    AckStatus,
    AgentState,
    CommandState,
    CommandType,
    DeliveryStatus,
    TargetKind,
)
from ..core.rollout import Amount, Percent, RolloutRequest

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z"
IDENTIFIER_RULE = (
    "Must be 1-128 characters of A-Z a-z 0-9 . _ : - and start with a letter or digit."
)
RESERVED_AGENT_IDS = ("register", "commands", "groups")
MAX_ROUTE_IDS = 10_000
GROUP_OR_ALL_PATTERN = r"^(?:[A-Za-z0-9][A-Za-z0-9._:-]{0,127}|\*)\Z"
GROUP_OR_ALL_RULE = IDENTIFIER_RULE + " Or '*' for every group."
DEFAULT_ENROLLMENT_TTL_SECONDS = 30 * 86400
MAX_ENROLLMENT_TTL_SECONDS = 366 * 86400


def identifier(**kwargs: Any) -> fields.String:
    extra = kwargs.pop("validate", [])
    return fields.String(
        validate=[validate.Regexp(IDENTIFIER_PATTERN, error=IDENTIFIER_RULE), *extra], **kwargs
    )


class EnumList(fields.Field[frozenset[StrEnum]]):
    """A comma-separated, case-insensitive list of enum values: ``live,STALE``."""

    def __init__(self, enum: type[StrEnum], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.enum = enum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            raise ValidationError("Not a valid string.")
        valid = [member.value for member in self.enum]
        chosen = []
        for part in value.split(","):
            name = part.strip().upper()
            if name not in valid:
                raise ValidationError(
                    f"Unknown value '{part.strip()}'; valid values: {', '.join(valid)}."
                )
            chosen.append(self.enum(name))
        return frozenset(chosen)


class JsonBoolean(fields.Boolean):
    """``true`` or ``false`` only: not ``1``, ``"yes"`` or ``"on"`` as marshmallow allows."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean: use true or false.")
        return value


class CaseInsensitiveEnum(fields.Field[StrEnum]):
    def __init__(self, enum: type[StrEnum], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.enum = enum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        valid = [member.value for member in self.enum]
        if not isinstance(value, str) or value.upper() not in valid:
            raise ValidationError(f"Must be one of: {', '.join(valid)}.")
        return self.enum(value.upper())


class RegisterSchema(Schema):
    id = identifier(
        required=True,
        validate=[
            validate.NoneOf(
                RESERVED_AGENT_IDS,
                error="'{input}' is reserved; choose another agent id.",
            )
        ],
    )
    group = identifier(required=True)
    name = fields.String(
        validate=validate.Length(min=1, max=256), allow_none=True, load_default=None
    )
    version = fields.String(validate=validate.Length(max=64), allow_none=True, load_default=None)
    route_ids = fields.List(
        fields.String(validate=validate.Length(max=256)),
        data_key="routeIds",
        validate=validate.Length(max=MAX_ROUTE_IDS),
        load_default=list,
    )
    capabilities = fields.Dict(keys=fields.String(), load_default=dict)


class AgentListQuery(Schema):
    status = EnumList(AgentState, load_default=None)
    group = identifier(load_default=None)
    limit = fields.Integer(
        strict=False, validate=validate.Range(min=1, max=10_000), load_default=None
    )
    after = fields.String(validate=validate.Length(min=1, max=128), load_default=None)


class OperatorEventsQuery(Schema):
    group = identifier(
        load_default=None, metadata={"description": "Only this group's agent events"}
    )


class DeliveryListQuery(Schema):
    status = EnumList(DeliveryStatus, load_default=None)


class DeadOnly(fields.Field[AgentState]):
    """``status`` of a prune: ``DEAD`` (any case), and nothing else, is required."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or value.strip().upper() != AgentState.DEAD.value:
            raise ValidationError(
                "Only DEAD agents can be deleted in bulk: give status=DEAD "
                "(delete others one by one)."
            )
        return AgentState.DEAD


class PruneQuery(Schema):
    status = DeadOnly(
        required=True,
        error_messages={"required": "Required: status=DEAD (only DEAD agents are pruned)."},
        metadata={"description": "Must be DEAD (any case)"},
    )
    dead_for_seconds = fields.Float(
        data_key="deadForSeconds",
        validate=validate.Range(min=0),
        allow_nan=False,
        load_default=0.0,
        metadata={"description": "Only agents DEAD for at least this long (seconds; default 0)"},
    )


class CancelSchema(Schema):
    """A cancel takes no fields; the body may be left out (``{}`` is the same)."""


PERCENT_PATTERN = r"^\d{1,3}(\.\d{1,6})?%$"  # fullmatch: no trailing newline either
_PERCENT = {"type": "string", "pattern": PERCENT_PATTERN, "examples": ["10%"]}


class RolloutAmount(fields.Field[Amount]):
    """A count of targets (a whole number, at least ``minimum``) or a percentage of them
    (``"10%"``, ``"12.5%"``: from ``minimum`` to 100)."""

    def __init__(self, minimum: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        rule = (
            f"Must be a whole number of at least {self.minimum}, or a percentage of the "
            f'targets from {self.minimum}% to 100% ("10%").'
        )
        if isinstance(value, int) and not isinstance(value, bool):
            if value < self.minimum:
                raise ValidationError(rule)
            return value
        if isinstance(value, str) and re.fullmatch(PERCENT_PATTERN, value):
            share = Fraction(value[:-1])
            if self.minimum <= share <= 100:
                return Percent(share)
        raise ValidationError(rule)


class RolloutSchema(Schema):
    batch_size = RolloutAmount(
        1,
        data_key="batchSize",
        required=True,
        metadata={
            "description": "At most this many targets in flight (a count, or a percentage of "
            "the targets rounded up, at least 1)",
            "oneOf": [{"type": "integer", "minimum": 1}, _PERCENT],
        },
    )
    max_failures = RolloutAmount(
        0,
        data_key="maxFailures",
        load_default=None,
        metadata={
            "description": "Stop when more deliveries than this have FAILED or EXPIRED (a "
            "count, or a percentage of the targets rounded down); default: no limit",
            "oneOf": [{"type": "integer", "minimum": 0}, _PERCENT, {"type": "null"}],
        },
    )
    batch_interval_seconds = fields.Float(
        data_key="batchIntervalSeconds",
        validate=validate.Range(min=0),
        allow_nan=False,
        load_default=0.0,
        metadata={"description": "Seconds a freed slot waits before the next target is sent"},
    )

    @post_load
    def request(self, data: dict[str, Any], **kwargs: Any) -> RolloutRequest:
        return RolloutRequest(
            data["batch_size"], data["max_failures"], data["batch_interval_seconds"]
        )


class SendCommandSchema(Schema):
    type = fields.String(
        required=True,
        validate=validate.OneOf(
            [member.value for member in CommandType],
            error="Unknown command type '{input}'; valid types: {choices}.",
        ),
    )
    payload = fields.Dict(keys=fields.String(), load_default=dict)
    deliver_on_connect = JsonBoolean(
        data_key="deliverOnConnect",
        load_default=False,
        metadata={
            "description": "Also write it to a target whose stream opens later, "
            "while its delivery is PENDING and unexpired"
        },
    )
    rollout = fields.Nested(
        RolloutSchema,
        load_default=None,
        metadata={
            "description": "Group and all commands only: send to the targets (in id order) "
            "a sliding window at a time"
        },
    )


class AckSchema(Schema):
    status = CaseInsensitiveEnum(AckStatus, load_default=AckStatus.SUCCESS)
    message = fields.String(validate=validate.Length(max=4096), allow_none=True, load_default=None)
    details = fields.Dict(keys=fields.String(), load_default=dict)


# --- answers (documentation and response validation only) ------------------------------


def _stamp(**kwargs: Any) -> fields.DateTime:
    """An ISO 8601 UTC timestamp with milliseconds: ``2026-03-11T10:15:30.123Z``."""
    return fields.DateTime(required=True, **kwargs)


def _enum(enum: type[StrEnum]) -> fields.String:
    return fields.String(required=True, validate=validate.OneOf([member.value for member in enum]))


class AgentSchema(Schema):
    id = identifier(required=True)
    name = fields.String(required=True)
    group = identifier(required=True)
    version = fields.String(required=True, allow_none=True)
    route_ids = fields.List(fields.String(), required=True, data_key="routeIds")
    capabilities = fields.Dict(keys=fields.String(), required=True)
    state = _enum(AgentState)
    registered_at = _stamp(data_key="registeredAt")
    last_heartbeat_at = _stamp(data_key="lastHeartbeatAt")
    state_changed_at = _stamp(data_key="stateChangedAt")
    connected = fields.Boolean(required=True)


class TimingSchema(Schema):
    heartbeat_interval_seconds = fields.Float(required=True, data_key="heartbeatIntervalSeconds")
    stale_after_seconds = fields.Float(required=True, data_key="staleAfterSeconds")
    dead_after_seconds = fields.Float(required=True, data_key="deadAfterSeconds")
    command_expiry_seconds = fields.Float(required=True, data_key="commandExpirySeconds")
    keepalive_seconds = fields.Float(required=True, data_key="keepaliveSeconds")


class PublicKeySchema(Schema):
    key_id = fields.String(required=True, data_key="keyId")
    algorithm = fields.String(required=True, validate=validate.Equal("Ed25519"))
    public_key = fields.String(
        required=True,
        data_key="publicKey",
        metadata={"description": "base64 DER SubjectPublicKeyInfo (Java: X509EncodedKeySpec)"},
    )


class RegistrationSchema(Schema):
    agent_id = identifier(required=True, data_key="agentId")
    sse_endpoint = fields.Url(required=True, data_key="sseEndpoint")
    config = fields.Nested(TimingSchema, required=True)
    server_public_key = fields.Nested(
        PublicKeySchema, required=True, allow_none=True, data_key="serverPublicKey"
    )
    server_public_keys = fields.List(
        fields.Nested(PublicKeySchema),
        required=True,
        allow_none=True,
        data_key="serverPublicKeys",
        metadata={"description": "Every published key, the signing key first"},
    )
    access_token = fields.String(
        data_key="accessToken", metadata={"description": "The agent's token (auth on only)"}
    )
    access_token_expires_at = fields.DateTime(data_key="accessTokenExpiresAt")


class ResultSchema(Schema):
    status = _enum(AckStatus)
    message = fields.String(required=True, allow_none=True)
    details = fields.Dict(keys=fields.String(), required=True)


class DeliverySchema(Schema):
    agent_id = identifier(required=True, data_key="agentId")
    status = _enum(DeliveryStatus)
    sent_at = _stamp(
        allow_none=True,
        data_key="sentAt",
        metadata={"description": "null: a rollout's target not sent yet"},
    )
    delivered_at = _stamp(allow_none=True, data_key="deliveredAt")
    acknowledged_at = _stamp(allow_none=True, data_key="acknowledgedAt")
    result = fields.Nested(ResultSchema, required=True, allow_none=True)


class AgentDeliverySchema(DeliverySchema):
    command_id = fields.String(required=True, data_key="commandId")
    type = _enum(CommandType)
    created_at = _stamp(data_key="createdAt")
    expires_at = _stamp(
        allow_none=True,
        data_key="expiresAt",
        metadata={"description": "This delivery's own deadline; null until it is sent"},
    )


class TargetSchema(Schema):
    kind = _enum(TargetKind)
    value = fields.String(required=True, allow_none=True)


class SummarySchema(Schema):
    targets = fields.Integer(required=True)
    pending = fields.Integer(required=True)
    delivered = fields.Integer(required=True)
    acknowledged = fields.Integer(required=True)
    failed = fields.Integer(required=True)
    expired = fields.Integer(required=True)
    cancelled = fields.Integer(required=True)


class RolloutProgressSchema(Schema):
    batch_size = fields.Integer(required=True, data_key="batchSize")
    max_failures = fields.Integer(required=True, allow_none=True, data_key="maxFailures")
    batch_interval_seconds = fields.Float(required=True, data_key="batchIntervalSeconds")
    sent = fields.Integer(required=True, metadata={"description": "Targets sent so far"})
    in_flight = fields.Integer(
        required=True, data_key="inFlight", metadata={"description": "Sent and not final"}
    )
    failures = fields.Integer(required=True, metadata={"description": "FAILED + EXPIRED"})


class CommandSchema(Schema):
    command_id = fields.String(required=True, data_key="commandId")
    type = _enum(CommandType)
    payload = fields.Dict(keys=fields.String(), required=True)
    target = fields.Nested(TargetSchema, required=True)
    created_at = _stamp(data_key="createdAt")
    expires_at = _stamp(
        allow_none=True,
        data_key="expiresAt",
        metadata={"description": "null while a rollout still has targets to send"},
    )
    created_by = fields.String(required=True, allow_none=True, data_key="createdBy")
    deliver_on_connect = fields.Boolean(required=True, data_key="deliverOnConnect")
    state = _enum(CommandState)
    rollout = fields.Nested(
        RolloutProgressSchema,
        required=True,
        allow_none=True,
        metadata={"description": "The rollout as resolved for the targets, and its progress"},
    )
    summary = fields.Nested(SummarySchema, required=True)
    deliveries = fields.List(fields.Nested(DeliverySchema), required=True)


# --- operations: probes and the server's description ------------------------------------


def _one_of(*values: str) -> fields.String:
    return fields.String(required=True, validate=validate.OneOf(values))


class HealthSchema(Schema):
    status = _one_of("ok")


class ReadinessChecksSchema(Schema):
    store = _one_of("ok", "unavailable")
    bus = _one_of("ok", "unsubscribed")
    shutdown = _one_of("ok", "draining")


class ReadinessSchema(Schema):
    status = _one_of("ready", "unready")
    checks = fields.Nested(ReadinessChecksSchema, required=True)


def _count(name: str) -> fields.Integer:
    return fields.Integer(required=True, data_key=name, validate=validate.Range(min=0))


class FleetSchema(Schema):
    live = _count(AgentState.LIVE.value)
    stale = _count(AgentState.STALE.value)
    dead = _count(AgentState.DEAD.value)
    connected = _count("connected")


class SigningSchema(Schema):
    key_id = fields.String(required=True, data_key="keyId")


class ServerSchema(Schema):
    version = fields.String(required=True)
    store = _one_of("memory", "redis")
    auth = _one_of("on", "off")
    signing = fields.Nested(SigningSchema, required=True, allow_none=True)
    config = fields.Nested(TimingSchema, required=True)
    fleet = fields.Nested(FleetSchema, required=True)


class EnrollmentTokenRequestSchema(Schema):
    groups = fields.List(
        fields.String(validate=validate.Regexp(GROUP_OR_ALL_PATTERN, error=GROUP_OR_ALL_RULE)),
        validate=validate.Length(min=1, max=1000),
        load_default=lambda: ["*"],
        metadata={"description": "Groups the holder may register into; ['*'] for every group"},
    )
    ttl_seconds = fields.Float(
        data_key="ttlSeconds",
        validate=validate.Range(min=1, max=MAX_ENROLLMENT_TTL_SECONDS),
        load_default=DEFAULT_ENROLLMENT_TTL_SECONDS,
        allow_nan=False,
    )


class IssuedTokenSchema(Schema):
    token = fields.String(required=True)
    expires_at = _stamp(data_key="expiresAt")


class PruneResultSchema(Schema):
    deleted = fields.Integer(required=True, validate=validate.Range(min=0))


class ErrorSchema(Schema):
    status = fields.Integer(required=True)
    error = fields.String(required=True)
    code = fields.String(required=True)
    message = fields.String(required=True)
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
