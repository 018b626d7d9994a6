"""The baseline for bench/pipeline_overhead.py: two tasks that do nothing, so its wall time through
`dag.test()` is Airflow's own cost of running a DAG in a fresh process."""
from __future__ import annotations

from airflow.sdk import dag, task


@task
def first() -> int:
    return 1


@task
def second(value: int) -> int:
    return value + 1


@dag(dag_id="trivial_two_tasks", schedule=None, catchup=False)
def trivial_two_tasks():
    second(first())


trivial_two_tasks_dag = trivial_two_tasks()
