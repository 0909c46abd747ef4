"""Alert rules, their runbook, and the dashboard: checked against what the services export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "rules" / "escalator.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "escalator.json"
RUNBOOK = ROOT / "docs" / "runbook.md"


def promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus package "
                    "(scripts/ensure-tools.sh)")
    return tool


def exported_series() -> set[str]:
    """Every series name the five services can expose, read from their registries."""
    from prometheus_client import REGISTRY

    import escalator.ingest.main
    import escalator.notifier.main
    import escalator.postmortem.main
    import escalator.router.main
    import escalator.sla_timer.main  # noqa: F401 - importing registers the metrics

    names: set[str] = set()
    for family in REGISTRY.collect():
        suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count",
                    "_created"], "summary": ["_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def recorded() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bescalator[a-z0-9_:]*", expr))


def test_rules_pass_promtool_check_and_unit_tests() -> None:
    subprocess.run([promtool(), "check", "rules", str(RULES)], check=True, capture_output=True)
    result = subprocess.run([promtool(), "test", "rules", "escalator_test.yml"],
                            cwd=PROM / "tests", capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_and_a_runbook_entry() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    tests = (PROM / "tests" / "escalator_test.yml").read_text()
    runbook = RUNBOOK.read_text()
    for alert in alerts:
        name = alert["alert"]
        assert f"alertname: {name}" in tests, f"{name} has no promtool test"
        assert f"## {name}" in runbook, f"{name} has no runbook section"
        assert alert["annotations"]["runbook"] == f"docs/runbook.md#{name.lower()}"


def test_rules_and_dashboard_use_only_exported_metrics() -> None:
    known = exported_series() | recorded()
    groups = yaml.safe_load(RULES.read_text())["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        assert metric_names(rule["expr"]) <= known, rule.get("alert") or rule.get("record")
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        exprs = [target["expr"] for target in panel["targets"]]
        names = set().union(*(metric_names(e) for e in exprs))
        assert names or all("up{" in e for e in exprs), panel["title"]
        assert names <= known, f"{panel['title']}: {sorted(names - known)}"


def test_metric_names_follow_prometheus_conventions() -> None:
    from prometheus_client import REGISTRY

    exported_series()
    for family in REGISTRY.collect():
        if not family.name.startswith("escalator_"):
            continue
        assert family.documentation, f"{family.name} has no HELP text"
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_bytes", "_messages")), family.name
        labels = {label for sample in family.samples for label in sample.labels}
        assert not labels & {"ticket_id", "event_id", "id", "customer"}, family.name


def test_prometheus_config_loads_the_rules() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    result = subprocess.run([promtool(), "check", "config", "--syntax-only",
                             str(PROM / "prometheus.yml")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
