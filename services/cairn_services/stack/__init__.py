"""The embedded local stack: managed nats-server and Postgres processes on local ports."""

from cairn_services.stack.errors import StackError
from cairn_services.stack.nats_server import NatsServer
from cairn_services.stack.ports import free_port, wait_for_port
from cairn_services.stack.postgres_server import PostgresServer

__all__ = ["NatsServer", "PostgresServer", "StackError", "free_port", "wait_for_port"]
