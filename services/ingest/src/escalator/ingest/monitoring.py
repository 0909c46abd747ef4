"""Proactive escalation: Prometheus Alertmanager (webhook v4) and PagerDuty Events v2.

One alert is one ticket: the Alertmanager ``fingerprint`` / PagerDuty ``dedup_key`` is
the conversation id. Firing (trigger) opens the ticket or updates it (severity,
description); firing again after a resolve reopens it; resolved resolves it; a
PagerDuty ``acknowledge`` acknowledges it. The customer affected is the ``customer``
(or ``account_id``) label / custom detail when present, else the monitoring system.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from escalator.ingest.inbound import CustomerRef, Inbound
from escalator.ingest.textutil import clean
from escalator.shared.config import Timestamp
from escalator.shared.events import Severity

Label = Annotated[str, StringConstraints(max_length=2_000)]


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, Label] = Field(max_length=100)
    annotations: dict[str, Label] = Field(default={}, max_length=100)
    startsAt: Timestamp  # noqa: N815 - Alertmanager's field names
    endsAt: str | None = None  # noqa: N815 - "0001-01-01T00:00:00Z" while firing
    generatorURL: str | None = None  # noqa: N815
    fingerprint: Annotated[str, StringConstraints(min_length=1, max_length=100)]


class AlertmanagerPayload(BaseModel):
    """Alertmanager's webhook body, version 4 (one group of alerts)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "version": "4", "groupKey": "{}:{alertname=\"CheckoutErrorRate\"}",
        "truncatedAlerts": 0, "status": "firing", "receiver": "escalator",
        "groupLabels": {"alertname": "CheckoutErrorRate"},
        "commonLabels": {"alertname": "CheckoutErrorRate", "severity": "critical",
                         "customer": "acme"},
        "commonAnnotations": {"summary": "Checkout 5xx above 20%"},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "CheckoutErrorRate", "severity": "critical",
                       "customer": "acme", "region": "eu-west-1"},
            "annotations": {"summary": "Checkout 5xx above 20% in eu-west-1",
                            "description": "32% of checkout requests fail with 502."},
            "startsAt": "2026-11-23T07:58:30Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=...",
            "fingerprint": "c7a1f2e3d4b5a697"}],
    }]})

    version: Literal["4"]
    groupKey: str = Field(max_length=2_000)  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str = Field(max_length=200)
    alerts: list[Alert] = Field(min_length=1, max_length=1_000)
    commonLabels: dict[str, Label] = {}  # noqa: N815
    externalURL: str | None = None  # noqa: N815


AM_SEVERITY = {"critical": Severity.critical, "page": Severity.critical, "error": Severity.high,
               "high": Severity.high, "warning": Severity.high, "medium": Severity.medium,
               "info": Severity.low, "low": Severity.low, "none": Severity.low}


def _monitor_customer(account: str | None, source: str) -> CustomerRef:
    if account:
        return CustomerRef(account_id=account, name=account)
    return CustomerRef(email=f"{source}@monitoring.escalator.example",
                       name=f"Monitoring ({source})")


def alertmanager_inbound(payload: AlertmanagerPayload) -> list[Inbound]:
    events = []
    for alert in payload.alerts:
        labels = alert.labels
        name = labels.get("alertname", "alert")
        summary = alert.annotations.get("summary") or name
        description = alert.annotations.get("description") or summary
        label_text = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        events.append(Inbound(
            channel="monitoring", external_id=f"alertmanager:{alert.fingerprint}",
            subject=clean(f"[{name}] {summary}")[:500],
            description=clean(f"{description}\n\nlabels: {label_text}"),
            severity=AM_SEVERITY.get(labels.get("severity", "").lower()),
            category=labels.get("category"), author="alertmanager",
            mode="alert" if alert.status == "firing" else "resolve",
            customer=_monitor_customer(labels.get("customer") or labels.get("account_id"),
                                       "alertmanager"),
            details={"source": "alertmanager", "fingerprint": alert.fingerprint,
                     "generator_url": alert.generatorURL, "labels": dict(labels),
                     "starts_at": alert.startsAt.isoformat()},
        ))
    return events


class PagerDutyPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, max_length=1024)
    source: str = Field(min_length=1, max_length=255)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: Timestamp | None = None
    component: str | None = Field(default=None, max_length=255)
    group: str | None = Field(default=None, max_length=255)
    class_: str | None = Field(default=None, alias="class", max_length=255)
    custom_details: dict[str, Any] | None = None


class PagerDutyEvent(BaseModel):
    """PagerDuty Events API v2 (``/v2/enqueue``) body."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "routing_key": "R0UT1NGKEY0123456789ABCDEFGHIJKL", "event_action": "trigger",
        "dedup_key": "db-primary-replication-lag",
        "payload": {"summary": "Replication lag 900s on db-primary", "source": "db-primary-1",
                    "severity": "critical", "component": "postgres", "group": "storage",
                    "class": "replication",
                    "custom_details": {"lag_seconds": 900, "customer": "acme"}},
        "client": "Grafana", "client_url": "https://grafana.example/d/db"}]})

    routing_key: str = Field(min_length=1, max_length=64)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, min_length=1, max_length=255)
    payload: PagerDutyPayload | None = None
    client: str | None = Field(default=None, max_length=255)
    client_url: str | None = Field(default=None, max_length=2_000)
    links: list[dict[str, Any]] = Field(default=[], max_length=50)
    images: list[dict[str, Any]] = Field(default=[], max_length=50)


PD_SEVERITY = {"critical": Severity.critical, "error": Severity.high,
               "warning": Severity.medium, "info": Severity.low}


def pagerduty_inbound(event: PagerDutyEvent) -> Inbound:
    """``dedup_key`` is required except on trigger, where PagerDuty derives one."""
    if event.event_action == "trigger" and event.payload is None:
        raise ValueError("payload: required for trigger")
    dedup = event.dedup_key
    if dedup is None:
        if event.event_action != "trigger":
            raise ValueError("dedup_key: required for acknowledge and resolve")
        assert event.payload is not None
        dedup = hashlib.sha256(f"{event.payload.source}|{event.payload.summary}".encode()
                               ).hexdigest()[:32]
    p = event.payload
    details = (p.custom_details if p else None) or {}
    account = details.get("customer") or details.get("account_id")
    mode = {"trigger": "alert", "acknowledge": "acknowledge", "resolve": "resolve"}
    return Inbound(
        channel="monitoring", external_id=f"pagerduty:{dedup}",
        subject=clean(p.summary)[:500] if p else dedup,
        description=clean(f"{p.summary}\nsource: {p.source}"
                          + (f"\ncomponent: {p.component}" if p.component else "")) if p
        else dedup,
        severity=PD_SEVERITY[p.severity] if p else None, category=p.group if p else None,
        mode=mode[event.event_action], author=event.client or "pagerduty",  # type: ignore[arg-type]
        customer=_monitor_customer(str(account) if account else None, "pagerduty"),
        details={"source": "pagerduty", "dedup_key": dedup, "client_url": event.client_url},
    )
