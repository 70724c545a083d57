"""An LRU expert cache simulated from moe-ref ground truth, independently of the engine
(docs/reference-engine.md, "Expert offloading"): shared by the offloading tests, which put tests/ on sys.path (tests/tap.py)."""
from tap import check


def lru_loads(gt, nslots):
    """Independent LRU over (layer, expert): returns per step {layer: [experts read]}."""
    slots, tick, out = {}, 0, []
    for g in gt:
        step = {}
        for lay in g["layers"]:
            for x in lay.get("experts", []):
                key = (lay["layer"], x)
                tick += 1
                if key not in slots:
                    if len(slots) >= nslots:
                        del slots[min(slots, key=slots.get)]
                    step.setdefault(lay["layer"], []).append(x)
                slots[key] = tick
        out.append(step)
    return out


def budget_bytes(budget, all_bytes):
    """--expert-budget as the engine reads it: bytes, or P % of all routed expert bytes."""
    return int(all_bytes * float(budget[:-1]) / 100) if str(budget).endswith("%") else int(budget)


def check_ondemand(gt, slot, all_bytes, budget, loaded_from):
    """An ondemand run's ground truth against the LRU simulation and the identities of
    docs/ground-truth.md: returns (slots, loads equal the simulation, detail, problems)."""
    b = budget_bytes(budget, all_bytes)
    nslots = min(b // slot, all_bytes // slot)
    sim = lru_loads(gt, nslots)
    got = [{lay["layer"]: lay["loaded"] for lay in g["layers"] if lay.get("loaded")} for g in gt]
    bad = []
    for g in gt:
        o, i = g["offload"], g["step"]
        computed = sum(len(lay.get("experts", [])) for lay in g["layers"])
        if o["hits"] + o["misses"] != computed: bad.append(f"step {i}: hits + misses != {computed}")
        if o["misses"] != o["loaded_experts"]: bad.append(f"step {i}: misses != loaded experts")
        if o["slot_bytes"] != slot or o["loaded_bytes"] != o["loaded_experts"] * slot: bad.append(f"step {i}: bytes {o}")
        if o["resident_bytes"] > b or o["resident_bytes"] != o["resident_experts"] * slot:
            bad.append(f"step {i}: resident {o['resident_bytes']}, budget {b}")
        if o["budget_bytes"] != b or o["loaded_from"] != loaded_from: bad.append(f"step {i}: {o}")
    return nslots, got == sim, f"engine {got[:3]}\nsimulation {sim[:3]}", bad


def ondemand_case(run, tmp, name, args, full, full_logits, slot, all_bytes, budget, loaded_from):
    """One ondemand run (`run(*args, ...)` returns a CompletedProcess): outputs and logits
    equal full residency's, loads equal the LRU simulation, the ground-truth identities hold.
    Reports its three cases through tests/tap.py's check."""
    import json
    import os
    gtp, lgp = os.path.join(tmp, "gt.jsonl"), os.path.join(tmp, "od.logits")
    p = run(*args, "--expert-budget", budget, "--ground-truth", gtp, "--dump-logits", lgp)
    if p.returncode:
        check(False, name, p.stderr)
        return
    check(p.stdout == full.stdout and open(lgp).read() == full_logits,
          f"{name}: ids and every step's logits equal full residency")
    gt = [json.loads(x) for x in open(gtp)]
    nslots, same, detail, bad = check_ondemand(gt, slot, all_bytes, budget, loaded_from)
    check(same,
          f"{name}: experts loaded per step and layer equal an independent LRU simulation ({nslots} slots)", detail)
    check(not bad,
          f"{name}: hits + misses = computed, misses = loads, bytes = experts x slot bytes, resident <= budget", "\n".join(bad))
