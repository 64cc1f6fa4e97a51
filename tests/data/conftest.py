"""The parametrized ``store`` fixture of tests/stores: once embedded, once on a real
redis-server this test run started."""

from tests.stores.conftest import anyio_backend, store, store_url  # noqa: F401 (fixtures)
