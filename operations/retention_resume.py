"""Where retention's walks over attempts and events start: past the rows done with already.

So that an hourly run reads only the rows that aged since the last one (operations.retention).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection
from django.db.models import Model

from deliveries.models import Attempt
from webhooks.models import Event


@dataclass(frozen=True)
class WalkResume:
    """Where a walk over `model` starts: every row up to the remembered id is done with.

    So that an hourly run reads only the rows that aged since the last one, not all the kept
    ones again. The id is remembered with the row's age: if that row is gone or different (the
    database was restored or recreated), or `timeout` seconds went by, the walk starts from the
    first row again.
    """

    name: str
    model: type[Model]
    age_field: str
    timeout: float | None

    def _key(self) -> str:
        return f"hookline:retention:{connection.settings_dict['NAME']}:{self.name}"

    def start(self) -> int:
        remembered = cache.get(self._key())
        if not remembered:
            return 0
        row_id, age = remembered
        if not self.model._default_manager.filter(id=row_id, **{self.age_field: age}).exists():
            return 0
        return row_id

    def remember(self, *, last_id: int) -> None:
        """Remember the walk as done up to `last_id`: the last row there still is, which the
        next start looks for."""
        last_kept = (
            self.model._default_manager.filter(id__lte=last_id)
            .order_by("-id")
            .values_list("id", self.age_field)
            .first()
        )
        if last_kept is not None:
            cache.set(self._key(), last_kept, timeout=self.timeout)

    def forget(self) -> None:
        cache.delete(self._key())


# Attempts are never written again once stored: once blanked, they stay blank.
BLANKED_ATTEMPTS = WalkResume("attempts-blanked-through", Attempt, "started_at", timeout=None)
# An event checked while it had deliveries may lose them without this purge (its endpoint was
# deleted): the walk starts over once a day to find those.
CHECKED_EVENTS = WalkResume("events-checked-through", Event, "created_at", timeout=24 * 3600)
