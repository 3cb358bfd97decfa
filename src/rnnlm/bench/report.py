"""The results of :mod:`rnnlm.bench` as text: a table per benchmark, then the machine, the versions,
and every candidate that was skipped or failed."""

from __future__ import annotations

import sys

__all__ = ["failures", "print_report"]

PARTS = ("sgd_step", "train", "generate", "gru_part4")  # the results of `rnnlm bench all`


def failures(result: dict) -> dict:
    """Every failed candidate of a result (of ``all`` too): ``{"BENCHMARK NAME": error}``."""
    if result.get("benchmark") == "all":
        return {k: v for part in PARTS for k, v in failures(result[part]).items()}
    failed = dict(result.get("failed") or {})
    failed.update({f"shipped {k}": v for k, v in ((result.get("shipped") or {}).get("failed") or {}).items()})
    return {f"{result.get('benchmark')} {name}": error for name, error in failed.items()}


def _blas_line(machine: dict) -> str:
    blas = machine.get("blas") or []
    libs = "; ".join(f"{b['library']} {b['version']} kernel {b['kernel']}, {b['threads']} threads"
                     for b in blas)
    env = " ".join(f"{k}={v}" for k, v in (machine.get("env") or {}).items())
    return f"BLAS (NumPy): {libs or 'unknown'}{'  [' + env + ']' if env else ''}"


def _machine_lines(result: dict, out) -> None:
    m = result.get("machine", {})
    versions = [f"{m.get('engine')} {m.get('engine_version')}", f"numpy {m.get('numpy')}"]
    for lib in ("jax", "torch"):
        if m.get(lib):
            versions.append(f"{lib} {m[lib]}")
    busy = m.get("others_busy")
    others = "" if busy is None else f"; other processes busy at start: {busy:.0%}"
    print(f"machine: {m.get('cpu')} ({m.get('cpus_usable') or m.get('cpus')} CPUs)"
          f"{', GPU ' + m['gpu'] if m.get('gpu') else ''}; load {m.get('load_average')}"
          f" -> {result.get('load_average_after')}{others}", file=out)
    print(f"versions: {', '.join(versions)}; Python {m.get('python')}", file=out)
    print(_blas_line(m), file=out)
    print(f"C linker BLAS: {m.get('c_linker_blas')}", file=out)
    ops = m.get("graph_ops") or {}
    if ops:
        on = [name for name, used in (("fused recurrent layers", ops.get("fused_layers")),
                                      ("fused output layer (SoftmaxNLL)", ops.get("fused_output")),
                                      ("the tutorial's SGD step in it (SoftmaxNLLSGD)", ops.get("fused_sgd")),
                                      ("bf16 products on AMX", ops.get("dnnl_bf16_amx")),
                                      ("oneDNN kernels (C linker)", ops.get("dnnl_lstm")),
                                      ("oneDNN kernels (JAX linker)", ops.get("dnnl_lstm_jax"))) if used]
        own = [f"{'/'.join(c.upper() for c in cells)} at {p}"
               for p, cells in (ops.get("own_layers") or {}).items() if cells]
        if own:
            on.append(f"rnnlm's own {', '.join(own)} layers (rnn_own.cc)")
        print(f"graph ops: {', '.join(on) or 'none (scan and plain autodiff)'}", file=out)
    if m.get("malloc"):
        print(f"malloc (this process, PyTorch included): {m['malloc']}", file=out)
    if m.get("openblas_idle"):
        print(f"NumPy's OpenBLAS idle workers: {m['openblas_idle']}", file=out)
    if result.get("warning"):
        print(f"warning: {result['warning']}", file=out)
    for name, why in (result.get("skipped") or {}).items():
        print(f"skipped {name}: {why}", file=out)
    for name, error in (result.get("failed") or {}).items():
        print(f"FAILED {name}: {error}", file=out)


def print_report(result: dict, out=None) -> None:
    out = out or sys.stdout
    kind = result.get("benchmark")
    if kind == "all":
        for key in PARTS:
            print_report(result[key], out)
            print(file=out)
        return
    {"sgd-step": _report_sgd, "train": _report_train, "generate": _report_generate,
     "gru-part4": _report_part4, "quality": _report_quality}[kind](result, out)
    _machine_lines(result, out)


def _report_sgd(r, out):
    s = r["settings"]
    print(f"rnnlm bench sgd-step: one SGD step, C={s['word_dim']} H={s['hidden_dim']} "
          f"bptt_truncate={s['bptt_truncate']}, a {s['length']}-word sentence (median of {s['repeat']})",
          file=out)
    print(f"  {'candidate':<16} {'ms':>9} {'min ms':>9} {'speedup':>8} {'compile s':>10}  what", file=out)
    for name, c in r["candidates"].items():
        speedup = "-" if c["speedup"] is None else f"{c['speedup']:.1f}"
        print(f"  {name:<16} {c['median_ms']:9.2f} {c['min_ms']:9.2f} {speedup:>7}x {c['compile_s']:10.1f}"
              f"  {c['what']}", file=out)
    sh = r.get("shipped")
    if sh:
        print(f"  shipped: RNN with its defaults, called as the tutorial does ({sh['note']})", file=out)
        for name, c in sh["candidates"].items():
            print(f"    {name:<15} {c['median_ms']:9.2f} ms  {c['what']}", file=out)
        keys = ("vs_numpy", "vs_torch", "vs_tutorial_numpy")
        ratios = ", ".join(f"{k} {sh[k]:.1f}x" for k in keys if k in sh)
        goals = ", ".join(f"{k} >= {v:g}: {'met' if sh.get('meets_targets', {}).get(k) else 'not met'}"
                          for k, v in sh["targets"].items())
        print(f"    shipped {ratios} (targets: {goals})", file=out)
    if r.get("best"):
        verdict = "met" if r["meets_target"] else "not met"
        print(f"  best compiled graph: {r['best']}, {r['best_speedup']:.1f}x the NumPy reference "
              f"(target {r['target_speedup']:.0f}x: {verdict})", file=out)


def _report_char(r, out):
    s = r["settings"]
    print(f"rnnlm bench train --preset char: V={s['vocab_size']} embedding {s['embedding_dim']} "
          f"H={s['hidden_dim']} "
          f"B={s['batch_size']} L={s['steps']}, Adam {s['learning_rate']:g}, clip {s['clip']:g}, float32 "
          f"(median of {s['repeat']})", file=out)
    print(f"  {'model':<8} {'runtime':<10} {'ms/step':>9} {'min':>8} {'steps/s':>8} {'GFLOP/s':>8} "
          f"{'vs torch':>9} {'cold start':>10}", file=out)
    for model, res in r["configs"].items():
        for name, c in res.items():
            if not isinstance(c, dict):
                continue
            vt = f"{c['vs_torch']:.2f}x" if "vs_torch" in c else ""
            print(f"  {model:<8} {name:<10} {c['median_ms']:9.2f} {c['min_ms']:8.2f} {c['steps_per_s']:8.2f} "
                  f"{c['gflops']:8.0f} {vt:>9} {c['cold_start_s']:9.1f}s", file=out)
    print("  targets: " + ", ".join(f"{k} >= {v}" for k, v in r["targets"].items()), file=out)


def _report_train(r, out):
    if r.get("preset") == "char":
        return _report_char(r, out)
    s = r["settings"]
    print(f"rnnlm bench train: V={s['vocab_size']} H={s['hidden_dim']} (embedding {s['embedding_dim']}) "
          f"B={s['batch_size']} L={s['steps']}, full softmax, SGD, float32, device {s['device']} "
          f"(median of {s['repeat']})", file=out)
    print(f"  {'cell':<5} {'runtime':<10} {'ms/step':>9} {'min':>8} {'words/s':>9} {'vs torch':>9} "
          f"{'vs roofline':>11} {'loop ms':>8} {'(vs torch)':>10} {'cold start':>10}", file=out)
    for cell, res in r["cells"].items():
        for name, c in res.items():
            vt = f"{c['vs_torch']:.2f}x" if "vs_torch" in c else ""
            vr = f"{100 * c['vs_roofline']:.0f}%" if "vs_roofline" in c else ""
            vl = f"{c['vs_torch_loop']:.2f}x" if "vs_torch_loop" in c else ""
            print(f"  {cell:<5} {name:<10} {c['median_ms']:9.2f} {c['min_ms']:8.2f} {c['words_per_s']:9.0f} "
                  f"{vt:>9} {vr:>11} {c['loop_ms']:8.2f} {vl:>10} {c['cold_start_s']:9.1f}s", file=out)
    print("  ms/step: each step synchronised; loop ms: per step of a loop blocked on its last step", file=out)
    roof = r.get("roofline")
    if roof:
        each = ", ".join(f"{k}: {v:.1f}" for k, v in roof["each_ms"].items())
        print(f"  roofline: three ({roof['n_rows']}x{roof['hidden']}x{roof['vocab']}) GEMMs, "
              f"{roof['flops'] / 1e9:.2f} GFLOP in {roof['median_ms']:.1f} ms = "
              f"{roof['gflop_s']:.0f} GFLOP/s ({each} ms)", file=out)
    if r.get("process_to_first_step_s") is not None:
        print(f"  cold start: {r['process_to_first_step_s']:.1f} s from process start to the end of the "
              f"first rnnlm training step (cold start column: model construction to the end of its first "
              f"step)", file=out)
    t = r["targets"]
    print("  targets: " + ", ".join(f"{k} >= {v}" for k, v in t.items()), file=out)


def _report_generate(r, out):
    s = r["settings"]
    print(f"rnnlm bench generate: {s['cell']} C={s['vocab_size']} H={s['hidden_dim']} layers={s['layers']}, "
          f"{s['tokens']} tokens, linker {s['linker']}, {s['sampling']}", file=out)
    print(f"  {'batch':>5} {'tokens/s':>10} {'ms/token':>9} {'step ms':>8} "
          f"{'first ' + str(s['window']):>10} {'last ' + str(s['window']):>9} {'last/first':>10}", file=out)
    for b in r["batches"].values():
        print(f"  {b['batch_size']:>5} {b['tokens_per_s']:10.0f} {b['ms_per_token']:9.3f} "
              f"{b['step_ms']:8.3f} {b['first_ms']:10.3f} {b['last_ms']:9.3f} {b['last_over_first']:10.2f}",
              file=out)


def _report_part4(r, out):
    s = r["settings"]
    print(f"rnnlm bench gru-part4: GRU x{s['layers']}, embedding {s['embedding_dim']}, "
          f"hidden {s['hidden_dim']}, vocabulary {s['vocab_size']}, {s['gate']}, RMSProp; "
          f"sentence length {s['length']} (median of {s['repeat']})", file=out)
    print(f"  {'linker':<7} {'batch':>5} {'ms/step':>9} {'min':>8} {'words/s':>9} {'cold start':>10}",
          file=out)
    for c in r["runs"].values():
        print(f"  {c['linker']:<7} {c['batch_size']:>5} {c['median_ms']:9.2f} {c['min_ms']:8.2f} "
              f"{c['words_per_s']:9.0f} {c['cold_start_s']:9.1f}s", file=out)


def _report_quality(r, out):
    print(f"rnnlm bench quality: held-out nats/token and perplexity, {r['budget_s']:.0f} s of training "
          "per model",
          file=out)
    for c in r["corpora"]:
        print(f"  {c['corpus']} ({c['level']} level, vocabulary {c['vocab_size']:,}, {c['train_tokens']:,} "
              f"training tokens; scored on the {c['held_out']} split)", file=out)
        print(f"    {'model':<14} {'nats/token':>10} {'perplexity':>11}  notes", file=out)
        for name, e in c["results"].items():
            if "skipped" in e:
                print(f"    {name:<14} skipped: {e['skipped']}", file=out)
                continue
            notes = ""
            if name == "rnnlm":
                m = e["model"]
                notes = (f"{m['cell']} x{m['layers']} H={m['hidden_dim']}, {e['steps']} steps, "
                         f"{e['epochs']} epochs, "
                         f"stopped: {e['stopped']}")
            elif name == "torch":
                notes = f"{e['steps']} steps, {e['seconds']} s, torch {e['torch']}"
            elif "lambda" in e:
                notes = f"lambda {e['lambda']:.2f}"
            print(f"    {name:<14} {e['nll']:>10.4f} {e['perplexity']:>11.2f}  {notes}", file=out)
