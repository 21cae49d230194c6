"""How the server's log lines look: gunicorn applies this in the master and every worker.

The dictionary is gunicorn's ``logconfig_dict`` (set in ``gunicorn_settings``): gunicorn
runs it through ``logging.config.dictConfig`` when it sets up its own log, before its
first line, and again on a reload, so the master and the workers it forks log alike.

- ``text`` (the default): gunicorn keeps its own lines (``[date] [pid] [LEVEL] message``)
  and the app's loggers write ``date [pid] [LEVEL] logger: message``, as before.
- ``json``: every line, gunicorn's included, is one JSON object with ``time`` (ISO 8601,
  UTC), ``level``, ``logger``, ``message``, ``process`` and the fields the log call passed
  (``agent_id``, ``command_id``, the access log's ``route``, ``status``...); a traceback is
  the ``exc_info`` field of the same line.
"""

from __future__ import annotations

from typing import Any

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
    """gunicorn's ``logconfig_dict`` for ``AGENT_REGISTRY_LOG_FORMAT`` and ``_LOG_LEVEL``.

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
        # In text, gunicorn's own handlers stay (its format, and --error-logfile works).
        loggers["gunicorn.error"] = logger(level)
        loggers["gunicorn.access"] = logger("INFO")
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
