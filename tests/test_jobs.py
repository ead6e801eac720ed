"""unmask.jobs: named jobs with dependencies in spawned worker processes (what `unmask demo` runs on)."""
from __future__ import annotations

import math
import operator

import pytest

from unmask.jobs import JobError, Jobs


@pytest.mark.parametrize("workers", [0, 2])
def test_jobs_wait_for_each_other_relay_lines_and_pass_failures_on(workers):
    logged: list[str] = []
    jobs = Jobs(workers, logged.append)
    jobs.add("a", operator.add, 1, 2)
    jobs.add("say", print, "hello from a job", after=("a",))
    jobs.add("bad", math.sqrt, -1.0)
    jobs.add("after bad", operator.add, 1, 1, after=("bad",))
    with pytest.raises(ValueError, match="already"):
        jobs.add("a", operator.add, 0, 0)
    with pytest.raises(ValueError, match="unknown job"):
        jobs.add("z", operator.add, 0, 0, after=("nope",))
    assert jobs.names() == ["a", "say", "bad", "after bad"]
    assert jobs.result("a") == 3 and jobs.result("say") is None
    with pytest.raises(ValueError, match="math domain error"):
        jobs.result("bad")
    with pytest.raises(JobError if workers else ValueError):  # a dependent job never runs
        jobs.result("after bad")
    with pytest.raises(ValueError):  # close() waits for everything and raises the first failure
        jobs.close()
    if workers:  # a worker's output comes back line by line, named after its job
        assert "[say] hello from a job" in logged
