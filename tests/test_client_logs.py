"""What `trainyard status` says a failed task died of, read from its structured task log."""
from trainyard.client.logs import failure_line


def _error(exc_type: str, exc_value: str) -> dict:
    return {"event": "Task failed with exception", "level": "error",
            "error_detail": [{"exc_type": exc_type, "exc_value": exc_value}]}


def test_the_task_runner_failing_to_report_a_cancelled_runs_state_is_not_the_reason():
    entries = [
        {"event": "starting", "level": "info"},
        _error("TrainerStopped", "trainer 'digits-cnn' was stopped: its task was killed"),
        _error("AirflowRuntimeError", "API_SERVER_ERROR: {'status_code': 409, 'message': 'Server returned error'}"),
    ]
    assert failure_line(entries) == "TrainerStopped: trainer 'digits-cnn' was stopped: its task was killed"


def test_a_reporting_error_alone_is_still_shown():
    assert failure_line([_error("AirflowRuntimeError", "API_SERVER_ERROR: 500")]) == "AirflowRuntimeError: API_SERVER_ERROR: 500"
