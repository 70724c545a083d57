"""An LRU expert cache simulated from moe-ref ground truth, independently of the engine
(docs/reference-engine.md, "Expert offloading"): shared by the offloading tests."""


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
