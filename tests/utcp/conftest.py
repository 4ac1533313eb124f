"""Async tests in this folder run under trio, each within a time limit so none can hang."""

import inspect

import pytest
import trio

TIME_LIMIT = 60.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}

    async def bounded():
        with trio.fail_after(TIME_LIMIT):
            await fn(**kwargs)

    trio.run(bounded)
    return True
