"""Run logs: batched writes, reads in order from a cursor, paging."""

import pendulum
import pytest
import requests

from agent_core.errors import BadRequest, NotFound


@pytest.fixture
def run(api, make_flow):
    return api.create_flow_run(flow_id=make_flow()["id"])


def entries(run_id, messages, **extra):
    return [{"flow_run_id": run_id, "message": m, **extra} for m in messages]


def read_all(api, run_id, limit=1000):
    out, cursor = [], None
    while True:
        items, cursor = api.read_logs(run_id, cursor, limit=limit)
        if not items:
            return out
        out += items


def test_a_batch_is_written_in_one_request_and_read_back_in_order(api_server, api, run):
    messages = [f"line {i}" for i in range(50)]

    response = requests.post(f"{api_server.url}/api/logs", json={"logs": entries(run["id"], messages)}, timeout=10)

    assert (response.status_code, response.json()) == (201, {"written": 50})
    assert [e["message"] for e in read_all(api, run["id"])] == messages


def test_level_name_and_timestamp_are_kept(api, run):
    stamp = "2030-01-01T12:00:00+00:00"
    api.write_logs(entries(run["id"], ["boom"], level="ERROR", name="agent.deploy", timestamp=stamp))

    (entry,) = read_all(api, run["id"])

    assert (entry["level"], entry["name"]) == ("ERROR", "agent.deploy")
    assert pendulum.parse(entry["timestamp"]) == pendulum.parse(stamp)


def test_an_entry_without_timestamp_gets_the_time_of_writing(api, run):
    before = pendulum.now("UTC")
    api.write_logs(entries(run["id"], ["hello"]))
    after = pendulum.now("UTC")

    (entry,) = read_all(api, run["id"])

    assert before <= pendulum.parse(entry["timestamp"]) <= after
    assert entry["level"] == "INFO"


def test_logs_are_read_in_write_order_not_timestamp_order(api, run):
    api.write_logs(entries(run["id"], ["late"], timestamp="2030-01-01T12:00:00Z"))
    api.write_logs(entries(run["id"], ["early"], timestamp="2020-01-01T12:00:00Z"))

    assert [e["message"] for e in read_all(api, run["id"])] == ["late", "early"]


def test_reading_from_a_cursor_returns_only_newer_lines(api, run):
    api.write_logs(entries(run["id"], ["one", "two"]))
    _, cursor = api.read_logs(run["id"])
    api.write_logs(entries(run["id"], ["three"]))

    items, _ = api.read_logs(run["id"], cursor)

    assert [e["message"] for e in items] == ["three"]


def test_the_cursor_at_the_end_stays_usable_for_following(api, run):
    api.write_logs(entries(run["id"], ["one"]))
    _, cursor = api.read_logs(run["id"])

    items, same = api.read_logs(run["id"], cursor)

    assert items == []
    assert same == cursor


def test_a_run_without_logs_still_gives_a_cursor(api, run):
    items, cursor = api.read_logs(run["id"])

    api.write_logs(entries(run["id"], ["first"]))

    assert items == []
    assert [e["message"] for e in api.read_logs(run["id"], cursor)[0]] == ["first"]


def test_logs_are_read_in_pages_of_the_limit(api, run):
    api.write_logs(entries(run["id"], [str(i) for i in range(10)]))

    pages, cursor = [], None
    while True:
        items, cursor = api.read_logs(run["id"], cursor, limit=3)
        if not items:
            break
        pages.append([e["message"] for e in items])

    assert pages == [["0", "1", "2"], ["3", "4", "5"], ["6", "7", "8"], ["9"]]


def test_a_long_log_written_by_the_client_in_several_batches_reads_back_whole(api, run):
    messages = [f"line {i}" for i in range(2500)]  # the client sends batches of 1000

    api.write_logs(entries(run["id"], messages))

    assert [e["message"] for e in read_all(api, run["id"], limit=700)] == messages


def test_one_batch_may_hold_lines_of_several_runs(api, make_flow):
    flow = make_flow()
    a, b = (api.create_flow_run(flow_id=flow["id"]) for _ in range(2))

    api.write_logs([*entries(a["id"], ["a1"]), *entries(b["id"], ["b1"]), *entries(a["id"], ["a2"])])

    assert [e["message"] for e in read_all(api, a["id"])] == ["a1", "a2"]
    assert [e["message"] for e in read_all(api, b["id"])] == ["b1"]


def test_reading_the_logs_of_an_unknown_run_is_not_found(api):
    with pytest.raises(NotFound):
        api.read_logs("00000000-0000-0000-0000-000000000000")


def test_writing_to_an_unknown_run_is_not_found_and_writes_nothing(api, run):
    batch = [*entries(run["id"], ["kept?"]), *entries("00000000-0000-0000-0000-000000000000", ["lost"])]

    with pytest.raises(NotFound) as caught:
        api.write_logs(batch)

    assert "flow_run_id" in caught.value.detail
    assert read_all(api, run["id"]) == []


def test_a_cursor_the_server_did_not_issue_is_a_bad_request(api, run):
    with pytest.raises(BadRequest) as caught:
        api.read_logs(run["id"], cursor="not-a-cursor")

    assert "cursor" in caught.value.detail


def test_an_empty_batch_is_a_bad_request(api_server):
    response = requests.post(f"{api_server.url}/api/logs", json={"logs": []}, timeout=10)

    assert response.status_code == 400
    assert "logs" in response.json()["detail"]


def test_an_unknown_level_is_a_bad_request(api, run):
    with pytest.raises(BadRequest) as caught:
        api.write_logs(entries(run["id"], ["x"], level="LOUD"))

    assert "logs" in caught.value.detail
