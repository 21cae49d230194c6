"""The package layout's rules, read from the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "agent_registry"


def imports_of(module: Path) -> set[str]:
    """Every module ``module`` imports, as absolute dotted names."""
    parts = module.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1]  # what a relative import starts from, for __init__.py too
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def imports_of_package(name: str) -> dict[str, set[str]]:
    return {
        str(module.relative_to(PACKAGE.parent)): imports_of(module)
        for module in sorted((PACKAGE / name).rglob("*.py"))
    }


def offenders(
    package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()
) -> dict[str, list[str]]:
    found = {
        module: sorted(
            name for name in names if name.startswith(forbidden) and not name.startswith(allowed)
        )
        for module, names in imports_of_package(package).items()
    }
    return {module: names for module, names in found.items() if names}


@pytest.mark.parametrize(
    ("package", "forbidden", "allowed"),
    [
        pytest.param(
            "client",
            ("agent_registry",),
            ("agent_registry.client",),
            id="the SDK imports nothing of the server",
        ),
        pytest.param("stores", ("agent_registry.streams",), (), id="stores do not import streams"),
        pytest.param("streams", ("agent_registry.stores",), (), id="streams do not import stores"),
        pytest.param(
            "core",
            (
                "flask",
                "gevent",
                "redis",
                "werkzeug",
                "apscheduler",
                "prometheus_client",
                "agent_registry.web",
            ),
            (),
            id="the core is plain Python",
        ),
        pytest.param(
            "security",
            ("flask", "gevent", "redis", "werkzeug", "agent_registry.web", "agent_registry.server"),
            (),
            id="tokens, permissions and signatures are plain Python",
        ),
        pytest.param(
            "web",
            ("prometheus_client",),
            (),
            id="the web layer reaches metrics through the runtime only",
        ),
    ],
)
def test_a_package_imports_only_what_its_role_allows(
    package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...]
) -> None:
    assert offenders(package, forbidden, allowed) == {}


def test_the_redis_bus_depends_on_ports_not_on_concrete_stores() -> None:
    names = imports_of(PACKAGE / "redis" / "bus.py")

    assert not {
        name
        for name in names
        if name.startswith(("agent_registry.redis.commands", "agent_registry.redis.presence"))
        or name.startswith("agent_registry.stores")
    }


def test_domain_errors_carry_no_http_status() -> None:
    tree = ast.parse((PACKAGE / "errors.py").read_text())
    assigned = {
        name.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        for name in ast.walk(target)  # ``status, code = 400, "..."`` names two
        if isinstance(name, ast.Name)
    }

    assert not assigned & {"status", "code", "http_status"}
    web_imports = [
        name
        for name in imports_of(PACKAGE / "errors.py")
        if name.split(".")[0] in {"http", "flask", "werkzeug"}
    ]
    assert web_imports == []
