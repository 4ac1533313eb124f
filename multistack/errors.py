"""Error types shared by the library and `multistack-ctl`."""


class MultiStackError(Exception):
    """Base of every error this library raises on purpose."""


class CtlError(MultiStackError):
    """A user error in `multistack-ctl`: printed as one line, exit status 2."""


class PortClosedError(MultiStackError):
    """The port was closed (or its interface vanished) while in use.

    ``errno`` carries the kernel's reason where there is one.
    """

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


class RegistrationError(MultiStackError):
    """A 3-tuple could not be registered or unregistered.

    ``errno`` carries the kernel's reason where there is one.
    """

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno


class UnsupportedOperation(MultiStackError):
    """The backend cannot do this (for example, registration on a TAP port)."""
