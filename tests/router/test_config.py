"""The ``router:`` section: what a bad file is told, and that it stops start-up."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from escalator.router.config import RouterConfig, load_config
from escalator.router.main import SPEC
from escalator.router.settings import RouterSettings
from escalator.shared.app import create_app
from escalator.shared.config import ConfigError
from tests.router.factories import TWO_LEVELS, write_config
from tests.support import Env

REPO_CONFIG = Path(__file__).parents[2] / "config" / "escalator.yaml"


def broken(change: Any) -> dict[str, Any]:
    router = copy.deepcopy(TWO_LEVELS)
    change(router)
    return router


@pytest.mark.parametrize(("router", "message"), [
    (broken(lambda r: r["escalation_paths"][0]["levels"].append(
        {"name": "L3", "team": "nope", "kind": "hierarchical"})),
     "escalation path 'std' level 2 ('L3') names unknown team 'nope'"),
    (broken(lambda r: r["agents"][1].update(team="ghosts")),
     "agent 'a1' names unknown team 'ghosts'"),
    (broken(lambda r: r["teams"].append({"id": "l1", "name": "Again"})),
     "team id 'l1' is used 2 times"),
    (broken(lambda r: r["escalation_paths"].append(
        {"id": "vip", "name": "VIP", "default": True, "levels": [{"name": "L1", "team": "l1"}]})),
     "exactly one escalation path must be the default (found 2: std, vip)"),
    (broken(lambda r: r["escalation_paths"][0].update(default=False)),
     "exactly one escalation path must be the default (found 0)"),
    (broken(lambda r: r["escalation_paths"][0]["levels"][0].update(kind="sideways")),
     "router.escalation_paths.0.levels.0.kind"),
    (broken(lambda r: r["escalation_paths"][0]["levels"].append(
        {"name": "L3", "role": "executive"})),
     "escalation path 'std' level 2 ('L3') is empty: no agent matches its target"),
    (broken(lambda r: r["escalation_paths"][0]["levels"].append({"name": "L3"})),
     "escalation path 'std' level 2 ('L3') names no target (team, role or agents)"),
    (broken(lambda r: r["escalation_paths"][0]["levels"].append(
        {"name": "L3", "agents": ["zed"]})),
     "escalation path 'std' level 2 ('L3') names unknown agent 'zed'"),
    (broken(lambda r: r.update(path_rules=[{"id": "vip", "path": "gold",
                                            "match": {"tier": "enterprise"}}])),
     "path rule 'vip' names unknown escalation path 'gold'"),
    (broken(lambda r: r["teams"][0].update(lead="nobody")),
     "team 'l1' names unknown lead agent 'nobody'"),
    (broken(lambda r: r["agents"][1].update(timezone="Mars/Olympus")),
     "router.agents.1.timezone: unknown IANA time zone 'Mars/Olympus'"),
    (broken(lambda r: r["agents"][1].update(shifts=[{"days": ["funday"], "start": "09:00",
                                                     "end": "17:00"}])),
     "router.agents.1.shifts.0.days.0"),
    (broken(lambda r: r["agents"][1].update(shifts=[{"days": ["mon"], "start": "09:00Z",
                                                     "end": "17:00"}])),
     "router.agents.1.shifts.0.start: a time of day in the zone given beside it: drop the "
     "UTC offset"),
    (broken(lambda r: r["agents"][1].update(max_open_ticket=3)),
     "router.agents.1.max_open_ticket: Extra inputs are not permitted"),
])
def test_invalid_section_names_the_entry(tmp_path: Path, router: dict[str, Any],
                                         message: str) -> None:
    settings = RouterSettings(config_file=write_config(tmp_path, router))
    with pytest.raises(ConfigError, match="invalid config file") as caught:
        load_config(settings)
    assert message in str(caught.value)


def test_repository_config_is_valid() -> None:
    config = load_config(RouterSettings(config_file=REPO_CONFIG))
    assert [p.id for p in config.escalation_paths if p.default] == ["standard"]
    assert config.path_rules == []  # every new field is optional


def test_full_model_round_trips() -> None:
    """Every field the model knows, in one valid section."""
    router = copy.deepcopy(TWO_LEVELS)
    router["teams"][0].update(lead="a1", skills=["Billing"], department="support")
    router["agents"][1].update(
        role="supervisor", skills=["billing"], languages=["pt", "en"], timezone="Europe/Lisbon",
        shifts=[{"days": ["mon", "tue"], "start": "22:00", "end": "06:00"}], chat_handle="@bob")
    router["escalation_paths"][0].update(repeat=2, on_empty="skip")
    router["escalation_paths"][0]["levels"][0].update(strategy="round_robin",
                                                      ack_timeout_seconds=300)
    router["escalation_paths"][0]["levels"].append(
        {"name": "Named", "agents": ["b1"], "executive": True, "kind": "hierarchical"})
    router["path_rules"] = [{"id": "pt", "path": "std",
                             "match": {"language": "PT", "severity": ["critical", "high"],
                                       "executive": False}}]
    config = RouterConfig.model_validate(router)
    assert config.teams[0].skills == ["billing"]
    assert config.path_rules[0].match.language == ["pt"]
    assert str(config.agents[1].shifts[0].end) == "06:00:00"


def test_no_file_means_an_empty_roster() -> None:
    assert load_config(RouterSettings(config_file=None)) == RouterConfig()


async def test_invalid_file_refuses_to_start(env: Env, tmp_path: Path) -> None:
    bad = broken(lambda r: r["agents"][1].update(team="ghosts"))
    app = create_app(SPEC, env.settings(RouterSettings, config_file=write_config(tmp_path, bad)))
    try:
        with pytest.raises(ConfigError, match="agent 'a1' names unknown team 'ghosts'"):
            async with app.router.lifespan_context(app):
                pytest.fail("the service started with an invalid configuration")
    finally:
        # Start-up stopped before the app's own shutdown could release the database.
        await app.state.runtime.engine.dispose()
