"""The optional rich progress bar of ``wait(progress=True)``."""

from __future__ import annotations

from typing import Any

from schemas.jobs import JobView


class ProgressBar:
    """A rich progress bar over a job's request counts (only when asked for)."""

    def __init__(self, enabled: bool) -> None:
        self._progress: Any = None
        self._task: Any = None
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} prompts"),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
            )

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def update(self, view: JobView) -> None:
        if self._progress is None:
            return
        counts = view.request_counts
        rate = f"{view.tokens_per_second:,.0f} tok/s" if view.tokens_per_second else ""
        description = f"{view.id} {view.state.value}"
        if self._task is None:
            self._task = self._progress.add_task(description, total=counts.total or None, rate=rate)
        self._progress.update(
            self._task, description=description, completed=counts.completed, total=counts.total or None, rate=rate
        )

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()
