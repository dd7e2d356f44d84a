"""Every table, summary and progress display the CLI shows, in one place.

The commands gather data through ``orchestrator.api`` (or the use-case modules) and hand it here
to be drawn; nothing here reads the store or the network. Tables use the terminal's width on a
terminal and one fixed width (:data:`OFF_TERMINAL_WIDTH`) everywhere else — cron mail, CI logs,
pipes — where rich would otherwise assume 80 columns and fold every cell.

rich is imported inside the functions: ``--help`` and the commands that print no table need not
pay for it (tests/cli/test_startup.py).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from orchestrator.humantime import duration_text, expiry_text, utc_text
from orchestrator.progress import plural

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from orchestrator.api import UserSummary
    from orchestrator.calendar import Calendar
    from orchestrator.lookup import RunEntry
    from orchestrator.report import RunReport
    from orchestrator.scheduler import RunObserver
    from orchestrator.store.journal import JournalRecord

OFF_TERMINAL_WIDTH = 160
"""Columns of every table printed off a terminal (a cron log line, a CI log, a pipe)."""


def console(*, stderr: bool = False) -> Console:
    """A console for tables: the terminal's width on one, :data:`OFF_TERMINAL_WIDTH` off it."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(
        stderr=stderr,
        highlight=False,
        width=None if stream.isatty() else OFF_TERMINAL_WIDTH,
    )


def _table(*headers: str) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


# -- times ---------------------------------------------------------------------------------------


# -- run -------------------------------------------------------------------------------------------


def progress_observer(show_bars: bool) -> RunObserver:
    """Progress bars on stderr (a terminal), or one log line per step (everything else)."""
    from orchestrator.progress import BarObserver, LogObserver

    if show_bars:
        from rich.console import Console

        return BarObserver(Console(stderr=True))
    return LogObserver()


def print_run_summary(report: RunReport) -> None:
    """The table of a run's entries and the one-line count after it."""
    from rich import box
    from rich.table import Table

    from orchestrator.outcomes import STATUSES, EntryStatus

    out = console()
    table = Table(box=box.SIMPLE, title="dry run: the plan" if report.dry_run else None)
    table.add_column("#", justify="right")
    table.add_column("entry", overflow="fold", min_width=16, max_width=48)
    table.add_column("user", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("publish_id", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for entry in report.entries:
        detail = ""
        if entry.error is not None:
            detail = (
                entry.error.message
                if entry.status is EntryStatus.PLANNED
                else (f"{entry.error.code}: {entry.error.message}")
            )
            if entry.error.hint and entry.status is not EntryStatus.PLANNED:
                detail += f" — {entry.error.hint}"
        elif entry.post_ids:
            detail = "post " + ", ".join(entry.post_ids)
        name = entry.id if entry.id and not entry.id.startswith("sha256:") else entry.source
        table.add_row(
            str(entry.index), name, entry.user_id, entry.status, entry.publish_id or "", detail
        )
    out.print(table)
    counts = report.summary()
    shown = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    out.print(f"{plural(counts['total'], 'entry', 'entries')}: {shown or 'nothing to do'}")


# -- auth ------------------------------------------------------------------------------------------


def print_users_table(users: Sequence[UserSummary], now: float) -> None:
    """`auth list`: one row per stored user, then a warning per user who must act soon."""
    table = _table("open_id", "display name", "scopes", "access expires", "refresh expires")
    table.add_column("state")
    for user in users:
        table.add_row(
            user.open_id,
            user.display_name or "-",
            ",".join(sorted(user.scopes)) or "-",
            expiry_text(user.access_expires_at, now),
            expiry_text(user.refresh_expires_at, now),
            user.state.value.replace("_", " "),
        )
    console().print(table)
    for user in users:
        if user.login_reason:
            click.echo(
                f"warning: {user.open_id} must sign in again ({user.login_reason}): "
                "run `auth login`",
                err=True,
            )
        elif user.refresh_dies_soon:
            click.echo(
                f"warning: the refresh token of {user.open_id} dies in "
                f"{duration_text(user.refresh_expires_at - now)} "
                f"({utc_text(user.refresh_expires_at)}); after that the user must run "
                "`auth login` again",
                err=True,
            )


# -- history / report ------------------------------------------------------------------------------


def history_json(record: JournalRecord) -> dict[str, Any]:
    """One journal record as `history --json` and `status --json` print it."""

    def when(timestamp: float | None) -> str | None:
        if timestamp is None:
            return None
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")

    error = None
    if record.error_code is not None:
        error = {
            "code": record.error_code,
            "message": record.error_message,
            "log_id": record.error_log_id,
            "retryable": record.error_retryable,
            "hint": record.error_hint,
        }
    return {
        "identity": record.identity,
        "id": record.entry_id,
        "user_id": record.user_id,
        "source": record.source,
        "mode": record.mode,
        "state": record.state.value,
        "publish_id": record.publish_id,
        "post_ids": list(record.post_ids),
        "bytes_confirmed": record.bytes_confirmed,
        "attempts": record.attempts,
        "error": error,
        "deferred_until": when(record.deferred_until),
        "created_at": when(record.created_at),
        "updated_at": when(record.updated_at),
        "finished_at": when(record.finished_at),
    }


def print_history_table(records: Sequence[JournalRecord]) -> None:
    """`history`: one row per journal record, most recently changed first.

    Written line by line as a plain table (:func:`table_lines`), not laid out with rich:
    5,000 rows take a fraction of a second, where rich took seconds (issue 14).
    """
    from orchestrator.store.journal import DONE_STATES, EntryState

    rows = []
    for record in records:
        detail = ""
        if record.error_code and record.state not in DONE_STATES:
            detail = f"{record.error_code}: {record.error_message or ''}".strip()
        elif record.state is EntryState.UPLOADING and record.plan is not None:
            detail = f"{record.bytes_confirmed:,} of {record.plan.video_size:,} bytes sent"
        if record.deferred_until:
            detail += f" (until {utc_text(record.deferred_until)})"
        rows.append(
            (
                datetime.fromtimestamp(record.updated_at, UTC).strftime("%Y-%m-%d %H:%M"),
                record.user_id,
                record.entry_id or record.source,
                record.state.value,
                record.publish_id or "-",
                ", ".join(record.post_ids) or "-",
                detail,
            )
        )
    headers = ("when (UTC)", "user", "entry", "state", "publish_id", "post ids", "detail")
    for line in table_lines(headers, rows, width=table_width()):
        click.echo(line)


_COLUMN_GAP = "   "


def table_width() -> int:
    """Columns for a table on stdout: the terminal's, or :data:`OFF_TERMINAL_WIDTH` off one."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else OFF_TERMINAL_WIDTH


def table_lines(
    headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, width: int
) -> Iterator[str]:
    """A plain table (a header, a rule, one line per row, columns aligned), line by line.

    Column widths come from the cells alone, so each line is written as it is made. When the
    table is wider than ``width`` the widest columns narrow and their cells fold onto more
    lines, as rich's ``overflow="fold"`` does.
    """
    import textwrap

    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(known, len(cell)) for known, cell in zip(widths, row, strict=True)]
    room = max(width - len(_COLUMN_GAP) * (len(headers) - 1), len(headers))
    while sum(widths) > room and max(widths) > 1:
        widest = widths.index(max(widths))
        widths[widest] -= 1

    def lines_of(cells: tuple[str, ...]) -> Iterator[str]:
        folded = [
            textwrap.wrap(cell, size, break_long_words=True) or [""] if len(cell) > size else [cell]
            for cell, size in zip(cells, widths, strict=True)
        ]
        for index in range(max(len(parts) for parts in folded)):
            parts = [part[index] if index < len(part) else "" for part in folded]
            yield _COLUMN_GAP.join(
                part.ljust(size) for part, size in zip(parts, widths, strict=True)
            ).rstrip()

    yield from lines_of(headers)
    yield "\u2500" * (sum(widths) + len(_COLUMN_GAP) * (len(headers) - 1))
    for row in rows:
        yield from lines_of(row)


def run_rows(entries: Sequence[RunEntry]) -> list[dict[str, Any]]:
    """`report --run-id`: one row per entry of a shared run (the queue's and journal's view)."""
    from orchestrator.store.journal import DONE_STATES

    rows: list[dict[str, Any]] = []
    for entry in entries:
        record, queued = entry.record, entry.queued
        state = record.state.value if record is not None else "not started"
        if queued is not None and queued.state == "pending":
            state = f"{state} (claimed)" if queued.worker else f"{state} (pending)"
        rows.append(
            {
                "entry": (record.entry_id or record.source) if record else entry.identity,
                "user_id": record.user_id if record else (queued.user_id if queued else ""),
                "state": state,
                "result": queued.result if queued else None,
                "worker": queued.worker if queued else None,
                "claims": queued.claims if queued else None,
                "publish_id": record.publish_id if record else None,
                "post_ids": list(record.post_ids) if record else [],
                "error": f"{record.error_code}: {record.error_message}"
                if record and record.error_code and state not in DONE_STATES
                else None,
            }
        )
    return rows


def print_run_table(run_id: str, rows: Sequence[dict[str, Any]]) -> None:
    """`report --run-id`: the table of :func:`run_rows` and a count per state."""
    table = _table("entry", "user", "state", "worker", "claims", "post ids", "detail")
    for row in rows:
        table.add_row(
            str(row["entry"]),
            str(row["user_id"]),
            str(row["state"]),
            str(row["worker"] or "-"),
            "-" if row["claims"] is None else str(row["claims"]),
            ", ".join(row["post_ids"]) or "-",
            str(row["error"] or ""),
        )
    console().print(table)
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row["state"])] = counts.get(str(row["state"]), 0) + 1
    summary = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
    click.echo(f"run {run_id}: {plural(len(rows), 'entry', 'entries')}: {summary}")


# -- calendar --------------------------------------------------------------------------------------


def calendar_json(calendar: Calendar) -> dict[str, Any]:
    """`calendar --json`: the fields the README documents."""
    return {
        "timezone": calendar.timezone,
        "generated_at": calendar.generated_at.isoformat(timespec="seconds"),
        "caps": {
            "daily_direct": calendar.daily_direct_cap,
            "pending_inbox": calendar.pending_inbox_cap,
        },
        "done": calendar.done,
        "later": calendar.later,
        "days": [
            {
                "user_id": day.user_id,
                "date": day.day.isoformat(),
                "scheduled": [
                    {
                        "entry": post.entry,
                        "mode": post.mode.value,
                        "due": post.due.isoformat(timespec="seconds"),
                        "due_now": post.due_now,
                        "over_cap": post.over_cap,
                        "review": post.review,
                    }
                    for post in day.posts
                ],
                "sent": {mode.value: count for mode, count in day.sent.items()},
                "room": {mode.value: count for mode, count in day.room.items()},
                "over_cap": day.over_cap,
            }
            for day in calendar.days
        ],
    }


def print_calendar(calendar: Calendar) -> None:
    """`calendar`: a row per creator and day with something scheduled or sent; over-cap
    posts marked (a run defers them)."""
    from orchestrator.manifest import Mode

    table = _table("user", "day", "scheduled", "sent", "room direct", "room inbox")
    caps = calendar.caps()
    shown = 0
    for day in calendar.days:
        if not day.posts and not any(day.sent.values()):
            continue
        shown += 1
        posts = []
        for post in day.posts:
            when = "now" if post.due_now else post.due.strftime("%H:%M")
            text = f"{when} {post.entry}" + (" (inbox)" if post.mode is Mode.INBOX else "")
            if post.review == "awaiting_review":
                text = f"[yellow]{post.entry} AWAITING REVIEW[/] (no run posts it before)"
            elif post.review is not None:
                text = f"[dim]{post.entry} DECLINED by the creator[/]"
            posts.append(
                f"[bold red]{text} OVER CAP: {post.over_cap}[/]" if post.over_cap else text
            )
        sent = ", ".join(f"{count} {mode.value}" for mode, count in day.sent.items() if count)
        table.add_row(
            day.user_id,
            day.day.strftime("%a %Y-%m-%d"),
            "\n".join(posts) or "-",
            sent or "-",
            f"{day.room[Mode.DIRECT]}/{caps[Mode.DIRECT]}",
            f"{day.room[Mode.INBOX]}/{caps[Mode.INBOX]}",
        )
    out = console()
    out.print(f"Calendar in {calendar.timezone} from {calendar.generated_at:%Y-%m-%d %H:%M}")
    if shown:
        out.print(table)
    else:
        out.print("Nothing scheduled or sent in these days.")
    over = sum(day.over_cap for day in calendar.days)
    if over:
        out.print(
            f"[bold red]{over} post(s) over a cap[/]: a run defers them until the cap has room "
            "(--daily-cap, --inbox-cap)"
        )
    if calendar.later or calendar.done:
        out.print(f"{calendar.done} done already, {calendar.later} due after these days")
