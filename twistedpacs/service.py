"""
The C{twistd twistedpacs} command: options and the service tree.
"""

from __future__ import annotations

import ctypes
from dataclasses import replace
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python import usage

from twistedpacs import __version__
from twistedpacs.config import ConfigError, Settings, settings_from_file


class Options(usage.Options):
    """
    Command-line options of C{twistd twistedpacs}, which override the values
    of the C{--config} file.
    """

    synopsis = "[options]"
    longdesc = (
        "Run TwistedPACS: a DICOM store with a REST API and a web Explorer. "
        "Every option overrides the same setting in the --config file."
    )
    optParameters = [
        ["http-port", None, None, "TCP port of the REST API and Explorer [8042]", int],
        [
            "http-bind",
            None,
            None,
            "address the HTTP port listens on [127.0.0.1; 0.0.0.0 allows remote access]",
        ],
        ["dicom-port", None, None, "TCP port of the DICOM listener [4242]", int],
        ["dicom-bind", None, None, "address the DICOM port listens on [0.0.0.0]"],
        ["aet", None, None, "our DICOM Application Entity title [ORTHANC]"],
        [
            "storage",
            None,
            None,
            "directory of the LMDB store, created if missing [./twistedpacs-db]",
        ],
        [
            "config",
            "c",
            None,
            "JSON configuration file with Orthanc option names (HttpPort, "
            "DicomPort, DicomAet, StorageDirectory, MaximumStorageSize in MB, ...)",
        ],
        [
            "name",
            None,
            None,
            "server name shown by /system and the Explorer [TwistedPACS]",
        ],
    ]
    optFlags = [
        ["overwrite", None, "replace a stored instance that is received again"],
        ["verbose", None, "log every stored instance (at the debug level)"],
        [
            "null-store",
            None,
            "benchmark only: receive and acknowledge instances, storing nothing",
        ],
    ]

    def opt_version(self) -> None:
        """
        Print the TwistedPACS version and exit.
        """
        print(f"TwistedPACS {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        try:
            self.settings = build_settings(self)
        except ConfigError as error:
            raise usage.UsageError(str(error))


_OPTION_SETTINGS = {
    "http-port": "http_port",
    "http-bind": "http_bind",
    "dicom-port": "dicom_port",
    "dicom-bind": "dicom_bind",
    "aet": "aet",
    "storage": "storage_directory",
    "name": "name",
}


def build_settings(options: dict[str, Any]) -> Settings:
    """
    Merge the defaults, the C{--config} file and the command-line options.

    @raise ConfigError: if the file is invalid or an option out of range.
    """
    settings = Settings()
    if options.get("config"):
        settings = settings_from_file(options["config"], settings)
    changes: dict[str, Any] = {}
    for option, attribute in _OPTION_SETTINGS.items():
        if options.get(option) is not None:
            changes[attribute] = options[option]
    if options.get("overwrite"):
        changes["overwrite_instances"] = True
    if options.get("verbose"):
        changes["verbose"] = True
    if options.get("null-store"):
        changes["null_store"] = True
    settings = replace(settings, **changes)
    for name in ("http_port", "dicom_port"):
        port = getattr(settings, name)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{name} must be between 0 and 65535, not {port}")
    if not 1 <= len(settings.aet) <= 16:
        raise ConfigError(
            f"the AE title must have 1 to 16 characters: {settings.aet!r}"
        )
    return settings


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Allocations up to this size come from the heap and are reused there.
MMAP_THRESHOLD = 4 * 1024 * 1024
# Free memory the heap keeps instead of returning it to the system.
TRIM_THRESHOLD = 32 * 1024 * 1024


def keep_buffers_in_heap() -> bool:
    """
    Have glibc serve the buffers of the ingest path from its heap.

    Every socket read allocates a 1 MiB buffer, and every instance 512 KiB
    chunk buffers. glibc's default threshold adapts to the last large block
    freed, so these buffers kept getting fresh pages from C{mmap}, and the
    page faults on them took 0.2 ms of the 0.85 ms that one REST upload of
    0.5 MB costs the server with the null store. From the heap, the same
    pages are used again.

    @return: whether both thresholds were set (only with glibc).
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


class StoreService(Service):
    """
    Opens the LMDB store in C{startService} (after twistd has forked) and
    closes it last, once the listeners have stopped.
    """

    log = Logger()

    def __init__(self, store: Any) -> None:
        self.store = store

    def startService(self) -> None:
        keep_buffers_in_heap()
        self.store.open()
        self.log.info("Store opened")
        super().startService()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        closed = self.store.close()
        closed.addCallback(lambda _: self.log.info("Store closed"))
        return closed


def _endpoint_description(port: int, interface: str) -> str:
    interface = interface.replace(":", "\\:")
    return f"tcp:port={port}:interface={interface}"


def build_store(settings: Settings, reactor: Any) -> Any:
    """
    Create the store the settings name: LMDB, or the benchmark's null store.
    """
    if settings.null_store:
        from twistedpacs.storage.null import NullStore

        return NullStore(settings, reactor)
    from twistedpacs.storage.store import Store

    return Store(settings, reactor)


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    Build the service tree: the store, the HTTP site and the DICOM listener.
    """
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    settings: Settings = options.settings
    top = MultiService()
    store = build_store(settings, reactor)
    # Children stop in reverse order, so the store closes after both listeners.
    StoreService(store).setServiceParent(top)

    from twistedpacs.rest.site import build_site

    site = build_site(store, settings, reactor)
    http = StreamServerEndpointService(
        endpoints.serverFromString(
            reactor, _endpoint_description(settings.http_port, settings.http_bind)
        ),
        site,
    )
    http.setName("http")
    http.setServiceParent(top)

    from twistedpacs.ul.listener import build_factory

    dicom = StreamServerEndpointService(
        endpoints.serverFromString(
            reactor, _endpoint_description(settings.dicom_port, settings.dicom_bind)
        ),
        build_factory(store, settings, reactor),
    )
    dicom.setName("dicom")
    dicom.setServiceParent(top)

    return top
