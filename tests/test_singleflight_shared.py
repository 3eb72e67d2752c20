"""SingleFlight.do_shared: shared work stops only when every caller has gone; a waiting caller that goes away
stops waiting; a caller joining work that just stopped runs it again."""

from __future__ import annotations

import threading
import time

import pytest

from venvsmith.core.errors import Cancelled
from venvsmith.core.singleflight import SingleFlight


def test_work_stops_only_when_every_caller_is_gone():
    flight: SingleFlight[str] = SingleFlight()
    leader_active, follower_active = threading.Event(), threading.Event()
    leader_active.set()
    follower_active.set()
    started, stops = threading.Event(), []

    def work(should_stop) -> str:
        started.set()
        for _ in range(400):
            if should_stop():
                stops.append(True)
                raise Cancelled("stopped")
            time.sleep(0.005)
        return "done"

    results: dict = {}
    leader = threading.Thread(target=lambda: results.setdefault("leader", flight.do_shared("k", work,
                                                                                          leader_active.is_set)))
    leader.start()
    started.wait(5)
    follower = threading.Thread(target=lambda: results.setdefault("follower", flight.do_shared(
        "k", work, follower_active.is_set)))
    follower.start()
    time.sleep(0.1)
    leader_active.clear()  # the leader's caller goes away: the follower still waits, the work goes on
    follower.join(10)
    leader.join(10)
    assert results["follower"] == ("done", True) and not stops


def test_a_waiting_caller_that_goes_away_stops_waiting_and_the_last_one_stops_the_work():
    flight: SingleFlight[str] = SingleFlight()
    active = threading.Event()
    active.set()
    started = threading.Event()
    stopped = threading.Event()

    def work(should_stop) -> str:
        started.set()
        while not should_stop():
            time.sleep(0.005)
        stopped.set()
        raise Cancelled("stopped")

    leader = threading.Thread(target=lambda: pytest.raises(Cancelled, flight.do_shared, "k", work, active.is_set))
    leader.start()
    started.wait(5)
    waiter_active = threading.Event()
    waiter_active.set()
    outcome: list = []

    def wait() -> None:
        try:
            flight.do_shared("k", work, waiter_active.is_set)
        except Cancelled:
            outcome.append("cancelled")

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.1)
    waiter_active.clear()
    waiter.join(5)
    assert outcome == ["cancelled"] and not stopped.is_set()  # the leader's caller still waits
    active.clear()
    assert stopped.wait(5)
    leader.join(5)
    assert flight.in_flight() == 0


def test_a_caller_sharing_work_that_ran_out_of_the_leaders_deadline_runs_it_again():
    """The work ran within its first caller's deadline; another caller's deadline may be later."""
    from venvsmith.core.errors import DeadlineExceeded

    flight: SingleFlight[str] = SingleFlight()
    joined, runs = threading.Event(), []

    def leaders_work(should_stop) -> str:
        runs.append("leader")
        joined.wait(5)
        time.sleep(0.1)  # the follower is waiting on this flight
        raise DeadlineExceeded("the deadline passed before a resolution was found")

    def followers_work(should_stop) -> str:
        runs.append("follower")
        return "answer"

    outcome: dict = {}

    def leader() -> None:
        with pytest.raises(DeadlineExceeded):
            flight.do_shared("k", leaders_work)
        outcome["leader"] = "deadline"

    first = threading.Thread(target=leader)
    first.start()
    while not runs:
        time.sleep(0.01)
    follower = threading.Thread(target=lambda: outcome.setdefault("follower", flight.do_shared("k", followers_work)))
    follower.start()
    time.sleep(0.05)
    joined.set()
    first.join(5)
    follower.join(5)
    assert outcome == {"leader": "deadline", "follower": ("answer", False)}
    assert runs == ["leader", "follower"]


def test_nested_shared_work_of_one_single_flight_checks_its_callers_without_deadlock():
    """A flight nested in another of the same SingleFlight, whose caller is the outer flight (active while the
    outer one should not stop), can evaluate should_stop: the callers' tests run outside the flight lock."""
    flights: SingleFlight[bool] = SingleFlight()
    seen: list[bool] = []

    def outer(outer_stop):
        def inner(inner_stop):
            return inner_stop()

        result, _ = flights.do_shared("inner", inner, lambda: not outer_stop())
        seen.append(result)
        return result

    worker = threading.Thread(target=lambda: flights.do_shared("outer", outer, lambda: True), daemon=True)
    worker.start()
    worker.join(30)  # a generous bound: it takes microseconds, a deadlock never ends
    assert not worker.is_alive(), "deadlock: should_stop held the flight lock while calling a caller's test"
    assert seen == [False]
