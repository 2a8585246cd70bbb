"""session.explain(): what runs where, and why each fallback node went to CPU."""

from __future__ import annotations

from collections import Counter


def explain(session) -> str:
    plan = session._plan
    counts = Counter(plan.assignments.values())
    kinds = Counter(info.kind for info in plan.step_info)
    lines = [f"{len(plan.assignments)} nodes, {len(plan.steps)} steps, {plan.transfers} device transfer(s)"]
    lines.append("providers (claim order): " + ", ".join(session.get_providers()))
    for name in session.get_providers():
        if counts.get(name):
            lines.append(f"  {name}: {counts[name]} node(s)")
    if kinds.get("compiled"):
        lines.append(f"  compiled partitions: {kinds['compiled']}")
    providers = session._providers
    if len(providers) > 1:
        fallback = providers[-1]
        fell = [n for n, p in plan.assignments.items() if p == fallback.name]
        if fell:
            lines.append(f"fell back to {fallback.name}:")
            infos = {info.label: info for info in plan.step_info}
            for name in fell[:50]:
                info = infos.get(name)
                op = info.op_type if info else "?"
                lines.append(f"  - {name} ({op}): declined by " + ", ".join(p.name for p in providers[:-1]))
            if len(fell) > 50:
                lines.append(f"  ... and {len(fell) - 50} more")
    for reason in plan.rejected_claims:
        lines.append(f"rejected claim: {reason}")
    return "\n".join(lines)
