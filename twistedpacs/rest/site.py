"""
The HTTP site: the REST application on a streaming-upload L{Site}.
"""

from __future__ import annotations

from typing import Any

from twistedpacs.config import Settings
from twistedpacs.rest.app import RestApi
from twistedpacs.rest.upload import UploadSite


def build_site(store: Any, settings: Settings, reactor: Any) -> UploadSite:
    api = RestApi(store, settings, reactor)
    site = UploadSite(api.app.resource(), store, settings, reactor=reactor)
    site.displayTracebacks = False
    return site
