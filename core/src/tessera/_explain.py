"""session.explain(): what runs where, and why each fallback node went to CPU."""

from __future__ import annotations

from collections import Counter


def explain(session) -> str:
    plan = session._plan
    counts = Counter(plan.assignments.values())
    kinds = Counter(info.kind for info in plan.step_info)
    lines = [
        f"{len(plan.assignments)} nodes, {len(plan.steps)} steps, {plan.transfers} device transfer(s)"
    ]
    lines.append("providers (claim order): " + ", ".join(session.get_providers()))
    for name in session.get_providers():
        if counts.get(name):
            lines.append(f"  {name}: {counts[name]} node(s)")
    if kinds.get("compiled"):
        lines.append(f"  compiled partitions: {kinds['compiled']}")
    if plan.parallel is not None:
        lines.append(
            f"parallel steps on {plan.parallel_threads} threads "
            f"({getattr(session, '_parallel_reason', '')})"
        )
    infos = {info.label: info for info in plan.step_info}
    if plan.fused:
        replaced = sum(len(parts) for parts in plan.fused.values())
        lines.append(f"fused by providers: {replaced} node(s) into {len(plan.fused)} kernel(s)")
        for name, parts in list(plan.fused.items())[:20]:
            op = infos[name].op_type if name in infos else "?"
            lines.append(f"  - {name} ({op}): " + " + ".join(parts))
        if len(plan.fused) > 20:
            lines.append(f"  ... and {len(plan.fused) - 20} more")
    if plan.declined:
        lines.append(f"fell back to {session.get_providers()[-1]}:")
        for name, reasons in list(plan.declined.items())[:50]:
            op = infos[name].op_type if name in infos else "?"
            lines.append(f"  - {name} ({op}): " + "; ".join(reasons))
        if len(plan.declined) > 50:
            lines.append(f"  ... and {len(plan.declined) - 50} more")
    for reason in plan.rejected_claims:
        lines.append(f"rejected claim: {reason}")
    return "\n".join(lines)
