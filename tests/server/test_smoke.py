from agent_core.client import APIClient


def test_hello_answers_with_name_and_version(api: APIClient):
    assert api.hello()["name"] == "agent"


def test_a_created_run_is_in_the_queue_for_an_agent_without_labels(api: APIClient, make_flow):
    import pendulum

    flow = make_flow()
    run = api.create_flow_run(flow_id=flow["id"])
    queued = api.get_queue([], pendulum.now("UTC"))
    assert [r["id"] for r in queued] == [run["id"]]
