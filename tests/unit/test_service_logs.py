"""The services' logs: one JSON object per line in the files, readable lines for people."""

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from cairn_services.logs import LogFile, configure_logging, readable
from cairn_services.stack.log_files import write_lines

SECRET = 'pa"ss/wörd'


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """Each test configures logging; put back what this process had (the services
    running in its background threads keep logging)."""
    saved, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    yield
    structlog.configure(**saved)
    logging.getLogger().handlers = handlers


@pytest.fixture
def sink() -> io.StringIO:
    buffer = io.StringIO()
    configure_logging(buffer, secrets=[SECRET, None, ""], level=logging.INFO)
    return buffer


def test_files_get_json_lines_with_the_bound_context_and_no_secret(sink: io.StringIO) -> None:
    log = structlog.get_logger("t").bind(projector="main", schema="public")
    log.info("projector.started", seq=3, url=f"nats://cairn:{SECRET}@127.0.0.1:4222")
    log.debug("projector.batch_committed", n=10)  # below the level: dropped
    try:
        raise RuntimeError(f"cannot log in with {SECRET}")
    except RuntimeError:
        log.exception("projector.crashed")
    logging.getLogger("uvicorn.error").error("stdlib says %s", SECRET)

    lines = sink.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["event"] for r in records] == [
        "projector.started",
        "projector.crashed",
        "stdlib says ***",
    ]
    assert all(r["projector"] == "main" and r["schema"] == "public" for r in records[:2])
    assert records[0]["level"] == "info" and records[0]["seq"] == 3
    assert records[0]["timestamp"].endswith("Z")
    assert records[1]["exception"].startswith("Traceback (most recent call last)")
    assert "RuntimeError: cannot log in with ***" in records[1]["exception"]
    for line in lines:
        assert SECRET not in line and json.dumps(SECRET)[1:-1] not in line


def test_people_read_json_lines_as_console_lines_and_other_lines_as_they_are() -> None:
    line = json.dumps(
        {
            "event": "stack.started",
            "level": "warning",
            "timestamp": "2026-12-02T01:02:03Z",
            "part": "nats",
            "exception": "Traceback (most recent call last):\nValueError: x",
        }
    )
    shown = readable(line)
    assert shown.startswith("2026-12-02T01:02:03Z [warning  ] stack.started")
    assert "part=nats" in shown and shown.endswith("ValueError: x")
    for other in ("[1234] 2026/12/02 Server is ready", "{not json", '{"no": "event"}', ""):
        assert readable(other) == other

    out = io.StringIO()
    write_lines([("stack", line), ("nats", "Server is ready")], out, prefix=True, width=5)
    rows = out.getvalue().splitlines()
    assert rows[0].startswith("stack | 2026-12-02T01:02:03Z [warning  ] stack.started")
    assert rows[-2:] == ["stack | ValueError: x", "nats  | Server is ready"]


def test_the_terminal_copy_of_a_log_file_is_readable(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "logs" / "stack.log"
    echo = io.StringIO()
    file = LogFile(path, echo=echo)
    configure_logging(file, secrets=[SECRET])
    structlog.get_logger("t").info("stack.ending", part="nats", pid=7)
    assert json.loads(path.read_text())["event"] == "stack.ending"
    assert "[info     ] stack.ending" in echo.getvalue() and "{" not in echo.getvalue()
