"""The project's XSD for Netwrix Activity Record input, loaded once."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from lxml import etree

XSD_NAME = "activity_records.xsd"


def xsd_bytes() -> bytes:
    """The XSD file's bytes, as shipped in the package."""
    return files(__package__).joinpath(XSD_NAME).read_bytes()


@cache
def activity_records_schema() -> etree.XMLSchema:
    """The compiled schema for `<ActivityRecordList>` bodies (compiled once per process)."""
    return etree.XMLSchema(etree.fromstring(xsd_bytes()))
