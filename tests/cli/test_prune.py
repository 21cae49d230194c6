"""`agents prune --dead-for`, with and without --dry-run, against a server whose agents go
DEAD within about a second of their last heartbeat."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from agent_registry.cli.fleet import dead_for_at_least, parse_duration
from agent_registry.client import RegistryApi
from harness.gunicorn import FAST_LIFECYCLE, GunicornServer
from harness.wait import wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    with GunicornServer(log_dir=tmp_path_factory.mktemp("prune"), env=FAST_LIFECYCLE) as process:
        yield process


@pytest.fixture
def dead(http: httpx.Client, register) -> list[str]:
    """A fleet of two DEAD agents, and nothing else on the server."""
    assert http.delete("/agents", params={"status": "DEAD"}).status_code == 200
    ids = ["prune-1", "prune-2"]
    for agent_id in ids:
        register(agent_id, "prune")

    def all_dead() -> bool:
        return len(http.get("/agents", params={"status": "DEAD"}).json()) == len(ids)

    assert wait_until(all_dead, within=10)
    return ids


@pytest.mark.e2e
def test_prune_deletes_the_agents_dead_long_enough(cli, dead, http):
    kept = cli("agents", "prune", "--dead-for", "1h")
    assert kept.exit_code == 0, kept.output
    assert kept.stdout == "Deleted 0 agent(s) DEAD for at least 1h.\n"

    result = cli("agents", "prune", "--dead-for", "0s")

    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted 2 agent(s) DEAD for at least 0s.\n"
    assert http.get("/agents", params={"group": "prune"}).json() == []


@pytest.mark.e2e
def test_prune_json_is_the_servers_answer(cli, dead):
    result = cli("agents", "prune", "--dead-for", "0", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"deleted": 2}


@pytest.mark.e2e
def test_dry_run_lists_what_would_go_and_deletes_nothing(cli, dead, http):
    result = cli("agents", "prune", "--dead-for", "0s", "--dry-run")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Would delete 2 agent(s) DEAD for at least 0s:"
    assert lines[1].split() == ["ID", "GROUP", "DEAD", "SINCE", "LAST", "HEARTBEAT"]
    assert [line.split()[0] for line in lines[2:]] == dead
    assert len(http.get("/agents", params={"status": "DEAD"}).json()) == 2

    none = cli("agents", "prune", "--dead-for", "7d", "--dry-run")
    assert none.exit_code == 0
    assert none.stdout == "No agent has been DEAD for 7d or more; nothing would go.\n"

    listed = cli("agents", "prune", "--dead-for", "0", "--dry-run", "--json")
    assert [agent["id"] for agent in json.loads(listed.stdout)] == dead


@pytest.mark.e2e
def test_a_bad_duration_is_a_usage_error(cli):
    result = cli("agents", "prune", "--dead-for", "7 days")

    assert result.exit_code == 2
    assert "'7 days' is not a duration" in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("12h", 43_200),
        ("7d", 604_800),
        ("2w", 1_209_600),
        ("1d12h", 129_600),
        ("1.5h", 5400),
        (" 7D ", 604_800),
        ("0", 0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "7x", "-1d", "7d3", "1e3", "seven"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_the_dry_run_goes_by_the_servers_clock_and_reads_every_page() -> None:
    agents = [
        {"id": f"a{n}", "stateChangedAt": stamp}
        for n, stamp in enumerate(
            ["2026-03-11T10:00:00.000Z", "2026-03-11T10:14:30.000Z", "2026-03-11T10:14:31.500Z"]
        )
    ]
    asked: list[dict[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        asked.append(params)
        after = params.get("after")
        page = [a for a in agents if after is None or a["id"] > after][: int(params["limit"])]
        # The server's clock reads 10:15:30 (this machine's may be anything: the cutoff
        # is then at most a second later).
        return httpx.Response(200, json=page, headers={"Date": "Wed, 11 Mar 2026 10:15:30 GMT"})

    with RegistryApi("http://registry.test", transport=httpx.MockTransport(answer)) as api:
        found = dead_for_at_least(api, 60, page_size=2)

    assert [agent["id"] for agent in found] == ["a0", "a1"]
    assert [p.get("after") for p in asked] == [None, "a1"]
    assert all(p["status"] == "DEAD" for p in asked)
