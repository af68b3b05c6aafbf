"""A socket's readiness asked of the kernel at once, whatever gevent has patched."""

import select

from gevent.monkey import get_original

_kernel_poll = get_original("select", "poll")


def readable_now(sock) -> bool:
    """Whether `sock` has bytes to read or was closed by its peer: poll(2) with no wait.

    gevent's `select.poll` waits in its hub even for a zero timeout (a timer and a
    switch); this is one system call.
    """
    poller = _kernel_poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))
