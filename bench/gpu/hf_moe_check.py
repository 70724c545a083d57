#!/usr/bin/env python3
"""Hugging Face transformers validation on the GPU machine (bench/gpu/validate.sh calls it).

Builds a tiny random-weight MoE model from a config (mixtral, qwen2_moe or olmoe), saves it
(config.json + safetensors, so the shim sees the weight files), reloads it with the chosen
experts implementation, and runs `generate` while forward hooks on the router modules
(transformers' `*TopKRouter` modules, `mlp.gate`; gpt_oss: `mlp.router`) record the experts each layer really chose: the ground truth,
written as JSON lines in moe-ref's ground-truth layout (tokens, sequences, layers with
experts and tokens_per_expert; docs/ground-truth.md).

  hf_moe_check.py --arch qwen2_moe --impl eager --out DIR [--dtype bf16] [--batch 2]
                  [--prompt-len 16] [--new 4] [--profiler]
Writes DIR/model/, DIR/truth.jsonl, DIR/timing.json. Run it under LD_PRELOAD=libmoecap.so
(MOECAP_OUT=...) to capture a trace of the same run; validate.sh then compares
`moecap report` with truth.jsonl (compare_layers.py). --profiler runs the PyTorch profiler
around generate, to check that moecap reports the CUPTI conflict instead of failing silently.
"""
import argparse, json, os, sys, time


def tiny_config(arch, E, K):
    import transformers as tf
    common = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=1024, max_position_embeddings=512)
    if arch == 'mixtral':
        return tf.MixtralConfig(num_local_experts=E, num_experts_per_tok=K, **common)
    if arch == 'qwen2_moe':
        return tf.Qwen2MoeConfig(num_experts=E, num_experts_per_tok=K, moe_intermediate_size=128,
                                 shared_expert_intermediate_size=256, decoder_sparse_step=1, **common)
    if arch == 'olmoe':
        return tf.OlmoeConfig(num_experts=E, num_experts_per_tok=K, **common)
    raise SystemExit('unknown --arch %s' % arch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--arch', default='qwen2_moe')
    ap.add_argument('--impl', default='eager', help='eager | grouped_mm | batched_mm')
    ap.add_argument('--dtype', default='bf16')
    ap.add_argument('--out', required=True)
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--prompt-len', type=int, default=16)
    ap.add_argument('--new', type=int, default=4)
    ap.add_argument('--experts', type=int, default=16)
    ap.add_argument('--top-k', type=int, default=4)
    ap.add_argument('--profiler', action='store_true')
    a = ap.parse_args()
    import torch
    import transformers as tf
    os.makedirs(a.out, exist_ok=True)
    mdir = os.path.join(a.out, 'model')
    dtype = torch.bfloat16 if a.dtype == 'bf16' else torch.float32
    if not os.path.exists(os.path.join(mdir, 'config.json')):
        torch.manual_seed(0)
        cfg = tiny_config(a.arch, a.experts, a.top_k)
        try:
            m = tf.AutoModelForCausalLM.from_config(cfg, dtype=dtype)
        except TypeError:   # older transformers spell it torch_dtype
            m = tf.AutoModelForCausalLM.from_config(cfg, torch_dtype=dtype)
        m.save_pretrained(mdir)
        del m
    try:
        model = tf.AutoModelForCausalLM.from_pretrained(mdir, dtype=dtype, experts_implementation=a.impl)
    except TypeError:
        model = tf.AutoModelForCausalLM.from_pretrained(mdir, torch_dtype=dtype, experts_implementation=a.impl)
    model = model.cuda().eval()

    truth, cur = [], {}
    routers = []
    for name, mod in model.named_modules():
        if type(mod).__name__.endswith('TopKRouter'):
            routers.append((name, mod))
    if not routers:
        raise SystemExit('no *TopKRouter modules found: transformers layout changed, update this script')

    def layer_of(name):
        parts = name.split('.')
        return int(parts[parts.index('layers') + 1])

    def hook(name):
        def f(_mod, _inp, out):
            sel = out[2] if isinstance(out, (tuple, list)) and len(out) >= 3 else None
            if sel is None:
                return
            ids = sel.reshape(-1).tolist()
            cnt = {}
            for e in ids:
                cnt[e] = cnt.get(e, 0) + 1
            cur[layer_of(name)] = cnt
        return f

    for name, mod in routers:
        mod.register_forward_hook(hook(name))

    def pre_forward(_mod, args, kwargs):
        cur.clear()

    def post_forward(_mod, args, kwargs, out):
        ids = kwargs.get('input_ids', args[0] if args else None)
        tokens = int(ids.numel()) if ids is not None else -1
        seqs = int(ids.shape[0]) if ids is not None else -1
        layers = []
        for l in sorted(cur):
            ex = sorted(cur[l])
            layers.append({'layer': l, 'experts': ex, 'tokens_per_expert': [cur[l][e] for e in ex]})
        truth.append({'step': len(truth), 'tokens': tokens, 'sequences': seqs, 'layers': layers})

    model.register_forward_pre_hook(pre_forward, with_kwargs=True)
    model.register_forward_hook(post_forward, with_kwargs=True)

    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size, (a.batch, a.prompt_len), generator=g).cuda()
    with torch.no_grad():
        model.generate(ids, max_new_tokens=1, do_sample=False)   # warm-up (not in the truth)
        truth.clear()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        if a.profiler:
            from torch.profiler import profile, ProfilerActivity
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]):
                model.generate(ids, max_new_tokens=a.new, do_sample=False, min_new_tokens=a.new)
        else:
            model.generate(ids, max_new_tokens=a.new, do_sample=False, min_new_tokens=a.new)
        torch.cuda.synchronize()
        t1 = time.perf_counter()
    with open(os.path.join(a.out, 'truth.jsonl'), 'w') as f:
        for s in truth:
            f.write(json.dumps(s) + '\n')
    with open(os.path.join(a.out, 'timing.json'), 'w') as f:
        json.dump({'generate_s': t1 - t0, 'forwards': len(truth), 'arch': a.arch, 'impl': a.impl,
                   'dtype': a.dtype, 'preloaded': 'libmoecap' in os.environ.get('LD_PRELOAD', '')}, f)
    print('hf_moe_check: %s %s: %d forwards, generate %.3f s' % (a.arch, a.impl, len(truth), t1 - t0))


main()
