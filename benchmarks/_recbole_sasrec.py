"""Runs RecBole 1.2.1's SASRec (loss_type CE) on pre-split, pre-augmented atomic files; executed by
sasrec_vs_recbole.py inside the isolated virtual environment of gnn_vs_recbole.py (never imported by agrec).

Usage: python _recbole_sasrec.py < SPEC.json   (data folder, dataset name, hyper-parameters, output file)
"""

import json
import logging
import sys
import time


def main() -> None:
    spec = json.loads(sys.stdin.read())
    import torch

    torch.set_num_threads(spec["threads"])
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender.sasrec import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    config = Config(model="SASRec", dataset=spec["dataset"], config_dict={
        "data_path": spec["data_path"],
        # the same leave-one-out split; sequential benchmark files carry item_id_list (the augmented prefixes)
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "alias_of_item_id": ["item_id_list"],               # one token vocabulary for the list and the target
        "MAX_ITEM_LIST_LENGTH": spec["max_seq_length"],
        "loss_type": "CE", "train_neg_sample_args": None,
        "learning_rate": spec["lr"], "train_batch_size": spec["batch_size"], "epochs": spec["epochs"],
        # RecBole stops after stopping_step + 1 evaluations without improvement; agrec after `patience`
        "eval_step": spec["eval_every"], "stopping_step": spec["patience"] - 1,
        "eval_args": {"group_by": "user", "order": "TO", "mode": "full"},  # full ranking (sequential: no masking)
        "metrics": ["Hit", "NDCG"], "topk": [5, 10], "valid_metric": "NDCG@10",
        "use_gpu": False, "seed": spec["seed"], "reproducibility": True, "show_progress": False,
        "checkpoint_dir": spec["checkpoint_dir"], "state": "WARNING", "worker": 0,
    })
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logging.getLogger().setLevel(logging.WARNING)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)

    epoch_seconds = []
    train_epoch = trainer._train_epoch

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = train_epoch(*args, **kwargs)
        epoch_seconds.append(time.perf_counter() - t0)
        print(f"recbole epoch {len(epoch_seconds)}: {epoch_seconds[-1]:.1f} s", flush=True)
        return out

    valid_scores = []  # (epochs trained so far, validation NDCG@10)
    valid_epoch = trainer._valid_epoch

    def recorded(*args, **kwargs):
        score, result = valid_epoch(*args, **kwargs)
        valid_scores.append((len(epoch_seconds), float(score)))
        return score, result

    trainer._train_epoch = timed
    trainer._valid_epoch = recorded
    t0 = time.perf_counter()
    best_valid_score, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    fit_seconds = time.perf_counter() - t0
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    out = {
        "n_users": dataset.user_num - 1, "n_items": dataset.item_num - 1, "n_train": len(train_data.dataset),
        "epochs_run": len(epoch_seconds), "seconds_per_epoch": sum(epoch_seconds) / max(len(epoch_seconds), 1),
        "epoch_seconds": epoch_seconds, "fit_seconds": fit_seconds,
        "best_epoch": max(valid_scores, key=lambda e: (e[1], -e[0]))[0] if valid_scores else None,
        "valid_curve": valid_scores,
        "valid": {k.replace("hit", "HR").replace("ndcg", "NDCG"): float(v) for k, v in best_valid.items()},
        "test": {k.replace("hit", "HR").replace("ndcg", "NDCG"): float(v) for k, v in test.items()},
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }
    with open(spec["out"], "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
