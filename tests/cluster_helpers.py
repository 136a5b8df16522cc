"""Processes of the distributed mode for tests: media nodes on one Redis."""

from __future__ import annotations

from signaling.nodes import NodeInfo, RedisNodeRegistry
from tests.conftest import REDIS_URL, free_port
from tests.process_helpers import ServerProcess, start_server

#: A killed node is out after this; short, so the tests do not wait long for it.
EXPIRY_S = 1.5


async def live(prefix: str) -> list[NodeInfo]:
    registry = RedisNodeRegistry(REDIS_URL, prefix=prefix, expiry_s=EXPIRY_S)
    try:
        return await registry.live()
    finally:
        await registry.aclose()


async def start_node(node_id: str, prefix: str, **extra_env: str) -> ServerProcess:
    env = {
        "CALLSERVER_PORT": str(free_port()),
        "CALLSERVER_PRELOAD_ENGINES": "false",
        "CALLSERVER_TRANSLATE_CALLS": "false",
        "CALLSERVER_JOINS_PER_MINUTE": "10000",
        "CALLSERVER_REDIS_URL": REDIS_URL,
        "CALLSERVER_CLUSTER_ENABLED": "true",
        "CALLSERVER_CLUSTER_NODE_ID": node_id,
        "CALLSERVER_CLUSTER_KEY_PREFIX": prefix,
        "CALLSERVER_CLUSTER_HEARTBEAT_S": "0.3",
        "CALLSERVER_CLUSTER_NODE_EXPIRY_S": str(EXPIRY_S),
    }
    node = await start_server(5, **(env | extra_env))
    await node.wait_ready()
    return node
