"""The review workflow: draft -> in_review -> completed, action items, and the change log.

Rules (each refusal is a problem naming the field, and nothing is stored):

- moves allowed: draft -> in_review, in_review -> draft, in_review -> completed;
- a completed review is final: its fields no longer change (its action items still do,
  since the work they track happens after the review);
- completion needs a root cause (a category of the configured taxonomy plus text) and at
  least one action item or the explicit ``no_action_items``;
- every change is one ``postmortem_changes`` row: who (the API key's name), when, the
  field, its old and new value.

Completion records the reviewer and time and emits ``postmortem.completed`` in the same
transaction.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from escalator.postmortem.config import config_of
from escalator.postmortem.models import ActionItem, Change, Postmortem
from escalator.postmortem.schemas import (
    UNFINISHED,
    ActionItemIn,
    ActionItemOut,
    ActionItemPatch,
    PostmortemPatch,
    PostmortemStatus,
)
from escalator.shared.events import PostmortemCompleted, utcnow
from escalator.shared.outbox import emit
from escalator.shared.problems import Problem

SOURCE = "/escalator/postmortem"

_MOVES = {
    (PostmortemStatus.draft, PostmortemStatus.in_review),
    (PostmortemStatus.in_review, PostmortemStatus.draft),
    (PostmortemStatus.in_review, PostmortemStatus.completed),
}
_TEXT_FIELDS = ("summary", "customer_impact", "went_well", "went_badly", "concessions")


def _invalid(field: str, message: str, status: int = 422) -> Problem:
    """A problem that names the offending field the way request validation does."""
    return Problem(status, "Unprocessable Content" if status == 422 else "Conflict", message,
                   errors=[{"field": f"body.{field}", "message": message}])


def _record(session: AsyncSession, postmortem_id: str, actor: str, target: str, field: str,
            old: Any, new: Any) -> None:
    session.add(Change(postmortem_id=postmortem_id, at=utcnow(), actor=actor, target=target,
                       field=field, old=json.dumps(old, default=str),
                       new=json.dumps(new, default=str)))


async def _locked(session: AsyncSession, postmortem_id: str) -> Postmortem:
    """The row, locked on PostgreSQL so two concurrent edits apply one after the other."""
    postmortem = await session.scalar(
        select(Postmortem).where(Postmortem.id == postmortem_id).with_for_update()
    )
    if postmortem is None:
        raise Problem(404, "Not Found", f"no post-mortem {postmortem_id}")
    return postmortem


async def update(session: AsyncSession, postmortem_id: str, patch: PostmortemPatch, *,
                 actor: str) -> Postmortem:
    """Apply the fields sent, then the status move (so one PATCH can fill and complete)."""
    postmortem = await _locked(session, postmortem_id)
    sent = patch.model_fields_set
    current = PostmortemStatus(postmortem.status)
    editing = sent - {"status"}
    if current is PostmortemStatus.completed and (
        editing or (patch.status is not None and patch.status is not current)
    ):
        raise _invalid("status", "the review is completed; it no longer changes", 409)
    changes: dict[str, tuple[Any, Any]] = {}
    for name in _TEXT_FIELDS:
        if name in sent:
            changes[name] = (getattr(postmortem, name), getattr(patch, name))
    if "root_cause" in sent:
        taxonomy = config_of(session).root_causes
        if patch.root_cause is not None and patch.root_cause.category not in taxonomy:
            raise _invalid("root_cause.category",
                           f"must be one of: {', '.join(taxonomy)}")
        old = ({"category": postmortem.root_cause_category, "text": postmortem.root_cause_text}
               if postmortem.root_cause_category else None)
        changes["root_cause"] = (old, patch.root_cause.model_dump() if patch.root_cause else None)
    if "improvements" in sent:
        changes["improvements"] = (json.loads(postmortem.improvements or "{}"),
                                   patch.improvements.model_dump() if patch.improvements else {})
    if "no_action_items" in sent:
        changes["no_action_items"] = (postmortem.no_action_items, bool(patch.no_action_items))
    for name, (old, new) in changes.items():
        if old == new:
            continue
        _apply(postmortem, name, new)
        _record(session, postmortem.id, actor, "postmortem", name, old, new)
    if patch.status is not None and patch.status is not current:
        await _move(session, postmortem, current, patch.status, actor=actor)
    postmortem.updated_at = utcnow()
    return postmortem


def _apply(postmortem: Postmortem, name: str, value: Any) -> None:
    if name == "root_cause":
        postmortem.root_cause_category = value["category"] if value else None
        postmortem.root_cause_text = value["text"] if value else None
    elif name == "improvements":
        postmortem.improvements = json.dumps(value)
    else:
        setattr(postmortem, name, value)


async def _move(session: AsyncSession, postmortem: Postmortem, current: PostmortemStatus,
                target: PostmortemStatus, *, actor: str) -> None:
    if (current, target) not in _MOVES:
        raise _invalid("status", f"cannot move from {current} to {target}", 409)
    if target is PostmortemStatus.completed:
        if not postmortem.root_cause_category or not postmortem.root_cause_text:
            raise _invalid("root_cause", "completion needs a root cause category and text")
        items = await session.scalar(select(func.count()).select_from(ActionItem)
                                     .where(ActionItem.postmortem_id == postmortem.id))
        if not items and not postmortem.no_action_items:
            raise _invalid("action_items", "completion needs at least one action item "
                           "or no_action_items: true")
        postmortem.reviewer = actor
        postmortem.completed_at = utcnow()
        emit(session, PostmortemCompleted(ticket_id=postmortem.ticket_id,
                                          postmortem_id=postmortem.id, reviewer=actor,
                                          root_cause_category=postmortem.root_cause_category),
             source=SOURCE, time=postmortem.completed_at)
    _record(session, postmortem.id, actor, "postmortem", "status", current.value, target.value)
    postmortem.status = target.value


def item_out(item: ActionItem) -> ActionItemOut:
    out = ActionItemOut.model_validate(item)
    out.overdue = item.status in UNFINISHED and item.due_date < utcnow().date()
    return out


async def items(session: AsyncSession, postmortem_id: str) -> list[ActionItem]:
    rows = await session.scalars(select(ActionItem)
                                 .where(ActionItem.postmortem_id == postmortem_id)
                                 .order_by(ActionItem.created_at, ActionItem.id))
    return list(rows)


async def add_item(session: AsyncSession, postmortem_id: str, body: ActionItemIn, *,
                   actor: str, idempotency_key: str | None = None) -> ActionItem:
    """Create an item; a retry with the same ``idempotency_key`` returns the first one.

    The post-mortem row lock serialises creates on PostgreSQL, and the unique
    (post-mortem, key) constraint is the last word everywhere.
    """
    postmortem = await _locked(session, postmortem_id)
    if idempotency_key is not None:
        earlier = await session.scalar(select(ActionItem).where(
            ActionItem.postmortem_id == postmortem.id,
            ActionItem.idempotency_key == idempotency_key))
        if earlier is not None:
            return earlier
    now = utcnow()
    item = ActionItem(id=str(uuid.uuid4()), postmortem_id=postmortem.id, title=body.title,
                      owner=body.owner, due_date=body.due_date, status=body.status.value,
                      created_at=now, updated_at=now, idempotency_key=idempotency_key)
    session.add(item)
    _record(session, postmortem.id, actor, f"action_item:{item.id}", "created", None,
            body.model_dump(mode="json"))
    return item


async def update_item(session: AsyncSession, postmortem_id: str, item_id: str,
                      patch: ActionItemPatch, *, actor: str) -> ActionItem:
    await _locked(session, postmortem_id)
    item = await session.get(ActionItem, item_id)
    if item is None or item.postmortem_id != postmortem_id:
        raise Problem(404, "Not Found", f"no action item {item_id} on post-mortem "
                      f"{postmortem_id}")
    for name in patch.model_fields_set:
        new = getattr(patch, name)
        if new is None:
            raise _invalid(name, "may not be null")
        new = new.value if name == "status" else new
        old = getattr(item, name)
        if old == new:
            continue
        setattr(item, name, new)
        _record(session, postmortem_id, actor, f"action_item:{item.id}", name, old, new)
    item.updated_at = utcnow()
    return item


async def changes(session: AsyncSession, postmortem_id: str) -> list[Change]:
    rows = await session.scalars(select(Change).where(Change.postmortem_id == postmortem_id)
                                 .order_by(Change.id))
    return list(rows)
