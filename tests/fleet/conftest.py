import pytest

from tests.fixtures.redis_server import RedisServer


@pytest.fixture
def redis_server():
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def redis_server_session():
    with RedisServer() as server:
        yield server
