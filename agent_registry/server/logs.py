"""How the server's log lines look, in the gunicorn master and every worker alike.

gunicorn builds its log object (``logger_class``, set in ``gunicorn_settings``) in the
master before its first line and sets it up again on a reload; the workers it forks use
the same object. ``GunicornLogger.setup`` lets gunicorn set up its own log, then applies
``logging_config`` with ``logging.config.dictConfig``:

- ``text`` (the default): gunicorn keeps its own lines (``[date] [pid] [LEVEL] message``)
  and the app's loggers write ``date [pid] [LEVEL] logger: message``, as before.
- ``json``: every line, gunicorn's included, is one JSON object with ``time`` (ISO 8601,
  UTC), ``level``, ``logger``, ``message``, ``process`` and the fields the log call passed
  (``agent_id``, ``command_id``, the access log's ``route``, ``status``...); a traceback is
  the ``exc_info`` field of the same line.

Not gunicorn's ``logconfig_dict``: any value there turns on gunicorn's own access log,
which formats a line for every request (our access log is ``AGENT_REGISTRY_ACCESS_LOG``).
"""

from __future__ import annotations

import logging.config
import os
from typing import Any

from gunicorn.config import Config
from gunicorn.glogging import Logger

from ..config import log_format as parse_log_format

APP_TEXT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"
JSON_FIELDS = ["levelname", "name", "message", "process"]
JSON_NAMES = {"levelname": "level", "name": "logger"}


def json_formatter() -> dict[str, Any]:
    """The JSON formatter as ``dictConfig`` builds it (python-json-logger 3+)."""
    return {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": JSON_FIELDS,
        "rename_fields": JSON_NAMES,
        "timestamp": "time",
    }


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """The ``dictConfig`` of ``AGENT_REGISTRY_LOG_FORMAT`` (``text`` or ``json``).

    ``level`` is gunicorn's level name (``info``); it applies to gunicorn's log and to the
    app's ``agent_registry`` loggers. APScheduler and everything else log warnings only.
    """
    level = level.upper()
    if log_format == "json":
        formatter: dict[str, Any] = json_formatter()
    else:
        formatter = {"format": APP_TEXT}

    def logger(logger_level: str) -> dict[str, Any]:
        return {"level": logger_level, "handlers": ["stderr"], "propagate": False}

    loggers = {"agent_registry": logger(level), "apscheduler": logger("WARNING")}
    if log_format == "json":
        # In text, gunicorn's own handler stays (its format, and --error-logfile works).
        loggers["gunicorn.error"] = logger(level)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"app": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "app",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
        "loggers": loggers,
    }


class GunicornLogger(Logger):
    """gunicorn's log object, then the log format of ``AGENT_REGISTRY_LOG_FORMAT``."""

    def setup(self, cfg: Config) -> None:
        super().setup(cfg)
        # gunicorn_settings has already refused an invalid value, naming the variable.
        log_format = parse_log_format(os.environ.get("AGENT_REGISTRY_LOG_FORMAT", "text"))
        logging.config.dictConfig(logging_config(log_format, cfg.loglevel))
