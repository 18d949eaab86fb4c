"""
sap.py: a PyTorch twin of sap.c's training steps, in float64, with autograd.

sap.c writes every gradient by hand; this file writes none. It restates the method from its
definition (GPT-2 as llm.c defines it, the task and contrastive losses, SFT, SAP's seven steps,
SAM, LoRA) and lets autograd and torch.optim do the rest, so that the C can be checked against
something that shares none of its code. It reads sap's own files (an llm.c checkpoint, example
files, a resume file for LoRA's starting adapters), runs a few steps of each method on a small
model where every example is in every batch (so the data order cannot matter), and writes what
`make test` compares sap against, without Python:

    python3 sap.py --write    # data/twin/: reference.txt (flags, losses, probe, its Adam moment), <case>.bin
    python3 sap.py            # (make twin) run again and compare with the committed files

It needs ./sap (built by make) to write the fresh model and LoRA's adapters it starts from: the
two programs' random generators differ, so the twin starts from sap's numbers.
It is also the bridge to a GPU and a real model: the model and the steps below are ordinary
PyTorch.
"""
import argparse
import math
import os
import struct
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # the same sums in the same order on every run

# -----------------------------------------------------------------------------
# sap's files: little-endian, a header of 256 int32, then the body


def read_header(path, magic, version):
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 1024:
        sys.exit(f"{path}: too small for a header ({len(buf)} bytes)")
    h = struct.unpack_from("<256i", buf)
    if h[0] != magic or h[1] != version:
        sys.exit(f"{path}: not the expected file (magic {h[0]} version {h[1]}, need {magic} {version})")
    return h, buf


def param_shapes(cfg):
    """llm.c's tensors in file order, each (name, shape); Linear layout (out, in)"""
    V, Vp, T, L, C = cfg["V"], cfg["Vp"], cfg["maxT"], cfg["L"], cfg["C"]
    return [("wte", (Vp, C)), ("wpe", (T, C)), ("ln1w", (L, C)), ("ln1b", (L, C)),
            ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)), ("attprojw", (L, C, C)), ("attprojb", (L, C)),
            ("ln2w", (L, C)), ("ln2b", (L, C)), ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)),
            ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)), ("lnfw", (C,)), ("lnfb", (C,))]


def load_checkpoint(path):
    h, buf = read_header(path, 20240326, 3)
    cfg = dict(maxT=h[2], V=h[3], L=h[4], NH=h[5], C=h[6], Vp=h[7])
    if min(cfg.values()) <= 0 or cfg["C"] % cfg["NH"] or cfg["Vp"] < cfg["V"]:
        sys.exit(f"{path}: a model shape that does not work: {cfg}")
    n = sum(math.prod(s) for _, s in param_shapes(cfg))
    if len(buf) != 1024 + 4 * n:
        sys.exit(f"{path}: {len(buf)} bytes, a model of this shape needs {1024 + 4 * n}")
    flat = torch.tensor(struct.unpack_from(f"<{n}f", buf, 1024))
    params, at = {}, 0
    for name, shape in param_shapes(cfg):
        k = math.prod(shape)
        params[name] = flat[at:at + k].reshape(shape).clone()
        at += k
    return cfg, params


def save_checkpoint(path, cfg, params):
    h = [0] * 256
    h[:8] = [20240326, 3, cfg["maxT"], cfg["V"], cfg["L"], cfg["NH"], cfg["C"], cfg["Vp"]]
    flat = torch.cat([params[name].detach().reshape(-1) for name, _ in param_shapes(cfg)])
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<256i", *h))
        f.write(struct.pack(f"<{flat.numel()}f", *flat.tolist()))  # float32, as sap's checkpoints
    os.replace(path + ".tmp", path)


def load_examples(path, first):
    """the first `first` records of an example file: (prompt, [responses]) token lists, and eot"""
    h, buf = read_header(path, 20251127, 1)
    N, K, eot = h[2], h[3], h[5]
    if K not in (1, 2) or not 0 < first <= N:
        sys.exit(f"{path}: K={K}, N={N}: not {first} records of one or two responses")
    records, at = [], 1024
    for i in range(first):
        lens = struct.unpack_from(f"<{1 + K}H", buf, at)
        at += 2 * (1 + K)
        if min(lens) < 1 or at + 2 * sum(lens) > len(buf):
            sys.exit(f"{path}: example {i}: bad lengths {lens}")
        toks = struct.unpack_from(f"<{sum(lens)}H", buf, at)
        at += 2 * sum(lens)
        parts, p = [], 0
        for n in lens:
            parts.append(list(toks[p:p + n]))
            p += n
        records.append((parts[0], parts[1:]))
    return records, eot


LORA_KINDS = ["q", "k", "v", "proj", "fc", "fcproj"]


def lora_shape(kind, C):
    return (4 * C if kind == "fc" else C), (4 * C if kind == "fcproj" else C)  # (out, in)


def load_lora(path, cfg):
    """the adapters a sap resume file holds, {'qA': (L, r, in), 'qB': (L, out, r), ...}, and their scale.
    after the header come theta's tensors: for each adapted kind in turn, A then B"""
    h, buf = read_header(path, 20251201, 1)
    rank, bits = h[26], h[27]
    alpha = struct.unpack("<f", struct.pack("<i", h[28]))[0]
    if list(h[2:8]) != [cfg[k] for k in ("maxT", "V", "L", "NH", "C", "Vp")] or rank <= 0:
        sys.exit(f"{path}: not a LoRA run of this model (shape {h[2:8]}, rank {rank})")
    adapters, at = {}, 1024
    for t, kind in enumerate(LORA_KINDS):
        if not bits >> t & 1:
            continue
        out_, in_ = lora_shape(kind, cfg["C"])
        for name, shape in (("A", (cfg["L"], rank, in_)), ("B", (cfg["L"], out_, rank))):
            k = math.prod(shape)
            if at + 4 * k > len(buf):
                sys.exit(f"{path}: ends inside the adapters")
            adapters[kind + name] = torch.tensor(struct.unpack_from(f"<{k}f", buf, at)).reshape(shape)
            at += 4 * k
    return adapters, alpha / rank


# -----------------------------------------------------------------------------
# the model: GPT-2 as llm.c defines it, with probes and LoRA adapters


def linear(x, W, b, l, kinds, lora):
    """x W^T + b, plus scale * B (A x) for each adapter on this map, into the output columns it feeds
    (kinds: (kind, first column)). lora: (adapters, scale), or None"""
    y = x @ W.T + b
    if lora is None:
        return y
    adapters, scale = lora
    for kind, col in kinds:
        if kind + "A" in adapters:
            delta = scale * (x @ adapters[kind + "A"][l].T) @ adapters[kind + "B"][l].T
            y = y + F.pad(delta, (col, y.shape[-1] - col - delta.shape[-1]))
    return y


def gpt2(P, cfg, idx, probe, probed, lora):
    """logits (B, T, V) for tokens idx (B, T); the probe v_l joins the stream after each probed block"""
    B, T = idx.shape
    C, NH = cfg["C"], cfg["NH"]
    x = P["wte"][idx] + P["wpe"][:T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(cfg["L"]):
        h = F.layer_norm(x, (C,), P["ln1w"][l], P["ln1b"][l], eps=1e-5)
        qkv = linear(h, P["qkvw"][l], P["qkvb"][l], l, [("q", 0), ("k", C), ("v", 2 * C)], lora)
        q, k, v = (t.reshape(B, T, NH, C // NH).transpose(1, 2) for t in qkv.split(C, dim=-1))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(C // NH)
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + linear(y, P["attprojw"][l], P["attprojb"][l], l, [("proj", 0)], lora)
        h = F.layer_norm(x, (C,), P["ln2w"][l], P["ln2b"][l], eps=1e-5)
        h = F.gelu(linear(h, P["fcw"][l], P["fcb"][l], l, [("fc", 0)], lora), approximate="tanh")
        x = x + linear(h, P["fcprojw"][l], P["fcprojb"][l], l, [("fcproj", 0)], lora)
        if l in probed:
            x = x + probe[l]  # x_l = block_l(x_{l-1}) + v_l
    x = F.layer_norm(x, (C,), P["lnfw"], P["lnfb"], eps=1e-5)
    return x @ P["wte"][:cfg["V"]].T  # the output layer is the token embedding (weight tying)


# -----------------------------------------------------------------------------
# batches and losses


def batch(records, k, T, eot):
    """rows prompt ++ response k, cut at T+1 tokens, padded with eot; mask: targets in the response"""
    inp, tgt, mask = [], [], []
    for prompt, responses in records:
        seq = (prompt + responses[k])[:T + 1]
        pad = seq + [eot] * (T + 1 - len(seq))
        inp.append(pad[:T])
        tgt.append(pad[1:])
        mask.append([1.0 if len(prompt) <= s < len(seq) else 0.0 for s in range(1, T + 1)])
    return torch.tensor(inp), torch.tensor(tgt), torch.tensor(mask)


def token_losses(P, cfg, rows, probe, probed, lora):
    inp, tgt, _ = rows
    logits = gpt2(P, cfg, inp, probe, probed, lora)
    return F.cross_entropy(logits.reshape(-1, cfg["V"]), tgt.reshape(-1), reduction="none").reshape(tgt.shape)


def task_loss(P, cfg, rows, probe, probed, lora):
    """L: the cross-entropy averaged over every response target of the batch"""
    return (token_losses(P, cfg, rows, probe, probed, lora) * rows[2]).sum() / rows[2].sum()


def contrastive_loss(P, cfg, safe, harmful, tau, probe, probed, lora):
    """Lc = mean_i softplus(-(s(x_i, y+_i) - s(x_i, y-_i)) / tau), s the response's summed log-probability"""
    s_safe = -(token_losses(P, cfg, safe, probe, probed, lora) * safe[2]).sum(dim=1)
    s_harm = -(token_losses(P, cfg, harmful, probe, probed, lora) * harmful[2]).sum(dim=1)
    return F.softplus(-(s_safe - s_harm) / tau).mean()


# -----------------------------------------------------------------------------
# the methods, one step each. theta is what trains: every weight, or the adapters


def lr_at(step, steps, lr, final):
    """sap's schedule without warm-up: a cosine from lr at step 0 towards final * lr, which it would
    reach at step `steps` (the last step, steps - 1, is a little above it)"""
    return lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * step / steps)))


def norm(tensors):
    """one norm over a list of tensors together, as if they were one vector"""
    return torch.sqrt(sum((t * t).sum() for t in tensors))


class Run:
    """one run of a method: the model, theta (a dict of tensors: every weight, or the adapters),
    AdamW on theta, and the probe with its own Adam (SAP)"""

    def __init__(self, s, cfg, P, adapters, scale, data):
        self.s, self.cfg, self.P, self.data = s, cfg, P, data
        self.scale = scale
        self.theta = adapters if adapters is not None else P
        for t in self.theta.values():
            t.requires_grad_(True)
        self.adamw = torch.optim.AdamW(list(self.theta.values()), lr=float(s["-l"]), betas=(0.9, 0.999), eps=1e-8,
                                       weight_decay=float(s["-w"]))
        self.probed = [int(b) for b in s["-P"].split(",")] if s["-m"] == "sap" else []
        self.probe = torch.zeros(cfg["L"], cfg["C"], requires_grad=True)  # v_0 = 0
        beta = float(s["-p"]) if s["-m"] == "sap" else 0.0
        self.probe_adam = torch.optim.Adam([self.probe], lr=beta, betas=(0.9, 0.999), eps=1e-8)

    def model(self, theta):
        """the weights and the adapters the forward pass uses, with theta (or another theta) in place"""
        if self.scale is None:
            return theta, None
        return self.P, (theta, self.scale)

    def loss(self, theta=None):
        """the task loss L(theta, v; D), at theta or at other weights (theta', SAM's theta + eps)"""
        P, lora = self.model(self.theta if theta is None else theta)
        return task_loss(P, self.cfg, self.data["task"], self.probe, self.probed, lora)

    def sft(self):
        self.adamw.zero_grad()
        loss = self.loss()
        loss.backward()
        self.adamw.step()
        return loss.item()

    def sap(self):
        names, theta = list(self.theta), list(self.theta.values())
        # 1. g = grad_theta Lc(theta_t, v_{t-1}; S): the direction that makes the model prefer harm
        P, lora = self.model(self.theta)
        lc = contrastive_loss(P, self.cfg, *self.data["pairs"], float(self.s["-u"]), self.probe, self.probed, lora)
        g = torch.autograd.grad(lc, theta)
        # 2. g_hat = g / (||g|| + 1e-8), r = rho * ||theta_t||  (norms over all of theta together)
        r = float(self.s["-r"]) * norm(theta).detach()
        step = r / (norm(g) + 1e-8)
        # 3. theta' = theta_t + r * g_hat: a small step towards harm
        theta_prime = {k: (t + step * x).detach() for k, t, x in zip(names, theta, g)}
        # 4. G = grad_v L(theta_t, v) - grad_v L(theta', v); 5. g_task = grad_theta L(theta_t, v), the same pass
        loss = self.loss()
        *g_task, dv = torch.autograd.grad(loss, theta + [self.probe])
        G = dv - torch.autograd.grad(self.loss(theta_prime), self.probe)[0]
        # 6. theta_{t+1} = AdamW(theta_t, g_task)
        for t, x in zip(theta, g_task):
            t.grad = x
        self.adamw.step()
        # 7. v_t = 0, then one Adam step on v with gradient G and learning rate beta
        with torch.no_grad():
            self.probe.zero_()
        self.probe.grad = G
        self.probe_adam.step()
        return loss.item()

    def sam(self):
        # eps = rho * g / ||g||, the gradient at theta + eps (eps held fixed), AdamW at theta with it
        names, theta = list(self.theta), list(self.theta.values())
        loss = self.loss()
        g = torch.autograd.grad(loss, theta)
        step = float(self.s["-R"]) / (norm(g) + 1e-12)
        g_sam = torch.autograd.grad(self.loss({k: t + (step * x).detach() for k, t, x in zip(names, theta, g)}), theta)
        for t, x in zip(theta, g_sam):
            t.grad = x
        self.adamw.step()
        return loss.item()

    def merged(self):
        """the model sap saves: with LoRA, W + scale * B A for every adapted matrix"""
        P = {k: t.detach().clone() for k, t in self.P.items()}
        if self.scale is None:
            return P
        C, where = self.cfg["C"], {"q": ("qkvw", 0), "k": ("qkvw", 1), "v": ("qkvw", 2), "proj": ("attprojw", 0),
                                   "fc": ("fcw", 0), "fcproj": ("fcprojw", 0)}
        for kind in LORA_KINDS:
            if kind + "A" not in self.theta:
                continue
            name, block = where[kind]  # q, k and v are row blocks 0, 1, 2 of the fused qkv matrix
            rows = lora_shape(kind, C)[0]
            for l in range(self.cfg["L"]):
                BA = self.theta[kind + "B"][l].detach() @ self.theta[kind + "A"][l].detach()
                P[name][l, block * rows:(block + 1) * rows] += self.scale * BA
        return P

    def probe_m(self):
        """the probe's Adam first moment: a running mean of G, which carries G's size (the probe does not)"""
        state = self.probe_adam.state.get(self.probe)
        return state["exp_avg"] if state else torch.zeros_like(self.probe)


# -----------------------------------------------------------------------------
# the cases: sap's flags, read here as sap reads them. every flag a case depends on is given, and
# none at sap's default value, so that a flag sap reads wrongly shows as a difference

DATA = dict(task="data/ft_benign.bin", pairs="data/contrastive.bin", n_task=8, n_pairs=4)
COMMON = "-L 3 -H 2 -C 16 -T 128 -V 256 -s 11 -b 8 -q 4 -t 128 -n 5 -w 0.01 -D 0.2"
CASES = {
    "sft": "-m sft -l 1e-3",
    "sap": "-m sap -l 1e-3 -r 4e-3 -p 0.15 -u 50 -P 1",
    "sam": "-m sam -l 1e-3 -R 0.05",
    "sap_lora": "-m sap -l 1e-2 -r 4e-3 -p 0.15 -u 50 -P 1 -Q 2 -W q,k,v,proj,fc,fcproj -F 4",
}


def settings(flags):
    words = flags.split()
    return dict(zip(words[0::2], words[1::2]))


def sap_writes(tmp, flags):
    """./sap writes the fresh model (and LoRA's adapters) a case starts from: -n 0, nothing trained"""
    start, state = os.path.join(tmp, "start.bin"), os.path.join(tmp, "start.state")
    cmd = ["./sap"] + f"{flags} -n 0 -j none -E none -o {start} -Y {state}".split()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return start, state


def run_case(name, tmp):
    flags = f"{COMMON} {CASES[name]}"
    s = settings(flags)
    start, state = sap_writes(tmp, flags)
    cfg, P = load_checkpoint(start)
    adapters, scale = load_lora(state, cfg) if "-Q" in s else (None, None)
    task, eot = load_examples(DATA["task"], DATA["n_task"])
    pairs, _ = load_examples(DATA["pairs"], DATA["n_pairs"])
    T = int(s["-t"])
    data = dict(task=batch(task, 0, T, eot), pairs=(batch(pairs, 0, T, eot), batch(pairs, 1, T, eot)))
    run = Run(s, cfg, P, adapters, scale, data)
    steps, losses = int(s["-n"]), []
    for step in range(steps):
        for group in run.adamw.param_groups:
            group["lr"] = lr_at(step, steps, float(s["-l"]), float(s["-D"]))
        losses.append(getattr(run, s["-m"])())  # run.sft(), run.sap() or run.sam()
    return cfg, run, losses


def fmt(xs):
    return " ".join(f"{x:.17g}" for x in xs)


def reference(tmp, outdir):
    """the reference as lines of text, and each case's model after the steps (written to outdir)"""
    lines = [f"# sap.py (torch {torch.__version__}, float64): each case's steps from a fresh model; per case its",
             "# task loss at every step, and for SAP the probe and its Adam first moment (G's running mean) after",
             "# the last step, for each probed block. data: the first n records of each file, all in every batch",
             f"data {DATA['task']} {DATA['n_task']} {DATA['pairs']} {DATA['n_pairs']}",
             f"common {COMMON}"]
    for name in CASES:
        cfg, run, losses = run_case(name, tmp)
        save_checkpoint(os.path.join(outdir, name + ".bin"), cfg, run.merged())
        lines += [f"case {name}", f"flags {CASES[name]}", f"loss {fmt(losses)}"]
        for l in run.probed:
            lines.append(f"probe {l} {fmt(run.probe[l].tolist())}")
            lines.append(f"probe_m {l} {fmt(run.probe_m()[l].tolist())}")
    return "\n".join(lines) + "\n"


def numbers(text):
    """the figures of a reference: every loss and probe value, in order"""
    return [float(w) for line in text.splitlines() if line.startswith(("loss ", "probe"))
            for w in line.split()[1:]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true", help="write data/twin/ (otherwise: compare with it)")
    args = ap.parse_args()
    ref_dir = "data/twin"
    with tempfile.TemporaryDirectory() as tmp:
        outdir = ref_dir if args.write else tmp
        text = reference(tmp, outdir)
        if args.write:
            with open(os.path.join(ref_dir, "reference.txt"), "w") as f:
                f.write(text)
            print(f"wrote {ref_dir}/reference.txt and a model per case")
            return
        # the committed reference, from another machine or torch: the same up to float64's rounding
        # (and float32's last bit in the stored models). written so that a NaN is a difference
        with open(os.path.join(ref_dir, "reference.txt")) as f:
            old = f.read()
        a, b = numbers(text), numbers(old)
        same = len(a) == len(b) and all(abs(x - y) <= 1e-9 * max(1.0, abs(y)) for x, y in zip(a, b))
        for name in CASES:
            _, x = load_checkpoint(os.path.join(outdir, name + ".bin"))
            _, y = load_checkpoint(os.path.join(ref_dir, name + ".bin"))
            same &= all(bool(((x[k] - y[k]).abs() <= 2.0 ** -22 * y[k].abs().clamp(min=1.0)).all()) for k in x)
        print(text, end="")
        if not same:
            sys.exit(f"sap.py: the output differs from {ref_dir}/ (after a change to sap.py: python3 sap.py --write)")
        print(f"sap.py: the same as {ref_dir}/")


if __name__ == "__main__":
    main()
