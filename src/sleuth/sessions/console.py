"""``sleuth sessions`` in the terminal: what was learned, what moved, who looks like a bot."""
from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table

from .output import page_records, shift_records


#: how each bot rule's reason starts, and what it says in the summary
REASONS = (("form filled", "filled a form too fast"), ("click gaps", "clicked like a clock"),
           ("pages a minute", "read pages faster than a person can"))


def _pct(x) -> str:
    return "-" if x is None or x != x else f"{x:.1%}"


def print_sessions(det, out: Console, err: Console, show: int = 10) -> None:
    a = det.sessions
    s = a.summary()
    red = a.reduction
    out.print(f"[bold]{det.events.source}[/]: {s['sessions']:,} sessions; {s['bots']:,} look like bots, "
              f"{s['outliers']:,} more are outliers ({a.method} scores); models learned on sessions before "
              f"{s['train_until']}", highlight=False)
    out.print(f"[bold]Reduction[/]: {red.why}.", highlight=False)
    for name in red.names:
        out.print(f"  {name}", highlight=False)
    out.print(f"[bold]Clusters[/]: {a.clusters.chosen_by}.", highlight=False)
    t = Table(title="behaviour clusters (people's sessions)", title_justify="left")
    for col in ("cluster", "share", "while training", "converts", "what sets it apart"):
        t.add_column(col)
    for r in a.cluster_profiles().to_dict("records"):
        t.add_row(r["cluster"], _pct(r["share"]), _pct(r["training share"]), _pct(r["conversion rate"]), r["description"])
    out.print(t)
    shifts = shift_records(det)
    if shifts:
        t = Table(title="shifts in the mix of behaviour", title_justify="left")
        for col in ("cluster", "from", "to", "share", "expected", "what the sessions did"):
            t.add_column(col)
        for r in shifts:
            t.add_row(r["cluster"], r["start"], r["end"], _pct(r["share"]), _pct(r["expected_share"]), r["description"])
        out.print(t)
    pages = page_records(det)
    if pages:
        t = Table(title="pages that got slow or noisy", title_justify="left")
        for col in ("page", "metric", "from", "to", "actual", "expected", "root cause"):
            t.add_column(col)
        for r in pages:
            rc = ", ".join(f"{k}={v}" for k, v in r["root_causes"][0]["segment"].items()) if r["root_causes"] else "-"
            t.add_row(r["page"], r["metric"], r["start"], r["end"], f"{r['actual'] or 0:,.4g}", f"{r['expected'] or 0:,.4g}", rc)
        out.print(t)
    bots = a.bots
    if len(bots):
        kinds = Counter(next((label for key, label in REASONS if key in reason), "other")
                        for rs in bots["reasons"] for reason in rs)
        out.print(f"[bold]Bots[/] ({len(bots):,}): " + ", ".join(f"{n:,} {k}" for k, n in kinds.most_common()),
                  highlight=False)
        for r in a.flagged().head(show).itertuples():
            out.print(f"  {r.label} {r.session_id} ({r.start:%Y-%m-%d %H:%M}): {'; '.join(r.reasons)}",
                      markup=False, highlight=False)
    bot_incidents = [i for i in det.incidents if i.metric == "bot_share"]
    for i in bot_incidents:
        out.print(f"bot share {i.direction} from {i.start} to {i.end}: {_pct(i.actual)} against {_pct(i.expected)} "
                  f"expected (incident {i.id})", highlight=False)
    for n in det.notes:
        err.print(f"[dim]note: {n}[/]", highlight=False)
