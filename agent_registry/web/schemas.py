"""marshmallow schemas for every request body and query string.

Unknown fields are rejected (marshmallow's default ``RAISE``), so a typo in an ops script
fails loudly instead of being ignored.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ..core.models import AckStatus, AgentState, CommandType, DeliveryStatus

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z"
IDENTIFIER_RULE = (
    "Must be 1-128 characters of A-Z a-z 0-9 . _ : - and start with a letter or digit."
)
RESERVED_AGENT_IDS = ("register", "commands", "groups")
MAX_ROUTE_IDS = 10_000


def identifier(**kwargs: Any) -> fields.String:
    extra = kwargs.pop("validate", [])
    return fields.String(
        validate=[validate.Regexp(IDENTIFIER_PATTERN, error=IDENTIFIER_RULE), *extra], **kwargs
    )


class EnumList(fields.Field):
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


class CaseInsensitiveEnum(fields.Field):
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


class DeliveryListQuery(Schema):
    status = EnumList(DeliveryStatus, load_default=None)


class SendCommandSchema(Schema):
    type = fields.String(
        required=True,
        validate=validate.OneOf(
            [member.value for member in CommandType],
            error="Unknown command type '{input}'; valid types: {choices}.",
        ),
    )
    payload = fields.Dict(keys=fields.String(), load_default=dict)


class AckSchema(Schema):
    status = CaseInsensitiveEnum(AckStatus, load_default=AckStatus.SUCCESS)
    message = fields.String(validate=validate.Length(max=4096), allow_none=True, load_default=None)
    details = fields.Dict(keys=fields.String(), load_default=dict)
