"""Importing existing log files (`nwsyslog import FILE...`): `files` finds, orders, reads them
and infers the year of their yearless lines."""
