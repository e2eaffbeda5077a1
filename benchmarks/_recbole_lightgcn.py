"""Runs RecBole 1.2.1's LightGCN on pre-split atomic files; executed by gnn_vs_recbole.py inside the
isolated virtual environment it creates (never imported by agrec).

Usage: python _recbole_lightgcn.py < SPEC.json   (data folder, dataset name, hyper-parameters, output file)

The spec comes on stdin because RecBole's Config parses sys.argv for its own options.
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
    from recbole.model.general_recommender.lightgcn import LightGCN
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    config = Config(model="LightGCN", dataset=spec["dataset"], config_dict={
        "data_path": spec["data_path"],
        "benchmark_filename": ["train", "valid", "test"],   # the same leave-one-out split, pre-split
        "load_col": {"inter": ["user_id", "item_id"]},
        "embedding_size": spec["dim"], "n_layers": spec["layers"], "reg_weight": spec["reg_weight"],
        "learning_rate": spec["lr"], "train_batch_size": spec["batch_size"], "epochs": spec["epochs"],
        # RecBole stops after stopping_step + 1 evaluations without improvement; agrec after `patience`
        "eval_step": spec["eval_every"], "stopping_step": spec["patience"] - 1,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False,
                                  "candidate_num": 0},
        "eval_args": {"group_by": "user", "order": "TO", "mode": "full"},  # full ranking, history masked
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
    model = LightGCN(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)

    epoch_seconds = []
    train_epoch = trainer._train_epoch

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = train_epoch(*args, **kwargs)
        epoch_seconds.append(time.perf_counter() - t0)
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
