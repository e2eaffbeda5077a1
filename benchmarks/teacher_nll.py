"""The distilled LM against its teacher on the same validation users: does it know less, or rank worse?

    python benchmarks/teacher_nll.py --config configs/games-cpu-collab-distill.yaml --set seed=2025 \
        --set pipeline.variant=seeds/2025 --users 10000

For validation users outside every selection sample (:func:`agrec.decode.evaluate.unselected_users`), two
readings of each model:

- the negative log-likelihood of the user's true validation item, split along its code path, one term per level:
  for the LM, teacher-forced, its softmax at each code position renormalised over the trie's children of the true
  prefix (the choices a constrained decoder has); for SASRec, its softmax over all items summed into the same
  conditionals (those ``agrec/lm/distill.py`` trains the LM on). Each total is the log-probability the model gives
  the item among all items, so the two are comparable. History items are not removed from either distribution;
- NDCG@10 as the decode stage scores each alone: the LM by its beam search ("w/o Graph"), SASRec by ranking every
  item; each user's history excluded as the profile says;
- the LM's search errors: users whose true item the LM itself scores above its beam's 10th item (the summed
  log-probabilities the beam ranks by), yet the beam pruned it at an earlier level. The LM's NDCG@10 is its
  search's, SASRec's an exact ranking; this column says how much of a difference the search can explain.

Both per group of users: all; the target's training popularity (quartiles over these users); the history length.
Nothing is trained. Results: ``benchmarks/results/teacher_nll_<dataset>.md`` (one section per run folder, replaced
on a rerun).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from agrec.analysis.complementarity import target_popularity
from agrec.analysis.significance import user_gains, wilcoxon_p
from agrec.baselines.stage import train_sasrec
from agrec.data.stage import load_run_data
from agrec.decode.evaluate import unselected_users
from agrec.decode.rank import rank_by_scores
from agrec.decode.trie import ItemTrie
from agrec.errors import AgrecError
from agrec.lm.stage import load_lm
from agrec.run.launch import add_set_option, parse_sets
from agrec.run.session import open_session
from gap_by_history import buckets, write_section
from lm_study import _where, lm_decode

RESULTS = Path(__file__).resolve().parent / "results"


def prefix_ids(codes: torch.Tensor) -> torch.Tensor:
    """``[n_items, L]`` code tuples -> ``[n_items, L]``: column ``l`` numbers the distinct prefixes of length
    ``l + 1`` (equal ids = equal prefixes)."""
    cols = [torch.unique(codes[:, : lv + 1], dim=0, return_inverse=True)[1] for lv in range(codes.shape[1])]
    return torch.stack(cols, dim=1)


def path_nll(log_q: torch.Tensor, prefix: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-level NLL of each target along its code path under an item distribution.

    Args:
        log_q: ``[U, n_items]`` log-probabilities over items (each row sums to 1 in probability).
        prefix: ``[n_items, L]`` from :func:`prefix_ids`.
        targets: ``[U]`` item ids.
    Returns:
        ``[U, L]``: ``-log q(c_l | c_<l)`` of the target's codes; the rows sum to ``-log q(target)``.
    """
    log_q = log_q.double()
    mass = [torch.zeros(len(targets), dtype=torch.float64)]  # log-mass of the empty prefix: 0
    for lv in range(prefix.shape[1]):
        same = prefix[:, lv].unsqueeze(0) == prefix[targets, lv].unsqueeze(1)  # [U, n_items]
        mass.append(torch.logsumexp(log_q.masked_fill(~same, float("-inf")), dim=1))
    m = torch.stack(mass, dim=1)
    return (m[:, :-1] - m[:, 1:]).float()


def lm_path_nll(
    model, prompts: list[list[int]], codes: torch.Tensor, trie: ItemTrie
) -> tuple[torch.Tensor, torch.Tensor]:
    """The LM's teacher-forced reading of each ``codes [U, L]`` row after its prompt: ``[U, L]`` NLL per level,
    renormalised over the trie's children of the row's prefix (``ItemTrie.allowed_tokens``), and ``[U]`` the row's score as the
    beam search sums it (log-softmax over the whole vocabulary, not renormalised). Prompts of one length go
    through the model together, so no row is padded."""
    U, L = codes.shape
    out, raw = torch.empty(U, L), torch.zeros(U)
    by_len: dict[int, list[int]] = {}
    for u, pr in enumerate(prompts):
        by_len.setdefault(len(pr), []).append(u)
    with torch.no_grad():
        for P, rows in by_len.items():
            for s in range(0, len(rows), 256):
                r = rows[s : s + 256]
                ids = torch.cat([torch.tensor([prompts[u] for u in r]), codes[r]], dim=1)
                logits = model(input_ids=ids).logits[:, P - 1 : P - 1 + L].float()
                lp = torch.log_softmax(logits, dim=-1)
                for j, u in enumerate(r):
                    row = codes[u].tolist()
                    for lv in range(L):
                        kids = trie.allowed_tokens(row[:lv])
                        out[u, lv] = torch.logsumexp(lp[j, lv, kids], 0) - lp[j, lv, row[lv]]
                        raw[u] += lp[j, lv, row[lv]]
    return out, raw


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, type=Path)
    add_set_option(p)
    p.add_argument("--users", type=int, default=10000, help="validation users outside every selection sample")
    p.add_argument("--edges", nargs="+", type=int, default=[5, 10, 20], help="history-length bucket bounds")
    args = p.parse_args()
    if args.users <= 0:
        raise SystemExit(f"--users must be positive, got {args.users}")
    if sorted(set(args.edges)) != args.edges or args.edges[0] <= 0:
        raise SystemExit(f"--edges must be increasing positive integers, got {args.edges}")
    sets = parse_sets(args.sets)
    session = open_session(args.config, overrides={"lm.progress": False, **sets})
    profile = session.profile
    if profile.lm.distill_teacher != "sasrec":
        raise AgrecError(f"{args.config}: lm.distill_teacher is {profile.lm.distill_teacher!r}; this reads 'sasrec'")
    torch.set_num_threads(profile.pipeline.num_threads or 1)
    split = load_run_data(session).split
    bundle = load_lm(session, log=lambda s: None)
    model = bundle.model.eval()
    sasrec = train_sasrec(session, progress=False)  # the run's trained teacher; refused if not current
    users = unselected_users(profile, split.n_users, args.users)
    targets = torch.as_tensor(split.valid[users], dtype=torch.long)
    histories = [split.history(int(u), "valid") for u in users]

    codes = bundle.item_token_ids.to(torch.long)
    trie = ItemTrie.build(codes)
    lm_nll, lm_score = lm_path_nll(model, [bundle.prompt_ids(h) for h in histories], codes[targets], trie)

    prefix = prefix_ids(codes)
    t_nll, t_rank = [], []
    for s in range(0, len(users), 500):
        scores = sasrec.score_users(users[s : s + 500], "valid")
        t_nll.append(path_nll(torch.log_softmax(scores, dim=1), prefix, targets[s : s + 500]))
        exclude = histories[s : s + 500] if profile.evaluation.exclude_history else [[] for _ in scores]
        t_rank.append(rank_by_scores(scores, 10, exclude).items)
    teacher_nll = torch.cat(t_nll).numpy()
    teacher_gain = user_gains(torch.cat(t_rank).numpy(), targets.numpy())["NDCG@10"]
    res, lm_targets = lm_decode(session, split, "valid", users, bundle=bundle, trie=trie)
    if not np.array_equal(lm_targets, targets.numpy()):
        raise AgrecError("the LM's validation targets are not the split's")
    items = res.items.numpy()
    lm_gain = user_gains(items, lm_targets)["NDCG@10"]
    lm_nll = lm_nll.numpy()
    # A search error: the true item is not in the beam's top 10 although the model scores it above the 10th
    # item (it was pruned at an earlier level). Only where the beam scores what lm_path_nll sums (no
    # renormalisation) and the item is not one of the user's excluded history items.
    excluded = np.array([int(t) in set(h) for t, h in zip(targets.tolist(), histories, strict=True)])
    excluded &= profile.evaluation.exclude_history
    tenth = res.scores[:, 9].numpy() if res.scores.shape[1] >= 10 else np.full(len(users), -np.inf)
    missed = ~(items[:, :10] == lm_targets[:, None]).any(axis=1)
    search_error = missed & ~excluded & (lm_score.numpy() > tenth + 1e-4)
    read_errors = not profile.decode.renormalize

    pop = target_popularity(split.train, targets.numpy(), len(codes))
    q = np.floor(np.quantile(pop, [0.25, 0.5, 0.75]))  # whole counts, so that each label says what its mask does
    groups = [("all", np.ones(len(users), dtype=bool))]
    groups += [
        (f"popularity {lab}", m)
        for lab, m in (
            (f"≤ {q[0]:.0f}", pop <= q[0]),
            (f"({q[0]:.0f}, {q[1]:.0f}]", (pop > q[0]) & (pop <= q[1])),
            (f"({q[1]:.0f}, {q[2]:.0f}]", (pop > q[1]) & (pop <= q[2])),
            (f"> {q[2]:.0f}", pop > q[2]),
        )
    ]
    lengths = np.array([len(h) for h in histories])
    groups += [(f"history {lab}", m) for lab, m in buckets(lengths, args.edges)]

    L = codes.shape[1]
    levels = " | ".join(f"level {lv + 1}" for lv in range(L))
    name = _where(session.run.root)
    lines = [
        f"## {name}",
        "",
        f"`{args.config}`{''.join(f' `--set {kv}`' for kv in args.sets)}: {len(users):,} validation users outside "
        "every selection sample. NLL of the true item per code level (nats; SASRec's item softmax summed into the "
        "LM's code conditionals; the LM renormalised over the trie's children), and NDCG@10 of each alone (history "
        "excluded). p: Wilcoxon, paired by user, on the total NLL and on NDCG@10. Search errors: users whose true "
        "item the LM scores above its beam's 10th item, yet the beam lost it"
        + ("." if read_errors else " (not read: decode.renormalize scores other sums)."),
        "",
        f"| users | n | SASRec NLL: {levels} | total | LM NLL: {levels} | total | p NLL | SASRec NDCG@10 | "
        "LM NDCG@10 | p NDCG@10 | LM search errors |",
        "|---|---:|" + "---:|" * (2 * L + 2) + "---:|---:|---:|---:|---:|",
    ]
    for lab, m in groups:
        if not m.any():
            continue
        tn, ln = teacher_nll[m], lm_nll[m]
        cells = [f"{x:.3f}" for x in tn.mean(0)] + [f"{tn.sum(1).mean():.3f}"]
        cells += [f"{x:.3f}" for x in ln.mean(0)] + [f"{ln.sum(1).mean():.3f}"]
        p_nll = wilcoxon_p(ln.sum(1) - tn.sum(1))
        p_ndcg = wilcoxon_p(lm_gain[m] - teacher_gain[m])
        errors = f"{int(search_error[m].sum()):,} ({100 * search_error[m].mean():.1f} %)" if read_errors else "—"
        lines.append(
            f"| {lab} | {int(m.sum()):,} | {' | '.join(cells)} | {p_nll:.2g} | {teacher_gain[m].mean():.4f} | "
            f"{lm_gain[m].mean():.4f} | {p_ndcg:.2g} | {errors} |"
        )
    print("\n".join(lines), flush=True)
    out = RESULTS / f"teacher_nll_{profile.data.dataset}.md"
    head = f"# The distilled LM against its teacher: {profile.data.dataset} (benchmarks/teacher_nll.py)\n"
    write_section(out, head, name, lines)


if __name__ == "__main__":
    main()
