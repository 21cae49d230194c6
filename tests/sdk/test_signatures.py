"""The SDK's checks of command events, on real signatures made by the server's signer."""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest

from agent_registry.client import Command
from agent_registry.client.signatures import (
    EventChecker,
    Rejected,
    Repeated,
    ServerKeys,
    UnknownKey,
)
from agent_registry.security.signing import CommandSigner

from .signed_frames import data_of, event_of, frame, new_key, registration_keys, with_data

SIGNER = CommandSigner([new_key()])
KEYS = ServerKeys.published(registration_keys(SIGNER))


@pytest.fixture
def checker() -> EventChecker:
    return EventChecker("agent-1", "orders")


def resigned(data: dict, signed: dict, signer: CommandSigner = SIGNER) -> tuple[str, str]:
    """``data`` with a valid signature over other ``signed`` contents."""
    return "deep-trace", json.dumps({**data, "signature": signer.signature(signed)})


def test_a_good_event_is_the_signed_command(checker):
    event = frame(SIGNER, command_id="c-good", payload={"routeId": "route-b"})
    data = data_of(event)

    command = checker.command(*event_of(event), KEYS)

    assert command == Command(
        "c-good", "deep-trace", {"routeId": "route-b"}, data["issuedAt"], data["expiresAt"]
    )


@pytest.mark.parametrize(
    "target", [("agent", "agent-1"), ("group", "orders"), ("all", None)], ids=lambda t: t[0]
)
def test_an_event_for_this_agent_its_group_or_all_runs(checker, target):
    assert checker.command(*event_of(frame(SIGNER, target=target)), KEYS).type == "deep-trace"


def test_a_tampered_payload_beside_the_signature_is_not_what_runs(checker):
    """Only the signed bytes count: what the unsigned fields say is ignored."""
    event = frame(SIGNER, payload={"routeId": "route-a"}, command_type="replay")
    data = data_of(event)
    tampered = {**data, "payload": {"routeId": "everything"}, "type": "config-update"}

    command = checker.command("config-update", json.dumps(tampered), KEYS)

    assert (command.type, command.payload) == ("replay", {"routeId": "route-a"})


def test_tampered_signed_bytes_are_refused(checker):
    data = data_of(frame(SIGNER))
    signed = json.loads(base64.b64decode(data["signature"]["signed"]))
    signed["payload"] = {"routeId": "everything"}
    forged = base64.b64encode(json.dumps(signed).encode()).decode()
    data["signature"] = {**data["signature"], "signed": forged}

    with pytest.raises(Rejected, match="signature does not verify"):
        checker.command("deep-trace", json.dumps(data), KEYS)


def test_a_tampered_signature_value_is_refused(checker):
    data = data_of(frame(SIGNER))
    value = bytearray(base64.b64decode(data["signature"]["value"]))
    value[0] ^= 1
    data["signature"]["value"] = base64.b64encode(bytes(value)).decode()

    with pytest.raises(Rejected, match="signature does not verify"):
        checker.command("deep-trace", json.dumps(data), KEYS)


def test_a_signature_by_another_key_with_a_published_key_id_is_refused(checker):
    impostor = CommandSigner([new_key()])
    data = data_of(frame(impostor))
    data["signature"]["keyId"] = SIGNER.key_id

    with pytest.raises(Rejected, match="signature does not verify"):
        checker.command("deep-trace", json.dumps(data), KEYS)


def test_an_unknown_key_id_is_told_apart(checker):
    other = CommandSigner([new_key()])

    with pytest.raises(UnknownKey, match=f"signed with key '{other.key_id}'"):
        checker.command(*event_of(frame(other)), KEYS)


@pytest.mark.parametrize(
    "target", [("agent", "agent-2"), ("group", "payments"), ("agent", "orders")], ids=str
)
def test_an_event_signed_for_another_agent_or_group_is_refused(checker, target):
    with pytest.raises(Rejected, match="not for agent 'agent-1' of group 'orders'"):
        checker.command(*event_of(frame(SIGNER, target=target)), KEYS)


def test_an_event_whose_unsigned_fields_are_retargeted_is_still_refused(checker):
    """Replaying another group's signed event cannot be made to look like ours."""
    event = frame(SIGNER, target=("group", "payments"))

    with pytest.raises(Rejected, match="signed for group 'payments'"):
        checker.command(*with_data(event, {**data_of(event), "target": "orders"}), KEYS)


def test_an_expired_event_is_refused():
    checker = EventChecker("agent-1", "orders", clock=lambda: time.time() + 61)

    with pytest.raises(Rejected, match="it expired at "):
        checker.command(*event_of(frame(SIGNER, expires_in=60)), KEYS)


def test_a_signed_expiry_cannot_be_extended_beside_the_signature():
    checker = EventChecker("agent-1", "orders", clock=lambda: time.time() + 61)
    event = frame(SIGNER, expires_in=60)
    later = {**data_of(event), "expiresAt": "2999-01-01T00:00:00.000Z"}

    with pytest.raises(Rejected, match="it expired at "):
        checker.command(*with_data(event, later), KEYS)


def test_a_replayed_command_id_is_refused_even_when_resent_as_a_new_frame(checker):
    first = frame(SIGNER, command_id="c-replay")
    checker.command(*event_of(first), KEYS)

    with pytest.raises(Repeated, match="c-replay was already taken"):
        checker.command(*event_of(first), KEYS)
    with pytest.raises(Repeated):  # the same id signed again (deliverOnConnect after a crash)
        checker.command(*event_of(frame(SIGNER, command_id="c-replay")), KEYS)


def test_the_remembered_ids_are_bounded_the_oldest_forgotten_first():
    checker = EventChecker("agent-1", "orders", remember=2)
    for command_id in ("c-1", "c-2", "c-3"):
        checker.command(*event_of(frame(SIGNER, command_id=command_id)), KEYS)

    checker.command(*event_of(frame(SIGNER, command_id="c-1")), KEYS)  # forgotten: runs
    with pytest.raises(Repeated):
        checker.command(*event_of(frame(SIGNER, command_id="c-3")), KEYS)


def test_a_refused_event_does_not_take_its_id(checker):
    """A forged event must not make the genuine one with that id look like a replay."""
    impostor = CommandSigner([new_key()])
    data = data_of(frame(impostor, command_id="c-taken"))
    data["signature"]["keyId"] = SIGNER.key_id
    with pytest.raises(Rejected):
        checker.command("deep-trace", json.dumps(data), KEYS)

    assert checker.command(*event_of(frame(SIGNER, command_id="c-taken")), KEYS).id == "c-taken"


def test_with_two_published_keys_both_verify_during_a_rotation(checker):
    old, new = new_key(), new_key()
    before = CommandSigner([old])  # the old key signs, the new one is not published yet
    during = CommandSigner([new, old])  # the new key signs, the old one is still published
    keys = ServerKeys.published(registration_keys(during))

    assert checker.command(*event_of(frame(before)), keys).type == "deep-trace"
    assert checker.command(*event_of(frame(during)), keys).type == "deep-trace"
    assert sorted(keys.by_id) == sorted([old.key_id, new.key_id])


def test_once_the_old_key_is_removed_its_events_are_unknown(checker):
    old, new = new_key(), new_key()
    keys = ServerKeys.published(registration_keys(CommandSigner([new])))

    with pytest.raises(UnknownKey):
        checker.command(*event_of(frame(CommandSigner([old]))), keys)


@pytest.mark.parametrize(
    "signature",
    [None, "abc", {"keyId": "k"}, {"keyId": 1, "signed": "", "value": ""}],
    ids=["missing", "a string", "incomplete", "not strings"],
)
def test_an_event_without_a_usable_signature_is_refused_when_keys_are_published(checker, signature):
    data = data_of(frame(None))
    if signature is not None:
        data["signature"] = signature

    with pytest.raises(Rejected, match="signature"):
        checker.command("deep-trace", json.dumps(data), KEYS)


def test_a_signature_that_is_not_base64_is_refused(checker):
    data = data_of(frame(SIGNER))
    data["signature"]["value"] = "not base64!"

    with pytest.raises(Rejected, match="signature does not verify"):
        checker.command("deep-trace", json.dumps(data), KEYS)


def test_signed_content_without_a_target_or_expiry_is_refused(checker):
    data = data_of(frame(SIGNER))
    signed = json.loads(base64.b64decode(data["signature"]["signed"]))

    no_target = {key: value for key, value in signed.items() if key != "target"}
    with pytest.raises(Rejected, match="names no target"):
        checker.command(*resigned(data, no_target), KEYS)
    no_expiry = {**signed, "commandId": "c-2", "expiresAt": None}
    with pytest.raises(Rejected, match="no expiresAt"):
        checker.command(*resigned(data, no_expiry), KEYS)


@pytest.mark.parametrize("data", ["not json", "[1]", '{"no": "id"}'])
def test_data_that_is_not_a_command_is_refused(checker, data):
    with pytest.raises(Rejected, match=r"not a command|carries no signature"):
        checker.command("deep-trace", data, KEYS)
    with pytest.raises(Rejected, match="not a command"):
        checker.command("deep-trace", data, None)


def test_without_published_keys_events_are_taken_as_they_come_once_each(checker):
    unsigned = frame(None, command_id="c-plain", target=("group", "elsewhere"))

    assert checker.command(*event_of(unsigned), None).id == "c-plain"
    with pytest.raises(Repeated):
        checker.command(*event_of(unsigned), None)


class TestPublishedKeys:
    def test_none_published_means_no_checks(self):
        assert ServerKeys.published({"serverPublicKey": None, "serverPublicKeys": None}) is None
        assert ServerKeys.published({}) is None

    def test_the_v1_single_key_field_is_enough(self):
        keys = ServerKeys.published({"serverPublicKey": SIGNER.published()[0]})

        assert list(keys.by_id) == [SIGNER.key_id]

    def test_a_key_that_cannot_be_used_is_left_out_and_logged(self, caplog):
        good = SIGNER.published()[0]
        listed = [
            {**good, "keyId": "rsa", "algorithm": "RS256"},
            {**good, "keyId": "garbled", "publicKey": "AAAA"},
            {"keyId": "incomplete"},
            good,
        ]
        with caplog.at_level(logging.ERROR):
            keys = ServerKeys.published({"serverPublicKeys": listed})

        assert list(keys.by_id) == [SIGNER.key_id]
        assert len(caplog.records) == 3

    def test_published_keys_none_of_which_can_be_used_refuse_every_event(self, checker):
        keys = ServerKeys.published({"serverPublicKeys": [{"keyId": "x"}]})

        with pytest.raises(UnknownKey):
            checker.command(*event_of(frame(SIGNER)), keys)
