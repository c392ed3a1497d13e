# -*- test-case-name: tests.test_ul_protocol -*-
"""
The factory of the DICOM listener: one L{DICOMServerProtocol} per accepted
connection, sharing the count of associations that
C{MaximumAssociations} limits.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from twistedpacs.config import Settings
from twistedpacs.ul.protocol import DICOMServerProtocol

__all__ = ["DICOMServerFactory", "build_factory"]


class DICOMServerFactory(ServerFactory):
    """
    Builds the protocol of each DICOM connection.

    @ivar active_associations: The associations accepted whose connection is
        still open.
    @ivar connections: The number of connections accepted so far, which also
        numbers them for the logs.
    """

    log = Logger()
    noisy = False

    def __init__(self, store: Any, settings: Settings, clock: IReactorTime) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.active_associations = 0
        self.connections = 0

    def buildProtocol(self, addr: IAddress | None) -> DICOMServerProtocol:
        """
        Build the protocol of one accepted connection.
        """
        self.connections += 1
        protocol = DICOMServerProtocol(
            self.store, self.settings, self.clock, self, self.connections
        )
        protocol.factory = self
        return protocol

    def association_accepted(self) -> None:
        """
        Count one more accepted association.
        """
        self.active_associations += 1

    def association_ended(self) -> None:
        """
        Count one accepted association less, when its connection closes.
        """
        self.active_associations -= 1

    def startFactory(self) -> None:
        self.log.info(
            "DICOM listener of {aet} started (maximum PDU length {maximum_pdu})",
            aet=self.settings.aet,
            maximum_pdu=self.settings.maximum_pdu_length,
        )

    def stopFactory(self) -> None:
        self.log.info(
            "DICOM listener of {aet} stopped after {connections} connections",
            aet=self.settings.aet,
            connections=self.connections,
        )


def build_factory(store: Any, settings: Settings, reactor: IReactorTime) -> DICOMServerFactory:
    """
    Build the protocol factory of the DICOM listener.

    @param store: The store that C-STORE data sets go to, with
        C{begin_transfer(pause, resume)}.
    @param reactor: The reactor whose clock runs ARTIM and the idle timeout.
    """
    return DICOMServerFactory(store, settings, reactor)
