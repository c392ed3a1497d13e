"""
The twistd plugin, its options and the configuration file.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import socket

from twisted.application.service import IServiceMaker
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twistedpacs.config import MIB, Settings
from twistedpacs.service import Options, keep_buffers_in_heap, makeService


def parse(*arguments: str) -> Options:
    options = Options()
    options.parseOptions(list(arguments))
    return options


class OptionsTests(SynchronousTestCase):
    """
    Defaults, the configuration file and their precedence.
    """

    def write_config(self, document: object) -> str:
        path = self.mktemp()
        with open(path, "w") as stream:
            json.dump(document, stream)
        return path

    def test_defaults(self) -> None:
        """
        Without options the server uses the documented defaults.
        """
        settings = parse().settings
        self.assertEqual(settings.http_port, 8042)
        self.assertEqual(settings.http_bind, "127.0.0.1")
        self.assertEqual(settings.dicom_port, 4242)
        self.assertEqual(settings.aet, "ORTHANC")
        self.assertEqual(settings.storage_directory, "twistedpacs-db")
        self.assertEqual(settings.in_memory_threshold, 8 * MIB)
        self.assertEqual(settings.maximum_pdu_length, 131072)
        self.assertFalse(settings.verbose)

    def test_verbose_flag(self) -> None:
        """
        C{--verbose} turns on the log line of every stored instance.
        """
        self.assertTrue(parse("--verbose").settings.verbose)

    def test_config_file_orthanc_names(self) -> None:
        """
        Orthanc option names in the file set their settings, sizes in MB;
        unknown names are ignored.
        """
        path = self.write_config(
            {
                "HttpPort": 9042,
                "DicomAet": "ARCHIVE",
                "MaximumStorageSize": 500,
                "OverwriteInstances": True,
                "DicomModalities": {"pacs": ["PACS", "127.0.0.1", 11112]},
                "SomethingElse": 1,
            }
        )
        settings = parse("--config", path).settings
        self.assertEqual(settings.http_port, 9042)
        self.assertEqual(settings.aet, "ARCHIVE")
        self.assertEqual(settings.maximum_storage_size, 500 * MIB)
        self.assertTrue(settings.overwrite_instances)
        self.assertEqual(
            settings.dicom_modalities["pacs"], ("PACS", "127.0.0.1", 11112)
        )

    def test_command_line_overrides_file(self) -> None:
        """
        A command-line option wins over the same setting in the file.
        """
        path = self.write_config({"HttpPort": 9042, "DicomAet": "ARCHIVE"})
        settings = parse("--config", path, "--http-port", "9100").settings
        self.assertEqual(settings.http_port, 9100)
        self.assertEqual(settings.aet, "ARCHIVE")

    def test_invalid_values_rejected(self) -> None:
        """
        A bad file, a wrongly typed value, a port out of range and an AE
        title of more than 16 characters are usage errors.
        """
        broken = self.mktemp()
        with open(broken, "w") as stream:
            stream.write("{not json")
        for arguments in (
            ("--config", broken),
            ("--config", self.write_config({"OverwriteInstances": "yes"})),
            ("--config", self.write_config([1, 2])),
            ("--http-port", "70000"),
            ("--aet", "A" * 17),
            ("--config", "/nonexistent/config.json"),
        ):
            self.assertRaises(UsageError, parse, *arguments)


class ServiceTests(SynchronousTestCase):
    """
    The plugin and the service tree.
    """

    def test_plugin_is_found(self) -> None:
        """
        twistd finds a service maker with the tap name twistedpacs.
        """
        names = [maker.tapname for maker in getPlugins(IServiceMaker)]
        self.assertIn("twistedpacs", names)

    def test_store_not_opened_before_start(self) -> None:
        """
        makeService builds the HTTP and DICOM services without touching the
        store's directory, which is opened only in startService (after
        twistd has forked).
        """
        storage = os.path.join(self.mktemp(), "db")
        options = parse("--storage", storage, "--http-port", "0", "--dicom-port", "0")
        service = makeService(options, reactor=MemoryReactorClock())
        names = {child.name for child in service}
        self.assertIn("http", names)
        self.assertIn("dicom", names)
        self.assertFalse(os.path.exists(storage))
        self.assertIsInstance(options.settings, Settings)


class HeapTests(SynchronousTestCase):
    """
    The allocator settings of the serving process.
    """

    def test_socket_reads_reuse_heap_pages(self) -> None:
        """
        Once the thresholds are set, reading 0.5 MB at a time into 1 MiB
        buffers, as the listeners do, touches no new pages. With glibc's
        defaults each buffer got fresh pages from mmap, and these 50 reads
        made 6,350 page faults.
        """
        if platform.libc_ver()[0] != "glibc":
            raise SkipTest("mallopt is a glibc function")
        self.assertTrue(keep_buffers_in_heap())
        sender, receiver = socket.socketpair()
        self.addCleanup(sender.close)
        self.addCleanup(receiver.close)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MIB)
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MIB)
        payload = bytes(500 * 1024)

        def send_and_read(count: int) -> None:
            for _ in range(count):
                sender.sendall(payload)
                received = 0
                while received < len(payload):
                    received += len(receiver.recv(MIB))

        send_and_read(5)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        send_and_read(50)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        self.assertLess(faults, 500)
