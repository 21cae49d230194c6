"""examples/java/VerifyCommandEvent.java against events the server's own code signs.

The events come from ``CommandSigner`` and ``command_frame``, as a stream writes them; the
Java program runs with the JDK's single-file launch, as docs/security.md tells users to.
Every case goes through one run (a JVM start compiles the file: about 2 s), one verdict
line per event, in order.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent_registry.core.models import Command, CommandType, Target, TargetKind
from agent_registry.security.signing import CommandSigner, SigningKey, generate_pem, load_keys
from agent_registry.streams import sse

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="java is not on PATH")

PROGRAM = Path(__file__).resolve().parents[2] / "examples" / "java" / "VerifyCommandEvent.java"
AGENT_ID, GROUP = "order-svc-1", "orders"


class Verdict(IntEnum):
    """The program's exit codes, one per verdict (USAGE: wrong arguments, or no event)."""

    RUN = 0
    USAGE = 2
    MALFORMED = 3
    UNSIGNED = 4
    UNKNOWN_KEY = 5
    BAD_SIGNATURE = 6
    NOT_FOR_ME = 7
    EXPIRED = 8
    ALREADY_RUN = 9


# Case name -> the verdict expected; the events go to the program in this order.
EXPECTED = {
    "to the agent's id": Verdict.RUN,
    "to the agent's group": Verdict.RUN,
    "to all": Verdict.RUN,
    "a bare data line, not a whole frame": Verdict.RUN,
    "signed by the second published key (rotation)": Verdict.RUN,
    "unsigned fields altered: the signed ones are used": Verdict.RUN,
    "the same commandId again": Verdict.ALREADY_RUN,
    "signed bytes altered": Verdict.BAD_SIGNATURE,
    "signature value altered": Verdict.BAD_SIGNATURE,
    "a signature of the wrong length": Verdict.BAD_SIGNATURE,
    "signed by another key under a published keyId": Verdict.BAD_SIGNATURE,
    "an unknown keyId": Verdict.UNKNOWN_KEY,
    "for another group": Verdict.NOT_FOR_ME,
    "for another agent": Verdict.NOT_FOR_ME,
    "expired": Verdict.EXPIRED,
    "no signature": Verdict.UNSIGNED,
    "not JSON": Verdict.MALFORMED,
}


def command(command_id: str, target: Target, expires_in: float = 300.0) -> Command:
    now = time.time()
    payload = {"routeId": "route-a", "note": "größe", "nested": {"target": {"kind": "all"}}}
    return Command(command_id, CommandType.DEEP_TRACE, payload, target, now, now + expires_in)


def data_of(frame: bytes) -> dict:
    (line,) = (li for li in frame.decode().splitlines() if li.startswith("data: "))
    return json.loads(line.removeprefix("data: "))


def frame_with(data: dict, command_id: str) -> bytes:
    return sse.event(sse.json_line(data), event_id=command_id, event_type="deep-trace")


def altered_signed(frame: bytes) -> bytes:
    """The signed bytes with the payload changed; the signature left as it was."""
    data = data_of(frame)
    signed = json.loads(base64.b64decode(data["signature"]["signed"]))
    signed["payload"]["routeId"] = "route-evil"
    data["signature"]["signed"] = base64.b64encode(json.dumps(signed).encode()).decode()
    return frame_with(data, data["commandId"])


def altered_value(frame: bytes) -> bytes:
    data = data_of(frame)
    value = bytearray(base64.b64decode(data["signature"]["value"]))
    value[0] ^= 1
    data["signature"]["value"] = base64.b64encode(value).decode()
    return frame_with(data, data["commandId"])


def truncated_value(frame: bytes) -> bytes:
    data = data_of(frame)
    data["signature"]["value"] = base64.b64encode(
        base64.b64decode(data["signature"]["value"])[:63]
    ).decode()
    return frame_with(data, data["commandId"])


def relabelled(frame: bytes, key_id: str) -> bytes:
    data = data_of(frame)
    data["signature"]["keyId"] = key_id
    return frame_with(data, data["commandId"])


def unsigned_altered(frame: bytes) -> bytes:
    """What the event says outside ``signature`` changed: nothing the agent may act on."""
    data = data_of(frame)
    data.update(commandId="cmd-other", type="replay", payload={"routeId": "route-evil"})
    return frame_with(data, "cmd-other")


def events(signer: CommandSigner, previous: CommandSigner, stranger: CommandSigner) -> bytes:
    """Every case's event, in EXPECTED's order, as one stream (with pings and a cancel)."""
    mine, everyone = Target(TargetKind.AGENT, AGENT_ID), Target(TargetKind.ALL)
    first = sse.command_frame(command("cmd-agent", mine), signer)
    frames: dict[str, Callable[[], bytes]] = {
        "to the agent's id": lambda: first,
        "to the agent's group": lambda: sse.command_frame(
            command("cmd-group", Target(TargetKind.GROUP, GROUP)), signer
        ),
        "to all": lambda: sse.command_frame(command("cmd-all", everyone), signer),
        "a bare data line, not a whole frame": lambda: (
            sse.json_line(data_of(sse.command_frame(command("cmd-bare", mine), signer))) + "\n"
        ).encode(),
        "signed by the second published key (rotation)": lambda: sse.command_frame(
            command("cmd-previous-key", mine), previous
        ),
        "unsigned fields altered: the signed ones are used": lambda: unsigned_altered(
            sse.command_frame(command("cmd-outer", mine), signer)
        ),
        "the same commandId again": lambda: first,
        "signed bytes altered": lambda: altered_signed(
            sse.command_frame(command("cmd-altered", mine), signer)
        ),
        "signature value altered": lambda: altered_value(
            sse.command_frame(command("cmd-value", mine), signer)
        ),
        "a signature of the wrong length": lambda: truncated_value(
            sse.command_frame(command("cmd-short", mine), signer)
        ),
        "signed by another key under a published keyId": lambda: relabelled(
            sse.command_frame(command("cmd-forged", mine), stranger), signer.key_id
        ),
        "an unknown keyId": lambda: sse.command_frame(command("cmd-unknown", mine), stranger),
        "for another group": lambda: sse.command_frame(
            command("cmd-payments", Target(TargetKind.GROUP, "payments")), signer
        ),
        "for another agent": lambda: sse.command_frame(
            command("cmd-elsewhere", Target(TargetKind.AGENT, "order-svc-2")), signer
        ),
        "expired": lambda: sse.command_frame(command("cmd-expired", mine, -1.0), signer),
        "no signature": lambda: sse.command_frame(command("cmd-unsigned", mine)),
        "not JSON": lambda: b"data: {not json\n\n",
    }
    assert list(frames) == list(EXPECTED)
    cancel = sse.event(sse.json_line({"commandId": "cmd-agent"}), event_type="cancel")
    stream = [sse.OPENING, cancel]
    for make in frames.values():
        stream += [make(), sse.PING]
    return b"".join(stream)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    directory = tmp_path_factory.mktemp("java-verifier")
    key_file = directory / "signing.pem"
    key_file.write_bytes(generate_pem() + generate_pem())  # two keys, as during a rotation
    keys = load_keys(str(key_file))
    signer, previous = CommandSigner(keys), CommandSigner(keys[::-1])
    stranger = CommandSigner([SigningKey.of(Ed25519PrivateKey.generate())])
    published = directory / "keys.json"
    published.write_text(json.dumps(signer.published()))
    return subprocess.run(
        ["java", str(PROGRAM), str(published), AGENT_ID, GROUP],
        input=events(signer, previous, stranger).decode(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
    )


@pytest.fixture(scope="module")
def verdicts(run: subprocess.CompletedProcess[str]) -> dict[str, str]:
    lines = run.stdout.splitlines()
    assert len(lines) == len(EXPECTED), (run.stdout, run.stderr)
    return dict(zip(EXPECTED, lines, strict=True))


@pytest.mark.parametrize(("case", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_verdict(verdicts: dict[str, str], case: str, expected: Verdict) -> None:
    code = Verdict(int(verdicts[case].split()[0]))
    assert code is expected, verdicts[case]


def test_a_run_names_the_signed_command_and_payload(verdicts: dict[str, str]) -> None:
    assert re.match(
        r"0 run deep-trace cmd-group \{routeId=route-a, ", verdicts["to the agent's group"]
    )
    # The event said cmd-other / replay / route-evil outside the signature.
    altered = verdicts["unsigned fields altered: the signed ones are used"]
    assert re.match(r"0 run deep-trace cmd-outer \{routeId=route-a, ", altered)


def test_the_exit_code_is_the_last_verdict(run: subprocess.CompletedProcess[str]) -> None:
    assert Verdict(run.returncode) is list(EXPECTED.values())[-1], run.stderr


def test_the_docs_show_the_programs_verify_as_it_is() -> None:
    """docs/security.md quotes ``verify``: the quote must not drift from the tested file."""
    docs = (PROGRAM.parents[2] / "docs" / "security.md").read_text()
    (quoted,) = re.findall(r"```java\n(.*?)```", docs, re.DOTALL)
    assert "static Verdict verify(" in quoted
    assert quoted in PROGRAM.read_text()
