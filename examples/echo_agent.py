import logging
import os

from agent_registry.client import AgentClient, Command

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
url = os.environ.get("AGENT_REGISTRY_URL", "http://127.0.0.1:8080")
agent = AgentClient(
    url,
    "echo-1",
    group="demo",
    version="1.0.0",
    route_ids=["route-a"],
    # Only a server with auth on needs one (agent-registry token create --kind enrollment).
    enrollment_token=os.environ.get("AGENT_REGISTRY_ENROLLMENT_TOKEN"),
)


@agent.handler("deep-trace")
def deep_trace(command: Command) -> str:
    return f"tracing {command.payload.get('routeId', 'every route')}"  # acked as SUCCESS


@agent.handler("config-update")
def config_update(command: Command) -> None:
    raise ValueError("echo-1 has no settings to update")  # acked as FAILURE, with this message


agent.run()  # register, heartbeat, follow the event stream, until Ctrl-C or SIGTERM
