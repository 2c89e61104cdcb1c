"""Airflow DAG: sync billing usage to Zuora with dinmo every day.

`dinmo run` exits 0 when every new row was delivered, 1 on an error (nothing unacknowledged
was committed; the task fails and Airflow retries it), and 3 when the run finished but Zuora
refused some rows. Exit 3 is a warning, not a failure: the refused rows are kept with their
reasons in the state store and offered again by the next run, so the task succeeds, logs a
warning, and pushes target/run_results.json to XCom for alerting downstream.

Settings (environment): DINMO_BIN (the dinmo binary), DINMO_PROJECT (the project folder),
DINMO_SELECT (selectors, default "tag:billing").
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import DAG, BaseOperator
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.models import BaseOperator
from airflow.exceptions import AirflowException

REJECTED_ROWS = 3


class DinmoRunOperator(BaseOperator):
    """Runs `dinmo run`; exit 3 (rows refused by Zuora) is a warning."""

    def __init__(self, *, project: str, select: str | None = None, dinmo: str = "dinmo", **kwargs):
        super().__init__(**kwargs)
        self.project = project
        self.select = select
        self.dinmo = dinmo

    def execute(self, context):
        command = [self.dinmo, "run", "--project", self.project, "--log-format", "json", "--wait", "600"]
        if self.select:
            command += ["--select", self.select]
        self.log.info("running %s", " ".join(command))
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        self.log.info("dinmo report:\n%s", finished.stdout)
        for line in finished.stderr.splitlines():
            self.log.info("dinmo: %s", line)
        results_path = Path(self.project) / "target" / "run_results.json"
        results = json.loads(results_path.read_text()) if results_path.exists() else {}
        if finished.returncode == REJECTED_ROWS:
            rejected = sum(r.get("counts", {}).get("rejected", 0) for r in results.get("results", []))
            self.log.warning("dinmo: %s row(s) were refused by Zuora; they are retried next run (see run_results.json)", rejected)
        elif finished.returncode != 0:
            raise AirflowException(f"dinmo run failed with exit {finished.returncode}: {finished.stderr.strip()[-2000:]}")
        return results


with DAG(
    dag_id="dinmo_billing",
    start_date=datetime(2026, 11, 1),
    schedule="@daily",
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["billing"],
) as dag:
    DinmoRunOperator(
        task_id="sync_usage_to_zuora",
        project=os.environ.get("DINMO_PROJECT", "/opt/billing"),
        select=os.environ.get("DINMO_SELECT", "tag:billing"),
        dinmo=os.environ.get("DINMO_BIN", "dinmo"),
    )
